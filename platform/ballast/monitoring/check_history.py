"""The quality history's tables, built in DuckDB from the asset-check evaluations the Dagster instance recorded.

No Dagster here: the asset (monitoring/quality_history.py) reads the instance into a frame of
evaluations, one row each; everything else (days, streaks, recoveries) is SQL over that frame.
The report reads the tables back.
"""

from __future__ import annotations

import datetime as dt
import io

import duckdb
import pandas as pd

from ballast.common.columns import Column, create_table_sql, names

MONITORING_LAYER = "monitoring"
QUALITY_HISTORY_TABLE = f"{MONITORING_LAYER}.quality_history"
QUALITY_OPEN_FAILURES_TABLE = f"{MONITORING_LAYER}.quality_open_failures"
QUALITY_RECOVERIES_TABLE = f"{MONITORING_LAYER}.quality_recoveries"
TABLES = (QUALITY_HISTORY_TABLE, QUALITY_OPEN_FAILURES_TABLE, QUALITY_RECOVERIES_TABLE)
# The days `ballast report` sums pass rates over.
REPORT_DAYS = 7
# The checks the report, the worst-checks table and the plot list at most.
LISTED = 10
PLOTTED = 5

_ASSET = Column("asset_key", "VARCHAR", "Key of the checked asset, e.g. raw/transactions.", True)
_CHECK = Column("check_name", "VARCHAR", "Name of the asset check.", True)
_PARTITION = Column(
    "partition_key", "VARCHAR", "Partition the check evaluated, if the evaluation names one; null for the whole asset."
)

# One row per evaluation read from the instance (not stored: the tables below are built from it).
EVALUATION_COLUMNS = (
    _ASSET,
    _CHECK,
    _PARTITION,
    Column("execution_id", "BIGINT", "Id of the execution in the instance (orders evaluations of one time).", True),
    Column("run_id", "VARCHAR", "Run that evaluated the check.", True),
    Column("evaluated_at", "TIMESTAMP", "When the check reported its result, in UTC.", True),
    Column("passed", "BOOLEAN", "Whether the check passed.", True),
    Column("severity", "VARCHAR", "Severity of the check's result: WARN or ERROR.", True),
)

QUALITY_HISTORY_COLUMNS = (
    _ASSET,
    _CHECK,
    Column("day", "DATE", "UTC day of the evaluations.", True),
    Column("executions", "BIGINT", "Evaluations of the check that day (executions that reported a result).", True),
    Column("passed", "BIGINT", "Evaluations that passed.", True),
    Column("failed_warn", "BIGINT", "Evaluations that failed with severity WARN.", True),
    Column("failed_error", "BIGINT", "Evaluations that failed with severity ERROR.", True),
    Column("pass_rate", "DOUBLE", "passed / executions, 0 to 1.", True),
)

QUALITY_OPEN_FAILURES_COLUMNS = (
    _ASSET,
    _CHECK,
    _PARTITION,
    Column("severity", "VARCHAR", "Severity of the latest failed evaluation.", True),
    Column("failing_since", "TIMESTAMP", "First failure of the current failing streak, in UTC.", True),
    Column("last_failed_at", "TIMESTAMP", "Latest failed evaluation, in UTC.", True),
    Column("failed_evaluations", "BIGINT", "Failed evaluations in the current streak.", True),
    Column("age_hours", "DOUBLE", "Hours from failing_since to when the history was built.", True),
    Column("last_run_id", "VARCHAR", "Run of the latest failed evaluation.", True),
)

QUALITY_RECOVERIES_COLUMNS = (
    _ASSET,
    _CHECK,
    _PARTITION,
    Column("severity", "VARCHAR", "Worst severity of the episode's failures (ERROR over WARN).", True),
    Column("failed_at", "TIMESTAMP", "First failure of the episode, in UTC.", True),
    Column("recovered_at", "TIMESTAMP", "First passing evaluation after it, in UTC.", True),
    Column("failed_evaluations", "BIGINT", "Failed evaluations in the episode.", True),
    Column("recovery_hours", "DOUBLE", "Time to recovery: hours from failed_at to recovered_at.", True),
)

DDL = ";\n".join(
    (
        f"create schema if not exists {MONITORING_LAYER}",
        create_table_sql(QUALITY_HISTORY_TABLE, QUALITY_HISTORY_COLUMNS),
        create_table_sql(QUALITY_OPEN_FAILURES_TABLE, QUALITY_OPEN_FAILURES_COLUMNS),
        create_table_sql(QUALITY_RECOVERIES_TABLE, QUALITY_RECOVERIES_COLUMNS),
    )
)

