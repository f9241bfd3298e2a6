"""Retries of the warehouse's steps, through the real raw load and dbt build on a real instance: a warehouse locked
by another process is retried until it is free; any other warehouse or dbt error fails at once."""

import subprocess
import sys
import threading
from pathlib import Path

import dagster as dg
import pytest

from ballast.clean import assets as clean_assets
from ballast.common.partitions import daily_partitions
from ballast.monitoring.sensors import RUN_ALERT_SENSOR, run_failure_alert
from ballast.raw import assets as raw_assets
from ballast.resources import WarehouseResource, dbt_cli, dbt_project, ensure_dbt_manifest
from ballast.runs import instance
from tests.conftest import START, make_settings, query

DAY = START.isoformat()
HEADER = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
# Holds a write connection on the warehouse, says so, then keeps it for the given seconds.
HOLD = "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(float(sys.argv[2]))"
HOLD_UNTIL_STDIN_CLOSES = (
    "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('held', flush=True); sys.stdin.read()"
)


def _materialize(settings, asset: dg.AssetsDefinition, resources: dict) -> tuple[bool, list[dg.DagsterEvent]]:
    """One day of `asset` on a persistent instance: success, and the step events it recorded."""
    dagster_instance = instance(settings)
    try:
        result = dg.materialize(
            [asset], partition_key=DAY, instance=dagster_instance, resources=resources, raise_on_error=False
        )
        return result.success, [e for e in result.all_events if e.is_step_event]
    finally:
        dagster_instance.dispose()


def _load(settings, warehouse: WarehouseResource) -> tuple[bool, list[dg.DagsterEvent]]:
    raw = raw_assets.build_defs(settings, daily_partitions(settings)).assets[0]
    return _materialize(settings, raw, {"warehouse": warehouse})


def _dbt_clean(settings, warehouse: WarehouseResource) -> tuple[bool, list[dg.DagsterEvent]]:
    project = dbt_project(settings)
    ensure_dbt_manifest(project, settings)
    [layer] = clean_assets.build_defs(settings, project, daily_partitions(settings)).assets
    return _materialize(settings, layer, {"warehouse": warehouse, "dbt": dbt_cli(project, settings)})


def _kinds(events: list[dg.DagsterEvent]) -> list[dg.DagsterEventType]:
    return [e.event_type for e in events]


def _hold(settings, seconds: float) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(settings.warehouse_path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


@pytest.fixture
def landed(tmp_path: Path):
    settings = make_settings(tmp_path)
    settings.ensure_dirs()
    rows = [f"T{i},C{i},M1,10.00,USD,{DAY}T10:00:00Z,web,US" for i in range(3)]
    (settings.landing_dir / f"transactions_{DAY}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return settings


def _release_after_first_retry(settings, holder: subprocess.Popen, stop: threading.Event) -> None:
    """Let the holder go once the step has met the lock and been put up for retry (or the test ends)."""
    watcher = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        while not stop.wait(0.2):
            runs = watcher.get_runs(limit=1)
            if runs and watcher.all_logs(runs[0].run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY):
                break
    finally:
        watcher.dispose()
        holder.stdin.close()


def test_a_warehouse_locked_by_another_process_is_retried_until_it_is_free(landed) -> None:
    settings = landed
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_STDIN_CLOSES, str(settings.warehouse_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()
    release = threading.Thread(target=_release_after_first_retry, args=(settings, holder, stop))
    try:
        assert holder.stdout.readline().strip() == "held"
        release.start()
        success, events = _load(settings, WarehouseResource(path=str(settings.warehouse_path), lock_wait_seconds=1))
    finally:
        stop.set()
        release.join(timeout=30)
        holder.wait(timeout=30)
    assert success
    assert 1 <= _kinds(events).count(dg.DagsterEventType.STEP_UP_FOR_RETRY) <= 2
    assert dg.DagsterEventType.STEP_FAILURE not in _kinds(events)
    assert query(settings, "select count(*) from raw.transactions") == [(3,)]


def test_a_lock_held_past_every_retry_fails_the_step_naming_the_lock(landed) -> None:
    settings = landed
    holder = _hold(settings, 60)
    try:
        warehouse = WarehouseResource(path=str(settings.warehouse_path), lock_retries=2, lock_wait_seconds=0.2)
        success, events = _load(settings, warehouse)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not success
    assert _kinds(events).count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 2
    [failure] = [e for e in events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert "Could not set lock on file" in failure.event_specific_data.error.cause.message
    # The run-failure alert names the lock, not Dagster's "Exceeded max_retries" wrapper.
    dagster_instance = instance(settings)
    try:
        [run] = dagster_instance.get_runs(limit=1)
        [ended] = dagster_instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        context = dg.build_run_status_sensor_context(
            RUN_ALERT_SENSOR, ended.dagster_event, dagster_instance, run
        ).for_run_failure()
        alert = run_failure_alert(context, settings.ui_url)
    finally:
        dagster_instance.dispose()
    assert alert.steps == ("raw_transactions",)
    assert alert.summary.startswith('raw_transactions: IOException: IO Error: Could not set lock on file "')


def test_a_warehouse_file_that_is_not_a_database_fails_at_once(landed) -> None:
    settings = landed
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
    settings.warehouse_path.write_text("transaction_id,amount\nT1,10.00\n")
    success, events = _load(settings, WarehouseResource(path=str(settings.warehouse_path), lock_wait_seconds=0.2))
    assert not success
    assert dg.DagsterEventType.STEP_UP_FOR_RETRY not in _kinds(events)
    assert _kinds(events).count(dg.DagsterEventType.STEP_FAILURE) == 1


def test_dbt_meeting_a_held_lock_is_retried_and_a_failing_model_is_not(landed) -> None:
    settings = landed
    warehouse = WarehouseResource(path=str(settings.warehouse_path), lock_retries=1, lock_wait_seconds=0.2)
    # No raw table yet: a model fails on its SQL, which a retry would only repeat.
    success, events = _dbt_clean(settings, warehouse)
    assert not success and dg.DagsterEventType.STEP_UP_FOR_RETRY not in _kinds(events)
    assert _load(settings, warehouse)[0]
    holder = _hold(settings, 120)
    try:
        success, events = _dbt_clean(settings, warehouse)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert not success and _kinds(events).count(dg.DagsterEventType.STEP_UP_FOR_RETRY) == 1
    # Once the lock is free, the same build succeeds.
    assert _dbt_clean(settings, warehouse)[0]
    assert query(settings, "select count(*) from clean.transactions") == [(3,)]
