"""A failing blocking contract on the clean layer withholds it: the features are skipped, the days stay missing."""

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.contracts import contract_checks
from ballast.definitions import build_defs
from ballast.monitoring.sensors import ALERT_SENSOR
from ballast.runs import instance, refresh
from ballast.settings import CONTRACTS_DIR, Settings
from tests.conftest import START, make_settings
from tests.dagster_ui import free_port, stop_session, wait_for_asset_nodes

pytestmark = pytest.mark.full  # raw, clean and features materialized, twice

FEATURES = dg.AssetKey(["features", "customer_daily_features"])
CLEAN = dg.AssetKey(["clean", "transactions"])
WORKSPACE = Path(__file__).resolve().parents[2] / "workspace.yaml"
# What the UI's catalogue reads for each check: its execution for the asset's latest materialization.
CHECKS_QUERY = """{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name
  executionForLatestMaterialization { status evaluation { success severity description metadataEntries { label } } }
} } } } }"""


@dataclass(frozen=True)
class StrictRun:
    settings: Settings
    result: dg.ExecuteInProcessResult
    automation_cursor: object


def _automation_tick(settings: Settings, cursor=None):
    """One evaluation of the automation conditions on the features, as the sensor does."""
    dagster_instance = instance(settings)
    try:
        return dg.evaluate_automation_conditions(
            defs=build_defs(settings),
            instance=dagster_instance,
            asset_selection=dg.AssetSelection.keys(FEATURES),
            cursor=cursor,
        )
    finally:
        dagster_instance.dispose()


@pytest.fixture(scope="module")
def strict_run(tmp_path_factory: pytest.TempPathFactory) -> StrictRun:
    # A team tightens its own contract: amounts above 50 now break it.
    contracts = tmp_path_factory.mktemp("contracts")
    for f in CONTRACTS_DIR.glob("*.yml"):
        shutil.copy(f, contracts / f.name)
    strict = contracts / "clean_transactions.yml"
    strict.write_text(strict.read_text().replace("valid_max: 100000", "valid_max: 50"))
    settings = make_settings(tmp_path_factory.mktemp("strict_home"), contracts_dir=contracts)
    settings.ensure_dirs()
    generate(GenerateSpec(out=settings.landing_dir, customers=100, days=10, start=START, seed=3))
    end = START + dt.timedelta(days=9)
    # The first tick only records a starting point; later ticks react to what changed.
    first_tick = _automation_tick(settings)
    selection = dg.AssetSelection.groups("raw", "clean", "features")
    result = refresh(settings, START, end, selection=selection, log_level="WARNING")
    return StrictRun(settings, result, first_tick.cursor)


def test_failed_contract_check_reports_its_metrics(strict_run: StrictRun) -> None:
    [check] = [e for e in strict_run.result.get_asset_check_evaluations() if e.check_name == "amount_invalid"]
    assert check.asset_key == CLEAN and not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["invalid_count"].value > 0
    assert check.metadata["window"].value == f"{START} to {START + dt.timedelta(days=9)}"