# Each (check, partition) sequence in time order, numbered by the passes so far: the failures
# of one episode share a number k, and the pass that ends it is the one numbered k + 1.
_SEQUENCE = """
create or replace temp table sequence as
select *, count(*) filter (where passed) over (
    partition by asset_key, check_name, partition_key order by evaluated_at, execution_id
    rows between unbounded preceding and current row
) as passes_so_far
from evaluations
"""
_EPISODES = """
create or replace temp table episodes as
select asset_key, check_name, partition_key, passes_so_far as episode,
    min(evaluated_at) as failed_at, max(evaluated_at) as last_failed_at, count(*) as failed_evaluations,
    case when bool_or(severity = 'ERROR') then 'ERROR' else 'WARN' end as worst_severity,
    arg_max(severity, (evaluated_at, execution_id)) as last_severity,
    arg_max(run_id, (evaluated_at, execution_id)) as last_run_id
from sequence where not passed
group by all
"""
_RECOVERED = """
select e.*, p.evaluated_at as recovered_at
from episodes e left join sequence p
    on p.passed and p.passes_so_far = e.episode + 1 and p.asset_key = e.asset_key
    and p.check_name = e.check_name and p.partition_key is not distinct from e.partition_key
"""


def _hours(later: str, earlier: str) -> str:
    return f"epoch_us({later} - {earlier}) / 3.6e9"


