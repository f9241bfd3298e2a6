"""monitoring/quality_history: every asset check's evaluations read from the Dagster instance, as daily pass rates,
open failures and times to recovery in the warehouse.

Public Dagster API only: the code location's check keys and each check's execution history
(`event_log_storage.get_asset_check_execution_history`, read page by page like the alert sensor).
"""

import base64
import datetime as dt
import hashlib
from collections.abc import Callable

import dagster as dg
import duckdb
import pandas as pd

from ballast.common.atomic import write_atomic
from ballast.common.metadata import (
    NO_RETRY_REASON,
    file_url,
    image_markdown,
    readable,
    table_metadata,
    warehouse_table_name,
)
from ballast.monitoring import check_history
from ballast.monitoring.check_executions import evaluated, executions_after
from ballast.monitoring.check_history import (
    LISTED,
    MONITORING_LAYER,
    PLOTTED,
    QUALITY_HISTORY_COLUMNS,
    QUALITY_HISTORY_TABLE,
    QUALITY_OPEN_FAILURES_TABLE,
    QUALITY_RECOVERIES_TABLE,
)
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

QUALITY_HISTORY = dg.AssetKey([MONITORING_LAYER, "quality_history"])
STALE_FAILURE_CHECK = "no_stale_open_failures"
# An open failure older than this is one nobody is fixing: the history's own check warns.
STALE_FAILURE_DAYS = 7
# Steps of a run start by priority (Dagster's default 0): the history runs after every other ready step, so it
# counts the checks its own run evaluated.
PRIORITY_TAG = "dagster/priority"
LAST = "-1"

Repository = Callable[[], dg.RepositoryDefinition]


def executions(instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> list:
    """Every evaluated execution of `key`, newest first."""
    return [r for r in executions_after(instance.event_log_storage, key) if evaluated(r)]


def evaluations(instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey]) -> pd.DataFrame:
    """One row per evaluation of the `keys` (check_history.EVALUATION_COLUMNS)."""
    rows = [
        {
            "asset_key": key.asset_key.to_user_string(),
            "check_name": key.name,
            "partition_key": record.partition,
            "execution_id": record.id,
            "run_id": record.run_id,
            "evaluated_at": record.event.timestamp,
            "passed": record.event.dagster_event.event_specific_data.passed,
            "severity": record.event.dagster_event.event_specific_data.severity.value,
        }
        for key in keys
        for record in executions(instance, key)
    ]
    if not rows:
        return check_history.empty_evaluations()
    frame = pd.DataFrame(rows)
    frame["evaluated_at"] = pd.to_datetime(frame["evaluated_at"], unit="s")
    return frame


def _markdown(frame: pd.DataFrame) -> str:
    return frame.round(3).to_markdown(index=False) if len(frame) else "none"


def _plot_metadata(settings: Settings, png: bytes) -> dict:
    """The pass-rate plot inline (a file named by its content, so each event keeps its own plot) and embedded."""
    path = settings.plots_dir / f"quality_history_{hashlib.sha256(png).hexdigest()[:16]}.png"
    write_atomic(path, png)
    return {
        "pass_rate_over_time": image_markdown("Pass rate per day", file_url(settings, path)),
        "pass_rate_over_time_embedded": dg.MetadataValue.md(
            f"![Pass rate per day](data:image/png;base64,{base64.b64encode(png).decode()})"
        ),
    }


def _metadata(settings: Settings, con: duckdb.DuckDBPyConnection, checks: int) -> dict:
    summary = check_history.per_check(con)
    open_failures = con.execute(
        f"select asset_key, check_name, partition_key, severity, failing_since, failed_evaluations, age_hours"
        f" from {QUALITY_OPEN_FAILURES_TABLE} order by age_hours desc"
    ).df()
    [(days, evaluations_, failed, recoveries)] = con.execute(
        f"select count(distinct day), coalesce(sum(executions), 0), coalesce(sum(executions - passed), 0),"
        f" (select count(*) from {QUALITY_RECOVERIES_TABLE}) from {QUALITY_HISTORY_TABLE}"
    ).fetchall()
    worst = summary[summary["pass_rate"] < 1].head(PLOTTED)
    metadata: dict = {
        "checks": checks,
        "checks_evaluated": len(summary),
        "evaluations": int(evaluations_),
        "failed_evaluations": int(failed),
        "open_failures": len(open_failures),
        "recoveries": int(recoveries),
        "days": int(days),
        "dagster/row_count": int(con.execute(f"select count(*) from {QUALITY_HISTORY_TABLE}").fetchone()[0]),
        "worst_checks": dg.MetadataValue.md(_markdown(summary.head(LISTED))),
        "open_failures_by_age": dg.MetadataValue.md(_markdown(open_failures.head(LISTED))),
        "tables": ", ".join(warehouse_table_name(t) for t in check_history.TABLES),
    }
    if days:
        labels = (worst["asset_key"] + ":" + worst["check_name"]).tolist()
        metadata |= _plot_metadata(settings, check_history.plot_png(check_history.daily_pass_rate(con), labels))
    return readable(metadata)


def stale_check(con: duckdb.DuckDBPyConnection) -> dg.AssetCheckResult:
    """WARN naming the open failures older than STALE_FAILURE_DAYS (their age as of the history's build)."""
    stale = con.execute(
        f"select asset_key || ':' || check_name || coalesce(' [' || partition_key || ']', ''), age_hours"
        f" from {QUALITY_OPEN_FAILURES_TABLE} where age_hours > ? order by age_hours desc",
        [STALE_FAILURE_DAYS * 24],
    ).fetchall()
    return dg.AssetCheckResult(
        check_name=STALE_FAILURE_CHECK,
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description="failing for more than"
        f" {STALE_FAILURE_DAYS} days: " + ", ".join(f"{name} ({hours / 24:.1f} d)" for name, hours in stale[:LISTED])
        if stale
        else None,
        metadata=readable({"stale_open_failures": len(stale), "threshold_days": STALE_FAILURE_DAYS}),
    )


def quality_history_asset(settings: Settings, repository: Repository) -> dg.AssetsDefinition:
    @dg.asset(
        key=QUALITY_HISTORY,
        group_name=MONITORING_LAYER,
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        op_tags={PRIORITY_TAG: LAST},
        metadata={
            NO_RETRY_REASON: "reads the local instance and rewrites local warehouse tables: a retry would meet the"
            " same failure, and the next run rebuilds the history whole",
            **table_metadata(warehouse_table_name(QUALITY_HISTORY_TABLE), QUALITY_HISTORY_COLUMNS),
        },
        check_specs=[
            dg.AssetCheckSpec(
                STALE_FAILURE_CHECK,
                asset=QUALITY_HISTORY,
                description=f"No asset check has been failing for more than {STALE_FAILURE_DAYS} days;"
                " WARN naming those that have.",
            )
        ],
    )
    def quality_history(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Pass rate of every asset check per day, its open failures with their age, and its times to recovery, from the instance's check evaluations."""
        keys = sorted(repository().asset_graph.asset_check_keys, key=lambda k: k.to_user_string())
        frame = evaluations(context.instance, keys)
        as_of = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        with warehouse.connect() as con:
            check_history.rebuild(con, frame, as_of)
            metadata = _metadata(settings, con, len(keys))
            stale = stale_check(con)
        yield dg.MaterializeResult(metadata=metadata)
        yield stale

    return quality_history
