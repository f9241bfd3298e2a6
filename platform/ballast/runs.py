"""Running the platform outside the UI: the Dagster instance under BALLAST_HOME and refresh runs."""

import datetime as dt
import os

import dagster as dg
import yaml
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from ballast import run_guard
from ballast.definitions import REFRESH_JOB, build_defs
from ballast.lib.atomic import write_atomic
from ballast.lib.contracts import write_data_source
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
# worker's health, so a run whose process died is found by run_guard.recover, which
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
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def refresh(
    settings: Settings,
    start: dt.date,
    end: dt.date,
    dagster_instance: dg.DagsterInstance | None = None,
    selection: dg.AssetSelection | None = None,
    log_level: str = "DEBUG",
    op_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """Materialize the selected assets (default: all) for the days [start, end] in one run.

    `op_config` is run config per op, e.g. {"model__churn_model": {"shuffle_labels": True}}.
    """
    defs = build_defs(settings)
    job = defs.resolve_job_def(REFRESH_JOB)
    asset_keys = None
    if selection is not None:
        asset_keys = list(selection.resolve(defs.resolve_asset_graph()))
    tags = {
        ASSET_PARTITION_RANGE_START_TAG: start.isoformat(),
        ASSET_PARTITION_RANGE_END_TAG: end.isoformat(),
        **run_guard.run_tags(),
    }
    owned = dagster_instance is None
    dagster_instance = dagster_instance or instance(settings)
    try:
        with run_guard.marked_children(settings.home):
            return job.execute_in_process(
                run_config={
                    "loggers": {"console": {"config": {"log_level": log_level}}},
                    "ops": {op: {"config": config} for op, config in (op_config or {}).items()},
                },
                instance=dagster_instance,
                tags=tags,
                asset_selection=asset_keys,
                raise_on_error=False,
            )
    finally:
        if owned:
            dagster_instance.dispose()