def rebuild(con: duckdb.DuckDBPyConnection, evaluations: pd.DataFrame, as_of: dt.datetime) -> None:
    """Replace the three tables with what `evaluations` (EVALUATION_COLUMNS, any order) says, in one transaction.

    `as_of` (naive UTC) is when the history is built: the age of the open failures is counted to it.
    """
    con.execute(DDL)
    con.register("evaluations_frame", evaluations)
    try:
        cast = ", ".join(f"cast({c.name} as {c.type}) as {c.name}" for c in EVALUATION_COLUMNS)
        con.execute(f"create or replace temp table evaluations as select {cast} from evaluations_frame")
    finally:
        con.unregister("evaluations_frame")
    con.execute(_SEQUENCE)
    con.execute(_EPISODES)
    con.execute("begin transaction")
    try:
        for table in TABLES:
            con.execute(f"delete from {table}")
        con.execute(
            f"insert into {QUALITY_HISTORY_TABLE} by name"
            " select asset_key, check_name, cast(evaluated_at as date) as day, count(*) as executions,"
            " count(*) filter (where passed) as passed,"
            " count(*) filter (where not passed and severity = 'WARN') as failed_warn,"
            " count(*) filter (where not passed and severity = 'ERROR') as failed_error,"
            " count(*) filter (where passed) / count(*) as pass_rate"
            " from evaluations group by all"
        )
        con.execute(
            f"insert into {QUALITY_OPEN_FAILURES_TABLE} by name"
            " select asset_key, check_name, partition_key, last_severity as severity, failed_at as failing_since,"
            f" last_failed_at, failed_evaluations, {_hours('cast(? as timestamp)', 'failed_at')} as age_hours,"
            f" last_run_id from ({_RECOVERED}) where recovered_at is null",
            [as_of],
        )
        con.execute(
            f"insert into {QUALITY_RECOVERIES_TABLE} by name"
            " select asset_key, check_name, partition_key, worst_severity as severity, failed_at, recovered_at,"
            f" failed_evaluations, {_hours('recovered_at', 'failed_at')} as recovery_hours"
            f" from ({_RECOVERED}) where recovered_at is not null"
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise


def empty_evaluations() -> pd.DataFrame:
    return pd.DataFrame(columns=list(names(EVALUATION_COLUMNS)))


def per_check(con: duckdb.DuckDBPyConnection, since: dt.date | None = None) -> pd.DataFrame:
    """Per check (from `since` on, or all days): executions, passes, failures by severity, pass rate, open
    failures and time to recovery (median and max hours); worst pass rate first."""
    where = "where day >= ?" if since else ""
    return con.execute(
        "with days as ("
        " select asset_key, check_name, sum(executions) as executions, sum(passed) as passed,"
        " sum(failed_warn) as failed_warn, sum(failed_error) as failed_error"
        f" from {QUALITY_HISTORY_TABLE} {where} group by all),"
        " open as (select asset_key, check_name, count(*) as open_failures, max(age_hours) as open_hours"
        f" from {QUALITY_OPEN_FAILURES_TABLE} group by all),"
        " recovery as (select asset_key, check_name, count(*) as recoveries,"
        " median(recovery_hours) as median_recovery_hours, max(recovery_hours) as max_recovery_hours"
        f" from {QUALITY_RECOVERIES_TABLE} group by all)"
        " select d.asset_key, d.check_name, d.executions, d.passed, d.failed_warn, d.failed_error,"
        " d.passed / d.executions as pass_rate, coalesce(o.open_failures, 0) as open_failures, o.open_hours,"
        " coalesce(r.recoveries, 0) as recoveries, r.median_recovery_hours, r.max_recovery_hours"
        " from days d left join open o using (asset_key, check_name) left join recovery r using (asset_key, check_name)"
        " order by pass_rate, d.failed_error desc, d.failed_warn desc, d.asset_key, d.check_name",
        [since] if since else [],
    ).df()


def daily_pass_rate(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Every check's pass rate per day, with the overall rate of all checks as check `all checks`."""
    return con.execute(
        f"select day, asset_key || ':' || check_name as check_label, pass_rate from {QUALITY_HISTORY_TABLE}"
        " union all select day, 'all checks', sum(passed) / sum(executions)"
        f" from {QUALITY_HISTORY_TABLE} group by day order by day, check_label"
    ).df()


def plot_png(daily: pd.DataFrame, worst: list[str]) -> bytes:
    """Pass rate per day of all checks and of the `worst` checks, as one PNG for the UI."""
    # Imported here: matplotlib costs about a second, and only this step draws.
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.dates import DateFormatter, DayLocator

    fig, axes = plt.subplots(figsize=(9, 4), dpi=80)
    for check in ["all checks", *worst]:
        line = daily[daily["check_label"] == check]
        axes.plot(
            pd.to_datetime(line["day"]),
            line["pass_rate"] * 100,
            "-" if check == "all checks" else "--",
            marker="o",
            linewidth=2.5 if check == "all checks" else 1.2,
            label=check,
        )
    days = pd.to_datetime(daily["day"])
    # A day on each side: a history of one day would otherwise span years of empty axis.
    margin = pd.Timedelta(days=1)
    axes.set(title="Asset-check pass rate per day", xlabel="day (UTC)", ylabel="pass rate (%)", ylim=(-5, 105))
    axes.set_xlim(days.min() - margin, days.max() + margin)
    # Whole days only, at most about ten labels.
    axes.xaxis.set_major_locator(DayLocator(interval=max(1, (days.max() - days.min()).days // 8)))
    axes.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
    axes.legend(loc="best", fontsize="small")
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def report(con: duckdb.DuckDBPyConnection, now: dt.datetime, days: int = REPORT_DAYS) -> dict:
    """What `ballast report` shows: each check's pass rate over the last `days` UTC days (worst first), the open
    failures with their age at `now` (naive UTC), and each check's time to recovery."""
    since = now.date() - dt.timedelta(days=days - 1)
    checks = per_check(con, since)
    label = checks["asset_key"] + ":" + checks["check_name"]
    open_failures = con.execute(
        f"select asset_key || ':' || check_name, partition_key, severity, failing_since, failed_evaluations,"
        f" {_hours('cast(? as timestamp)', 'failing_since')} from {QUALITY_OPEN_FAILURES_TABLE}"
        " order by failing_since, 1, 2",
        [now],
    ).fetchall()
    recovery = con.execute(
        f"select asset_key || ':' || check_name, count(*), median(recovery_hours), max(recovery_hours)"
        f" from {QUALITY_RECOVERIES_TABLE} group by 1 order by 4 desc, 1"
    ).fetchall()
    return {
        "days": days,
        "since": since.isoformat(),
        "evaluations": int(checks["executions"].sum()),
        "passed": int(checks["passed"].sum()),
        "checks": [
            {"check": name, "executions": int(row.executions), "passed": int(row.passed), "pass_rate": row.pass_rate}
            for name, row in zip(label, checks.itertuples(), strict=True)
        ],
        "open_failures": [
            {
                "check": name,
                "partition": partition,
                "severity": severity,
                "failing_since": since_.isoformat(),
                "failed_evaluations": count,
                "age_hours": age,
            }
            for name, partition, severity, since_, count, age in open_failures
        ],
        "recovery": [
            {"check": name, "episodes": n, "median_hours": median, "max_hours": longest}
            for name, n, median, longest in recovery
        ],
    }


def format_report(quality: dict | None) -> list[str]:
    """The report's lines on check quality (None: no history built yet)."""
    if quality is None:
        return ["Check quality: no history yet (`ballast run` builds monitoring/quality_history)"]
    evaluated, passed = quality["evaluations"], quality["passed"]
    rate = f", {passed / evaluated:.1%} passed" if evaluated else ""
    lines = [
        f"Check quality since {quality['since']} ({quality['days']} days): {evaluated:,} evaluations"
        f" of {len(quality['checks'])} checks{rate}"
    ]
    failing = [c for c in quality["checks"] if c["passed"] < c["executions"]]
    lines += [
        f"  {c['check']}: {c['pass_rate']:.1%} passed ({c['passed']} of {c['executions']})" for c in failing[:LISTED]
    ]
    if len(failing) > LISTED:
        lines.append(f"  … and {len(failing) - LISTED} more below 100%")
    lines.append(f"  open failures: {len(quality['open_failures']) or 'none'}")
    for f in quality["open_failures"][:LISTED]:
        where = f" [{f['partition']}]" if f["partition"] else ""
        lines.append(
            f"    {f['check']}{where} {f['severity']}: failing for {f['age_hours']:.1f} h"
            f" (since {f['failing_since'][:16].replace('T', ' ')} UTC, {f['failed_evaluations']} evaluation(s))"
        )
    if quality["recovery"]:
        lines.append("  time to recovery, all history (median, max):")
        lines += [
            f"    {r['check']}: {r['median_hours']:.1f} h, {r['max_hours']:.1f} h over {r['episodes']} episode(s)"
            for r in quality["recovery"][:LISTED]
        ]
    return lines
