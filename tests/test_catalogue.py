"""What Dagster's catalogue shows of the code location `dagster dev` loads: owners, tags, code references, descriptions, check names."""

import re
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ballast import definitions
from ballast.settings import DBT_PROJECT_DIR, REPO_ROOT

OWNERS = ["team:ml-platform", "jane.doe@example.com"]
# Dagster's UI cuts a longer check name off in the asset's check list (about 30 characters
# show whole in a 1600-pixel window: `distinct_merchants_30d_invalid` does, 32 do not).
MAX_CHECK_NAME = 30
DOMAINS = {
    "transactions": {
        "raw/transactions",
        "raw/rejected_files",
        "raw/ignored_files",
        "clean/transactions",
        "clean/transactions_quarantine",
    },
    "customers": {
        "features/customer_daily_features",
        "features/customer_daily_features_parquet",
        "features/feature_registry",
        "features/online_store",
    },
    "churn": {
        "model/churn_labels",
        "model/training_set",
        "model/churn_model",
        "model/churn_evaluation",
        "model/champion",
        "model/churn_scores",
        "monitoring/feature_profiles",
        "monitoring/score_profiles",
        "monitoring/drift_report",
    },
    "platform": {"monitoring/quality_history", "audit/debt_scorecard"},
}
# The assets that hold customer ids: tables with the column, and the online store keyed by it.
PII = {
    "raw/transactions",
    "clean/transactions",
    "clean/transactions_quarantine",
    "features/customer_daily_features",
    "features/customer_daily_features_parquet",
    "features/online_store",
    "model/churn_labels",
    "model/training_set",
    "model/churn_scores",
}


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    """The code location as `dagster dev` loads it: the module's entry point, reading the environment."""
    home = tmp_path_factory.mktemp("catalogue_home")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("BALLAST_HOME", str(home))
        env.setenv("BALLAST_OWNERS", f" {OWNERS[0]} ,{OWNERS[1]}")
        return definitions.defs()


def _assets(defs: dg.Definitions) -> dict[str, dg.AssetSpec]:
    graph = defs.resolve_asset_graph()
    return {key.to_user_string(): graph.get(key) for key in graph.get_all_asset_keys()}


def test_every_asset_is_owned_by_ballast_owners(defs: dg.Definitions) -> None:
    owners = {key: list(node.owners) for key, node in _assets(defs).items()}
    assert len(owners) == 20
    assert all(found == OWNERS for found in owners.values()), owners


def test_every_asset_is_tagged_with_its_layer_domain_and_pii(defs: dg.Definitions) -> None:
    tags = {key: node.tags for key, node in _assets(defs).items()}
    assert {key: t["layer"] for key, t in tags.items()} == {key: key.split("/")[0] for key in tags}
    assert {key: t["domain"] for key, t in tags.items()} == {
        key: domain for domain, keys in DOMAINS.items() for key in keys
    }
    assert {key for key, t in tags.items() if t["pii"] == "true"} == PII
    assert {key for key, t in tags.items() if t["pii"] == "false"} == set(tags) - PII


def test_every_asset_references_its_source_files(defs: dg.Definitions) -> None:
    for key, node in _assets(defs).items():
        refs = node.metadata["dagster/code_references"].code_references
        paths = [Path(r.file_path) for r in refs]
        assert paths and all(p.is_file() for p in paths), (key, paths)
        # The Python function that materializes it, at its line.
        [python] = [r for r in refs if r.file_path.endswith(".py")]
        assert Path(python.file_path).is_relative_to(REPO_ROOT / "platform" / "ballast"), key
        source = Path(python.file_path).read_text().splitlines()
        assert re.match(r"\s*(@|def )", source[python.line_number - 1]), (key, python)
        # A dbt model's SQL too.
        if "dagster/kind/dbt" in node.tags:
            name = key.split("/")[-1]
            assert DBT_PROJECT_DIR / "models" / key.split("/")[0] / f"{name}.sql" in paths, key


def test_every_check_sensor_and_schedule_is_described(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    described = {
        **{key.to_user_string(): graph.get_check_spec(key).description for key in graph.asset_check_keys},
        **{f"sensor {s.name}": s.description for s in defs.sensors or []},
        **{f"schedule {s.name}": s.description for s in defs.schedules or []},
    }
    assert len(described) > 100 and {"sensor landing_file_sensor", "schedule landing_daily_schedule"} <= set(described)
    assert not [name for name, text in described.items() if not (text or "").strip()]


def test_a_dbt_tests_description_is_its_checks(defs: dg.Definitions) -> None:
    # dbt's own `description:` on the data test reaches the asset check (one home, the .yml).
    yml = yaml.safe_load((DBT_PROJECT_DIR / "models" / "clean" / "transactions_quarantine.yml").read_text())
    [reason] = [c for c in yml["models"][0]["columns"] if c["name"] == "reject_reason"]
    test = reason["data_tests"][0]["accepted_values"]
    spec = defs.resolve_asset_graph().get_check_spec(
        dg.AssetCheckKey(dg.AssetKey(["clean", "transactions_quarantine"]), test["name"])
    )
    assert spec.description == test["description"]


def test_check_names_are_short_words_without_dbts_generated_names(defs: dg.Definitions) -> None:
    keys = defs.resolve_asset_graph().asset_check_keys
    assert len(keys) > 100
    too_long = [k.to_user_string() for k in keys if len(k.name) > MAX_CHECK_NAME]
    assert not too_long, f"check names over {MAX_CHECK_NAME} characters: {too_long}"
    # dbt names an unnamed test <test>_<model>_<column>...; the UI lists checks under their model already.
    generated = [k.to_user_string() for k in keys if f"_{k.asset_key.path[-1]}" in k.name]
    assert not generated
    assert all(re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)*", k.name) for k in keys)
