"""Running the platform outside the UI: the Dagster instance under BALLAST_HOME, one CLI run at a time, refresh runs."""

import datetime as dt
import fcntl
import json
import os
import socket
import time
from pathlib import Path

import dagster as dg
import yaml

from ballast.audit.warning_capture import append_run_warnings, capture
from ballast.common.atomic import write_atomic
from ballast.common.history_sync import set_history_sync
from ballast.common.partitions import range_tags
from ballast.contracts import write_data_source
from ballast.definitions import REFRESH_JOB, build_defs
from ballast.lineage.export import export_runs
from ballast.monitoring import recovery
from ballast.settings import WAREHOUSE_POOL, Settings

# A backfill run plans one event per asset, not one per asset and partition: with SQLite
# storage each event costs about 13 ms, and 180 days of 17 assets took 40 s before the
# first step. Dagster's trade-off: partitions of a failed run show as missing rather than
# failed in the UI (the run and its failed step still show the failure). Set it to false
# to get the per-partition events back.
PLANNED_EVENTS_ENV = {"DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true"}

# Everything that writes the warehouse shares one pool: DuckDB allows one writer. Runs
# launched from the UI queue one at a time (a `ballast run` counts as one in progress).
# Run monitoring (the `dagster dev` daemon) fails runs stuck starting or cancelling and
# frees the pool slots of ended runs; the default run launcher cannot check a run
# worker's health, so a run whose process died is found by recovery.recover, which
# `ballast run` and `ballast dev` call first.
DAGSTER_YAML = {
    "telemetry": {"enabled": False},
    "concurrency": {"pools": {"default_limit": 1}, "runs": {"max_concurrent_runs": 1}},
    "run_monitoring": {
        "enabled": True,
        "start_timeout_seconds": 180,
        "cancel_timeout_seconds": 180,
        "poll_interval_seconds": 30,
        "free_slots_after_run_end_seconds": 30,
    },
}


def write_dagster_yaml(settings: Settings) -> None:
    settings.ensure_dirs()
    path = settings.dagster_home / "dagster.yaml"
    text = f"# Written by Ballast. Pool '{WAREHOUSE_POOL}' (and any other) runs one step at a time.\n"
    text += yaml.safe_dump(DAGSTER_YAML, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        write_atomic(path, text)


def instance(settings: Settings) -> dg.DagsterInstance:
    """The persistent Dagster instance the UI (`make dev`) shows, under BALLAST_HOME."""
    for name, value in PLANNED_EVENTS_ENV.items():
        os.environ.setdefault(name, value)  # read by Dagster in this process, when it plans a run
    write_dagster_yaml(settings)
    write_data_source(settings.soda_data_source, settings.warehouse_path)
    set_history_sync(settings.dagster_home, settings.history_sync)
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def refresh(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    dagster_instance: dg.DagsterInstance | None = None,
    selection: dg.AssetSelection | None = None,
    log_level: str = "DEBUG",
    op_config: dict | None = None,
    defs: dg.Definitions | None = None,
    run_id: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the selected assets (default: all) for the days [start, end] in one run.

    `op_config` is run config per op, e.g. {"model__churn_model": {"shuffle_labels": True}}.
    `defs`: definitions already built (a sequence of runs builds them once); `run_id`: the run's id, chosen by the caller.
    """
    defs = defs or build_defs(settings)
    job = defs.resolve_job_def(REFRESH_JOB)
    asset_keys = None
    if selection is not None:
        asset_keys = list(selection.resolve(defs.resolve_asset_graph()))
    tags = {
        **range_tags(start, end),
        **recovery.run_tags(),
    }
    owned = dagster_instance is None
    dagster_instance = dagster_instance or instance(settings)
    try:
        # Warnings raised through Ballast's calls during the run feed the debt scorecard.
        with recovery.marked_children(settings.home), capture("run") as captured:
            result = job.execute_in_process(
                run_config={
                    "loggers": {"console": {"config": {"log_level": log_level}}},
                    "ops": {op: {"config": config} for op, config in (op_config or {}).items()},
                },
                instance=dagster_instance,
                tags=tags,
                asset_selection=asset_keys,
                run_id=run_id,
                raise_on_error=False,
            )
        append_run_warnings(settings.run_warnings_log, captured.attributed, result.run_id)
        # Lineage without a daemon: the finished run goes out as OpenLineage events now.
        export_runs(settings, dagster_instance, defs.get_repository_def(), [result.run_id])
        return result
    finally:
        if owned:
            dagster_instance.dispose()


LOCK_FILE = "run.lock"


class HomeLock:
    """An exclusive lock on a Ballast home for one CLI run, released by the OS when the process ends however it ends."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_FILE
        self._file = None

    def acquire(self, notify: recovery.Notify) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a+")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            notify(f"waiting for {self._holder()} on {self.path.parent} to finish")
            fcntl.flock(self._file, fcntl.LOCK_EX)
        self._file.seek(0)
        self._file.truncate()
        self._file.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        self._file.flush()

    def _holder(self) -> str:
        self._file.seek(0)
        try:
            return f"ballast run (pid {json.loads(self._file.read())['pid']})"
        except (ValueError, KeyError, TypeError):
            return "another ballast run"

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


_held: dict[Path, HomeLock] = {}


def prepare_run(
    settings: Settings, notify: recovery.Notify = recovery.say, dagster_instance: dg.DagsterInstance | None = None
) -> None:
    """Before a CLI run: take the home (waiting for another CLI run, and saying so), recover dead runs, wait for live ones.

    The home stays locked until this process exits. `dagster_instance`: one the caller
    opened and keeps for its runs (default: one opened and closed here).
    """
    if settings.home not in _held:
        lock = HomeLock(settings.home)
        lock.acquire(notify)
        _held[settings.home] = lock
    owned = dagster_instance is None
    dagster_instance = dagster_instance or instance(settings)
    waiting = False
    try:
        while True:
            found = recovery.recover(settings, dagster_instance)
            line = found.line()
            if line:
                notify(line)
            if not found.live_runs:
                return
            # A run launched from the UI: wait for it (and recover it if its process dies meanwhile).
            if not waiting:
                notify(f"waiting for {', '.join(found.live_runs)} on this home to finish")
                waiting = True
            time.sleep(recovery.WAIT_POLL_SECONDS)
    finally:
        if owned:
            dagster_instance.dispose()


def prepare_dev(settings: Settings, notify: recovery.Notify = recovery.say) -> dict[str, str]:
    """Before `dagster dev`: recover dead runs; returns the environment that marks its processes as this one's."""
    dagster_instance = instance(settings)
    try:
        line = recovery.recover(settings, dagster_instance).line()
        if line:
            notify(line)
    finally:
        dagster_instance.dispose()
    owner = recovery.Owner.current()
    write_atomic(
        settings.home / recovery.DEV_OWNER_FILE,
        json.dumps({"pid": owner.pid, "host": owner.host, "started": owner.started}),
    )
    return owner.env(settings.home)