def test_features_are_not_built_on_data_that_broke_the_contract(strict_run: StrictRun) -> None:
    materialized = {
        e.asset_key for e in strict_run.result.get_asset_materialization_events() for e in [e.materialization]
    }
    # The clean step built its tables but withheld clean/transactions: its days stay missing.
    assert CLEAN not in materialized
    assert dg.AssetKey(["clean", "transactions_quarantine"]) in materialized
    assert FEATURES not in materialized
    events = strict_run.result.all_events
    started = {e.step_key for e in events if e.event_type == dg.DagsterEventType.STEP_START}
    skipped = {e.step_key for e in events if e.event_type == dg.DagsterEventType.STEP_SKIPPED}
    assert "features_dbt_models" not in started and "features_dbt_models" in skipped
    # Nothing failed: the run succeeded, and the failed contract check is what it recorded.
    assert not [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert strict_run.result.success


def test_automation_waits_for_the_contract(strict_run: StrictRun, tmp_path: Path) -> None:
    # Control: the same data and the stock contract. The clean layer passes, so the next
    # tick requests the features of every new day; with the tightened contract, none.
    ok = make_settings(tmp_path / "ok")
    ok.ensure_dirs()
    generate(GenerateSpec(out=ok.landing_dir, customers=100, days=10, start=START, seed=3))
    first_tick = _automation_tick(ok)
    end = START + dt.timedelta(days=9)
    assert refresh(ok, START, end, selection=dg.AssetSelection.groups("raw", "clean"), log_level="WARNING").success
    requested = _automation_tick(ok, first_tick.cursor).get_requested_partitions(FEATURES)
    assert len(requested) == 10
    strict = _automation_tick(strict_run.settings, strict_run.automation_cursor)
    assert strict.get_requested_partitions(FEATURES) == set()


def test_the_failed_contract_is_alerted_though_the_run_succeeded(strict_run: StrictRun) -> None:
    # The run-failure alert does not fire for a blocked run (it succeeded); the check-failure alert does.
    settings = strict_run.settings
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def(ALERT_SENSOR)
    dagster_instance = instance(settings)
    try:
        context = dg.build_sensor_context(instance=dagster_instance, definitions=defs, resources=defs.resources)
        sensor.evaluate_tick(context)
    finally:
        dagster_instance.dispose()
    keys = {json.loads(line)["key"] for line in settings.alert_log.read_text().splitlines()}
    assert f"clean/transactions:amount_invalid@{START} to {START + dt.timedelta(days=9)}" in keys


def _served_checks(settings: Settings) -> dict[tuple[str, str], dict | None]:
    """Every check's latest execution as the webserver serves it to the UI, on the home's instance."""
    port = free_port()
    env = {
        **os.environ,
        "BALLAST_HOME": str(settings.home),
        "BALLAST_START_DATE": settings.start_date.isoformat(),
        "BALLAST_CONTRACTS_DIR": str(settings.contracts_dir),
        "DAGSTER_HOME": str(settings.dagster_home),
    }
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        nodes = wait_for_asset_nodes(port, proc, CHECKS_QUERY, timeout_s=120)
    finally:
        stop_session(proc, signal.SIGTERM)
    return {
        ("/".join(n["assetKey"]["path"]), c["name"]): c["executionForLatestMaterialization"]
        for n in nodes
        for c in n["assetChecksOrError"].get("checks", [])
    }


def test_the_catalogue_shows_the_blocking_check_failed_and_the_checks_it_stopped_as_skipped(
    strict_run: StrictRun,
) -> None:
    served = _served_checks(strict_run.settings)
    failed = served[(CLEAN.to_user_string(), "amount_invalid")]
    assert failed["status"] == "FAILED"
    assert failed["evaluation"]["success"] is False and failed["evaluation"]["severity"] == "ERROR"
    assert "valid_max=50" in failed["evaluation"]["description"]
    assert "invalid_count" in {m["label"] for m in failed["evaluation"]["metadataEntries"]}
    assert "withheld" in {m["label"] for m in failed["evaluation"]["metadataEntries"]}
    # The features' checks never ran: the run succeeded, so Dagster resolves them as SKIPPED
    # ("Skipped" in the UI), with no result.
    stopped = {check: execution for (asset, check), execution in served.items() if asset == FEATURES.to_user_string()}
    declared = {c.name for c in contract_checks(CONTRACTS_DIR / "customer_daily_features.yml")}
    contract = {name: e for name, e in stopped.items() if name in declared}
    assert len(contract) > 10
    assert {e["status"] for e in contract.values()} == {"SKIPPED"}
    assert all(e["evaluation"] is None for e in contract.values())


def _contract_runs(settings: Settings, check: str) -> list[str]:
    """The outcome of each verification of the clean contract's `check`, oldest first."""
    dagster_instance = instance(settings)
    try:
        records = dagster_instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(CLEAN, check), limit=100
        )
        # One result per verification; Dagster also records each planned partition (PLANNED).
        return [r.status.value for r in reversed(records) if r.status.value in ("FAILED", "SUCCEEDED")]
    finally:
        dagster_instance.dispose()


def _materialized_days(settings: Settings, key: dg.AssetKey) -> set[str]:
    dagster_instance = instance(settings)
    try:
        return set(dagster_instance.get_materialized_partitions(key))
    finally:
        dagster_instance.dispose()


def test_the_next_run_verifies_the_blocked_days_again_until_they_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # A blocked run leaves clean/transactions missing for its days: the next `ballast run`
    # plans them again, so the contract is verified again rather than the features being
    # built over them with the block bypassed.
    from ballast.cli.main import main

    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    stock = (contracts / "clean_transactions.yml").read_text()
    (contracts / "clean_transactions.yml").write_text(stock.replace("valid_max: 100000", "valid_max: 50"))
    settings = make_settings(tmp_path / "home", contracts_dir=contracts)
    settings.ensure_dirs()
    generate(GenerateSpec(out=settings.landing_dir, customers=100, days=10, start=START, seed=3))
    for name, value in (("HOME", settings.home), ("START_DATE", START), ("CONTRACTS_DIR", contracts)):
        monkeypatch.setenv(f"BALLAST_{name}", str(value))
    days = {(START + dt.timedelta(days=i)).isoformat() for i in range(10)}
    named = "ballast: error: blocking check clean/transactions:amount_invalid failed"

    for attempt in (1, 2):
        assert main(["run"]) == 1
        err = capsys.readouterr().err
        assert any(line.startswith(named) for line in err.splitlines()), err
        assert _contract_runs(settings, "amount_invalid") == ["FAILED"] * attempt
        assert _materialized_days(settings, CLEAN) == set() and _materialized_days(settings, FEATURES) == set()

    # The team relaxes the contract again: the next run verifies the same days, they pass, features follow.
    (contracts / "clean_transactions.yml").write_text(stock)
    main(["run"])
    err = capsys.readouterr().err
    assert "blocking check" not in err
    assert _contract_runs(settings, "amount_invalid") == ["FAILED", "FAILED", "SUCCEEDED"]
    assert _materialized_days(settings, CLEAN) == days and _materialized_days(settings, FEATURES) == days
