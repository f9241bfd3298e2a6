"""The model lifecycle for real: candidate, evaluation, gates, promotion, override, rollback, lineage, tampering.

The session's platform promotes the first model. A module fixture copies its home
(warehouse, lake, registry, Dagster instance) and runs the model layer three times on it:
a second model, a weakened one, the weakened one with an override; it records what each
run left. Tests that change the registry (rollback, promote, tampering) each work on their
own copy of that home, so every test holds whatever the order or selection of tests.
"""

import datetime as dt
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.cli.report import build_report, format_report
from ballast.features.assets import FEATURE_REGISTRY
from ballast.model import registry, training
from ballast.model.keys import CHAMPION_KEY, EVALUATION_KEY, MODEL_KEY, SCORES_KEY
from ballast.runs import instance, refresh
from ballast.settings import Settings
from tests.conftest import START, Platform, make_settings, query

MODEL_RUN = dg.AssetSelection.assets(FEATURE_REGISTRY) | dg.AssetSelection.groups("model")
WEAK = {"model__churn_model": {"shuffle_labels": True}}
OVERRIDE_REASON = "incident 7: ship the retrained model despite the gates"


def _ballast(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "ballast"), *args],
        env={"BALLAST_HOME": str(home), "PATH": "/usr/bin:/bin", "SODA_CORE_TELEMETRY_ENABLED": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@dataclass
class Lifecycle:
    settings: Settings
    dagster_instance: dg.DagsterInstance
    start: dt.date
    end: dt.date

    def run(self, op_config: dict | None = None) -> dg.ExecuteInProcessResult:
        return refresh(
            self.settings,
            self.start,
            self.end,
            dagster_instance=self.dagster_instance,
            selection=MODEL_RUN,
            log_level="WARNING",
            op_config=op_config,
        )

    def champion(self) -> registry.ModelVersion | None:
        return registry.champion(self.settings.registry_dir, training.MODEL_NAME)

    def version(self, name: str) -> registry.ModelVersion:
        return registry.get(self.settings.registry_dir, training.MODEL_NAME, name)


HOME_PARTS = ("warehouse.duckdb", "lake", "registry", "dagster_home")


@dataclass(frozen=True)
class ModelRun:
    result: dg.ExecuteInProcessResult
    champion: str | None
    scored_by: list[str]


@dataclass(frozen=True)
class History:
    """The home after the three model runs (champion v0004, previous v0002) and what each run left."""

    settings: Settings
    start: dt.date
    end: dt.date
    second: ModelRun
    weak: ModelRun
    override: ModelRun


def _copy_home(source: Path, target: Path) -> Settings:
    settings = make_settings(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in HOME_PARTS:
        (shutil.copytree if (source / name).is_dir() else shutil.copy2)(source / name, target / name)
    return settings


@pytest.fixture(scope="module")
def history(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> History:
    settings = _copy_home(platform.settings.home, tmp_path_factory.mktemp("lifecycle_home"))
    lifecycle = Lifecycle(settings, instance(settings), platform.start, platform.end)
    runs = []
    try:
        for op_config in (None, WEAK, WEAK | {"promotion_gates": {"override_reason": OVERRIDE_REASON}}):
            result = lifecycle.run(op_config)
            champion = lifecycle.champion()
            [(scored_by,)] = query(lifecycle.settings, "select list(distinct model_version) from model.churn_scores")
            runs.append(ModelRun(result, champion.version if champion else None, scored_by))
    finally:
        lifecycle.dagster_instance.dispose()
    return History(lifecycle.settings, platform.start, platform.end, *runs)


@pytest.fixture
def lifecycle(history: History, tmp_path: Path) -> Lifecycle:
    """A copy of the history's home of this test's own, to change as it likes."""
    settings = _copy_home(history.settings.home, tmp_path / "home")
    dagster_instance = instance(settings)
    yield Lifecycle(settings, dagster_instance, history.start, history.end)
    dagster_instance.dispose()


def _gates(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key == EVALUATION_KEY}


def test_the_first_model_is_promoted(platform: Platform) -> None:
    current = registry.champion(platform.settings.registry_dir, training.MODEL_NAME)
    assert current is not None and current.version == "v0001"
    assert [g["name"] for g in current.metadata["gates"]] == ["min_quality", "beats_baseline", "challenger", "fairness"]
    assert all(g["passed"] for g in current.metadata["gates"])
    assert "no champion yet" in current.metadata["gates"][2]["note"]
    [entry] = registry.champion_history(platform.settings.registry_dir, training.MODEL_NAME)
    assert entry["reason"] == "passed every gate" and entry["override"] is False
    evaluation = platform.result.asset_materializations_for_node("model__churn_evaluation")[0].metadata
    assert evaluation["roc_and_calibration_embedded"].value.startswith("![ROC and calibration](data:image/png;base64,")
    assert "positive_rate_by_home_country" in evaluation and evaluation["champion_version"].value == "none"
    [(versions,)] = platform.query("select list(distinct model_version) from model.churn_scores")
    assert versions == ["v0001"]


def test_a_second_model_on_the_same_data_passes_the_gates_and_becomes_champion(history: History) -> None:
    run = history.second
    assert run.result.success
    gates = _gates(run.result)
    assert all(g.passed for g in gates.values()) and len(gates) == 4
    second = registry.get(history.settings.registry_dir, training.MODEL_NAME, "v0002")
    assert second.metadata["champion_evaluation"]["version"] == "v0001"
    assert second.metadata["evaluation"]["roc_auc"] >= 0.98 * second.metadata["champion_evaluation"]["roc_auc"]
    assert run.champion == "v0002"
    assert run.scored_by == ["v0002"]


def test_a_weakened_candidate_fails_the_gates_and_the_champion_stays(history: History) -> None:
    result = history.weak.result
    assert not result.success
    gates = _gates(result)
    assert not gates["min_quality"].passed and not gates["challenger"].passed
    assert not gates["beats_baseline"].passed and gates["beats_baseline"].metadata["value"].value < 0.01
    assert gates["min_quality"].severity == dg.AssetCheckSeverity.ERROR
    assert not result.asset_materializations_for_node("model__champion")
    weak = registry.get(history.settings.registry_dir, training.MODEL_NAME, "v0003")
    assert weak.metadata["config"] == {"shuffle_labels": True} and weak.metadata["evaluation"]["roc_auc"] < 0.7
    assert {g["name"]: g["passed"] for g in weak.metadata["gates"]}["min_quality"] is False
    assert history.weak.champion == "v0002"


def test_an_override_with_a_reason_promotes_and_is_recorded(history: History) -> None:
    result = history.override.result
    assert result.success
    gates = _gates(result)
    assert gates["min_quality"].passed and gates["min_quality"].metadata["overridden"].value is True
    assert gates["min_quality"].metadata["override_reason"].value == OVERRIDE_REASON
    assert history.override.champion == "v0004"
    overridden = registry.get(history.settings.registry_dir, training.MODEL_NAME, "v0004")
    assert overridden.metadata["override"]["reason"] == OVERRIDE_REASON
    assert overridden.metadata["override"]["gates_failed"] == ["min_quality", "beats_baseline", "challenger"]
    last = registry.champion_history(history.settings.registry_dir, training.MODEL_NAME)[-1]
    assert last["override"] is True and OVERRIDE_REASON in last["reason"] and last["previous"] == "v0002"
    [materialization] = result.asset_materializations_for_node("model__champion")
    assert materialization.metadata["override"].value is True


def test_model_list_shows_each_versions_margin_over_the_recency_baseline(history: History) -> None:
    proc = _ballast(history.settings.home, "model", "list")
    assert proc.returncode == 0, proc.stderr
    header, *lines = proc.stdout.splitlines()
    assert header.split()[:5] == ["version", "created", "ROC", "AUC", "baseline"] and "margin" in header
    for version in registry.versions(history.settings.registry_dir, training.MODEL_NAME):
        found = version.metadata["evaluation"]
        [fields] = [line.split() for line in lines if f" {version.version} " in line]
        at = fields.index(version.version)
        shown = fields[at + 2 : at + 5]
        assert shown == [
            f"{found['roc_auc']:.3f}",
            f"{found['baseline_roc_auc']:.3f}",
            f"{found['baseline_margin']:+.3f}",
        ]
    # The shuffled-label candidate trails the baseline: a negative margin and a failed gate.
    weak = next(line for line in lines if " v0003 " in line)
    assert " -0." in weak and "beats_baseline FAIL" in weak


def test_a_candidate_that_does_not_beat_the_recency_baseline_is_not_promoted(lifecycle: Lifecycle) -> None:
    # A margin no candidate can reach: the same good model passes every other gate and still stays a candidate.
    strict = make_settings(lifecycle.settings.home, min_baseline_margin=0.99)
    result = refresh(
        strict,
        lifecycle.start,
        lifecycle.end,
        dagster_instance=lifecycle.dagster_instance,
        selection=dg.AssetSelection.assets(MODEL_KEY, EVALUATION_KEY, CHAMPION_KEY),
        log_level="WARNING",
    )
    assert not result.success
    gates = _gates(result)
    assert {name for name, gate in gates.items() if not gate.passed} == {"beats_baseline"}
    assert not result.asset_materializations_for_node("model__champion")
    assert lifecycle.champion().version == "v0004"
    found = lifecycle.version("v0005").metadata["evaluation"]
    assert found["baseline_margin"] == found["roc_auc"] - found["baseline_roc_auc"] > 0.01
    because = (
        f"candidate AUC {found['roc_auc']:.4f} − recency baseline AUC {found['baseline_roc_auc']:.4f}"
        f" = margin {found['baseline_margin']:+.4f}"
    )
    assert because in gates["beats_baseline"].description
    report = format_report(build_report(strict))
    assert f"Candidate v0005 was not promoted (beats_baseline: {because}" in report
    # The same candidate, judged again with the default margin, is promoted.
    again = refresh(
        lifecycle.settings,
        lifecycle.start,
        lifecycle.end,
        dagster_instance=lifecycle.dagster_instance,
        selection=dg.AssetSelection.assets(EVALUATION_KEY, CHAMPION_KEY),
        log_level="WARNING",
    )
    assert again.success and _gates(again)["beats_baseline"].passed
    assert lifecycle.champion().version == "v0005"


def test_rollback_restores_the_previous_champion(lifecycle: Lifecycle) -> None:
    proc = _ballast(lifecycle.settings.home, "model", "rollback", "--reason", "bad scores after v0004")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "churn_model champion rolled back from v0004 to v0002"
    assert lifecycle.champion().version == "v0002"
    listing = _ballast(lifecycle.settings.home, "model", "list").stdout.splitlines()
    assert [line.split()[0] for line in listing if line.startswith("*")] == ["*"] and "* v0002" in "\n".join(listing)
    assert "min_quality FAIL" in next(line for line in listing if "v0003" in line)


def test_promote_records_an_override_when_gates_failed(lifecycle: Lifecycle) -> None:
    proc = _ballast(lifecycle.settings.home, "model", "promote", "v0003", "--reason", "manual test")
    assert proc.returncode == 0, proc.stderr
    assert "override of failed gate(s): min_quality, beats_baseline, challenger" in proc.stdout
    last = registry.champion_history(lifecycle.settings.registry_dir, training.MODEL_NAME)[-1]
    assert last == last | {"version": "v0003", "reason": "manual test", "override": True}
    assert lifecycle.champion().version == "v0003"
    assert _ballast(lifecycle.settings.home, "model", "rollback").returncode == 0
    assert lifecycle.champion().version == "v0004"


def test_lineage_lists_the_exact_raw_files_behind_the_champion(lifecycle: Lifecycle) -> None:
    champion = lifecycle.champion()
    proc = _ballast(lifecycle.settings.home, "lineage", champion.version)
    assert proc.returncode == 0, proc.stderr
    last_snapshot = dt.date.fromisoformat(champion.metadata["training_set"]["snapshots"][1])
    # Features look back 90 days from each snapshot, labels 30 days ahead: every file up to
    # the last snapshot + 30 days is behind the model, and none after it.
    expected = query(
        lifecycle.settings,
        "select distinct source_file, file_hash from raw.transactions where event_date <= ? order by 1",
        [last_snapshot + dt.timedelta(days=30)],
    )
    printed = [line.split() for line in proc.stdout.splitlines() if line.startswith("    transactions_")]
    assert [(p[0], p[2]) for p in printed] == expected
    [(later,)] = query(
        lifecycle.settings,
        "select count(distinct source_file) from raw.transactions where event_date > ?",
        [last_snapshot + dt.timedelta(days=30)],
    )
    assert later > 0 and f"fingerprint {champion.metadata['training_set']['fingerprint']}" in proc.stdout
    versions = champion.metadata["code_versions"]
    assert {"raw/transactions", "clean/transactions", "features/customer_daily_features", "model/churn_model"} <= set(
        versions
    )
    assert all(versions.values()), versions


def test_a_modified_artifact_is_refused(lifecycle: Lifecycle) -> None:
    champion = lifecycle.champion()
    artifact = champion.path / registry.MODEL_FILE
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(registry.RegistryError, match="SHA-256 does not match"):
        registry.load(champion)
    result = refresh(
        lifecycle.settings,
        lifecycle.start,
        lifecycle.end,
        dagster_instance=lifecycle.dagster_instance,
        selection=dg.AssetSelection.assets(SCORES_KEY),
        log_level="WARNING",
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "SHA-256 does not match" in failure.step_failure_data.user_failure_data.description
    proc = _ballast(lifecycle.settings.home, "model", "promote", champion.version, "--reason", "again")
    assert proc.returncode == 1 and "SHA-256 does not match" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.full
def test_a_segment_biased_model_fails_the_fairness_gate(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ensure_dirs()
    days = 150
    generate(GenerateSpec(out=settings.landing_dir, customers=1500, days=days, start=START, seed=11, segment_bias="GB"))
    dagster_instance = instance(settings)
    try:
        result = refresh(
            settings, START, START + dt.timedelta(days=days - 1), dagster_instance=dagster_instance, log_level="WARNING"
        )
    finally:
        dagster_instance.dispose()
    assert not result.success
    fairness = _gates(result)["fairness"]
    assert not fairness.passed and fairness.metadata["value"].value > 0.10
    assert _gates(result)["min_quality"].passed
    assert registry.champion(settings.registry_dir, training.MODEL_NAME) is None
    segments = {
        s["segment"]: s["positive_rate"]
        for s in registry.latest(settings.registry_dir, training.MODEL_NAME).metadata["evaluation"]["segments"]
    }
    assert max(segments, key=segments.get) == "GB"
    assert not result.asset_materializations_for_node("model__champion")
