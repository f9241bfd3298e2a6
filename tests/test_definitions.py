"""The code location: asset keys, groups, dependencies, pools, and `dagster definitions validate`."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ballast.clean.assets import QUARANTINE_SHARE_CHECK
from ballast.clean.tables import CLEAN_QUARANTINE_TABLE, CLEAN_TRANSACTIONS_TABLE
from ballast.cli.report import LAYER_TABLES
from ballast.common.naming import key_table, table_key
from ballast.contracts import contract_checks
from ballast.definitions import REFRESH_JOB, build_defs
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE
from ballast.raw.tables import RAW_IGNORED_FILES_TABLE, RAW_REJECTED_FILES_TABLE, RAW_TRANSACTIONS_TABLE
from ballast.settings import CONTRACTS_DIR, FEAST_POOL, REPO_ROOT, WAREHOUSE_POOL, Settings, SettingsError
from tests.conftest import make_settings

EXPECTED = {
    "raw/transactions": ("raw", set()),
    "raw/rejected_files": ("raw", set()),
    "raw/ignored_files": ("raw", set()),
    "clean/transactions": ("clean", {"raw/transactions"}),
    "clean/transactions_quarantine": ("clean", {"raw/transactions"}),
    "features/customer_daily_features": ("features", {"clean/transactions"}),
    "features/customer_daily_features_parquet": ("features", {"features/customer_daily_features"}),
    "features/feature_registry": ("features", set()),
    "features/online_store": ("features", {"features/customer_daily_features_parquet", "features/feature_registry"}),
    "model/churn_labels": ("model", {"features/customer_daily_features", "clean/transactions"}),
    "model/training_set": (
        "model",
        {"model/churn_labels", "features/customer_daily_features_parquet", "features/feature_registry"},
    ),
    "model/churn_model": ("model", {"model/training_set"}),
    "model/churn_evaluation": ("model", {"model/churn_model"}),
    "model/champion": ("model", {"model/churn_evaluation"}),
    "model/churn_scores": ("model", {"model/champion", "features/customer_daily_features"}),
    "monitoring/feature_profiles": ("monitoring", {"features/customer_daily_features"}),
    "monitoring/score_profiles": ("monitoring", {"features/customer_daily_features", "model/champion"}),
    "monitoring/drift_report": ("monitoring", {"monitoring/feature_profiles", "monitoring/score_profiles"}),
    "monitoring/quality_history": ("monitoring", set()),
    "audit/debt_scorecard": ("audit", set()),
}


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    return build_defs(make_settings(tmp_path_factory.mktemp("defs_home")))


def test_asset_keys_groups_and_dependencies(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    found = {
        key.to_user_string(): (graph.get(key).group_name, {p.to_user_string() for p in graph.get(key).parent_keys})
        for key in graph.get_all_asset_keys()
    }
    assert found == EXPECTED


def test_each_table_name_is_an_asset_of_its_layer(defs: dg.Definitions) -> None:
    """The names the layers' SQL and the report use are the tables the graph builds, and round-trip to their keys."""
    tables = (
        RAW_TRANSACTIONS_TABLE,
        RAW_REJECTED_FILES_TABLE,
        RAW_IGNORED_FILES_TABLE,
        CLEAN_TRANSACTIONS_TABLE,
        CLEAN_QUARANTINE_TABLE,
        CUSTOMER_DAILY_FEATURES_TABLE,
        *LAYER_TABLES,
    )
    graph = defs.resolve_asset_graph()
    missing = [t for t in tables if table_key(t) not in graph.get_all_asset_keys()]
    assert not missing, missing
    assert all(key_table(table_key(t)) == t and graph.get(table_key(t)).group_name == t.split(".")[0] for t in tables)


def test_every_asset_has_a_description_and_layer_prefix(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.description, f"{key.to_user_string()} has no description"
        assert key.path[0] == node.group_name


def test_warehouse_writers_share_one_pool_and_feast_writers_another(defs: dg.Definitions) -> None:
    graph = defs.resolve_asset_graph()
    pools = {key.to_user_string(): defs.resolve_assets_def(key).node_def.pools for key in graph.get_all_asset_keys()}
    feast_writers = {"features/feature_registry", "features/online_store"}
    assert {k for k, p in pools.items() if p == {FEAST_POOL}} == feast_writers, pools
    assert all(p == {WAREHOUSE_POOL} for k, p in pools.items() if k not in feast_writers), pools
    parity = dg.AssetCheckKey(dg.AssetKey.from_user_string("features/online_store"), "online_matches_offline")
    assert graph.assets_def_for_key(parity).node_def.pools == {FEAST_POOL}


def test_partitioned_layers_backfill_in_a_single_run(defs: dg.Definitions) -> None:
    for key in (
        "raw/transactions",
        "clean/transactions",
        "features/customer_daily_features",
        "features/customer_daily_features_parquet",
        "features/online_store",
        "monitoring/feature_profiles",
        "monitoring/score_profiles",
        "monitoring/drift_report",
    ):
        assets_def = defs.resolve_assets_def(dg.AssetKey.from_user_string(key))
        assert isinstance(assets_def.partitions_def, dg.DailyPartitionsDefinition)
        assert assets_def.backfill_policy == dg.BackfillPolicy.single_run()
    # Single-run assets are multi-assets (the policy is stable there) that keep @asset's op
    # name, which run config and step selections use, and the docstring as description.
    online_store = defs.resolve_assets_def(dg.AssetKey.from_user_string("features/online_store"))
    assert online_store.node_def.name == "features__online_store"
    assert online_store.descriptions_by_key[online_store.key].startswith("Feast online store (SQLite)")
    # The job `ballast run` launches covers every asset over the same daily partitions.
    job = defs.resolve_job_def(REFRESH_JOB)
    assert {k.to_user_string() for k in job.asset_layer.executable_asset_keys} == set(EXPECTED)
    raw = defs.resolve_assets_def(dg.AssetKey.from_user_string("raw/transactions"))
    assert job.partitions_def == raw.partitions_def


def test_dbt_tests_are_asset_checks_and_state_no_contract_rule(defs: dg.Definitions) -> None:
    # The Soda contracts own column rules (missing, duplicate, ranges, accepted values); dbt
    # keeps the accounting identity and the quarantine's reason codes. Unit tests are no checks.
    contracts = {
        c.name
        for f in ("clean_transactions.yml", "customer_daily_features.yml")
        for c in contract_checks(CONTRACTS_DIR / f)
    }
    dbt_checks = {
        c.to_user_string()
        for layer_model in ("clean/transactions", "features/customer_daily_features")
        for c in defs.resolve_assets_def(dg.AssetKey.from_user_string(layer_model)).check_keys
        # The blocking checks run in the dbt step too (it withholds what fails them).
        if c.name not in contracts and c.name != QUARANTINE_SHARE_CHECK
    }
    # The quarantine (no contract) keeps every value as raw received it: one test per column.
    as_received = {
        f"clean/transactions_quarantine:{column}_as_received"
        for column in (
            *("event_date", "source_file", "file_hash", "line_number", "load_id", "transaction_id", "customer_id"),
            *("merchant_id", "amount", "currency", "event_timestamp", "channel", "country", "raw_line"),
        )
    }
    assert dbt_checks == {
        "clean/transactions_quarantine:assert_rows_accounted_for",
        "clean/transactions_quarantine:reject_reason_is_known",
        *as_received,
    }


def test_every_contract_check_is_an_asset_check_and_blocking_where_it_guards_downstream(defs: dg.Definitions) -> None:
    # A blocking contract runs in its asset's own step, which withholds the asset when it
    # fails; Dagster's blocking flag would fail the run instead. Raw's runs in a step of its own.
    graph = defs.resolve_asset_graph()

    for contract, asset, blocking in (
        ("raw_transactions.yml", "raw/transactions", False),
        ("clean_transactions.yml", "clean/transactions", True),
        ("customer_daily_features.yml", "features/customer_daily_features", True),
    ):
        names = [c.name for c in contract_checks(CONTRACTS_DIR / contract)]
        assert "schema" in names or "duplicate" in names
        for name in names:
            key = dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)
            spec = graph.get_check_spec(key)
            assert spec.description and not spec.blocking
            assert (key in defs.resolve_assets_def(key.asset_key).check_keys) is blocking


@pytest.mark.full  # Dagster's own CLI loads the code location in a subprocess, as the dev server does
def test_dagster_definitions_validate(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "BALLAST_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path)}
    dagster = Path(sys.executable).parent / "dagster"
    proc = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", str(REPO_ROOT / "workspace.yaml")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful for code location ballast" in proc.stdout + proc.stderr


def test_the_instance_limits_each_pool_to_one_step(tmp_path: Path) -> None:
    from ballast.runs import instance

    dagster_instance = instance(make_settings(tmp_path))
    try:
        for pool in (WAREHOUSE_POOL, FEAST_POOL):
            assert dagster_instance.event_log_storage.get_concurrency_info(pool).limit == 1
    finally:
        dagster_instance.dispose()


def test_jobs_run_their_steps_in_the_run_process_unless_multiprocess_is_chosen(
    defs: dg.Definitions, tmp_path: Path
) -> None:
    jobs = [REFRESH_JOB, "__ASSET_JOB", *(j.name for j in defs.jobs or [])]
    assert {defs.resolve_job_def(name).executor_def.name for name in jobs} == {"in_process"}
    chosen = build_defs(Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_EXECUTOR": "Multiprocess"}))
    assert {chosen.resolve_job_def(name).executor_def.name for name in jobs} == {"multiprocess"}
    with pytest.raises(SettingsError, match="BALLAST_EXECUTOR='threads' is not one of in_process, multiprocess"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_EXECUTOR": "threads"})
