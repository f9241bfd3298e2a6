"""The raw layer's health checks (missing days, volume and null-share anomalies) and its ingestion-lag metadata.

The raw step loads a window of partitions in one run (a single-run backfill), so each
check reports once for the window and its metadata lists every day it flags. The
metadata key "window" holds the flagged days when a check fails: the alert sensor sends
one alert per check and "window", so a gap or a jump is announced once, not on every run.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import duckdb
from tabulate import tabulate

from ballast.raw import health
from ballast.raw.tables import OPTIONAL_COLUMNS
from ballast.settings import Settings

MISSING_DAYS = "no_missing_days"
ROW_COUNT_ANOMALY = "row_count_in_expected_range"
NULL_SHARE_ANOMALY = "null_shares_in_expected_range"
# The most flagged days (or day ranges) a check's metadata table lists, and its description names.
MAX_LISTED_DAYS = 50
MAX_DESCRIBED = 5
# The ingestion-lag gauge's metadata keys on raw/transactions (`ballast report` reads them back).
LAG_PARTITIONS = "ingestion_lag_partitions"
LAG_MEDIAN_HOURS = "ingestion_lag_median_hours"
LAG_MAX_HOURS = "ingestion_lag_max_hours"
LAG_MAX_PARTITION = "ingestion_lag_max_partition"
LAG_UNMEASURED = "ingestion_lag_unmeasured_partitions"


def check_specs(settings: Settings, asset: dg.AssetKey) -> list[dg.AssetCheckSpec]:
    z = (
        f"|z| at most BALLAST_ANOMALY_Z ({settings.anomaly_z:g}) against the median and MAD of the previous"
        f" BALLAST_ANOMALY_WINDOW_DAYS ({settings.anomaly_window_days}) days with data, judged once"
        f" BALLAST_ANOMALY_MIN_HISTORY_DAYS ({settings.anomaly_min_history_days}) such days exist"
    )
    return [
        dg.AssetCheckSpec(
            MISSING_DAYS,
            asset=asset,
            description=f"Every day from BALLAST_START_DATE ({settings.start_date}) to the latest delivered day has a"
            " landing file (or rows loaded from one); a day whose only file was rejected counts as delivered, since"
            " no_rejected_files names that file, and days after the latest delivery are not judged (freshness covers them).",
        ),
        dg.AssetCheckSpec(
            ROW_COUNT_ANOMALY,
            asset=asset,
            description=f"Each day's row count is in its expected range (WARN): {z}; today's partial day is not judged.",
        ),
        dg.AssetCheckSpec(
            NULL_SHARE_ANOMALY,
            asset=asset,
            description=f"Each day's share of empty values in the optional columns ({', '.join(OPTIONAL_COLUMNS)})"
            f" is in its expected range (WARN): {z}.",
        ),
    ]


def _listed(items: list, limit: int = MAX_DESCRIBED) -> str:
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def missing_days_result(
    con: duckdb.DuckDBPyConnection, settings: Settings, asset: dg.AssetKey, landing_dates: list[dt.date]
) -> dg.AssetCheckResult:
    found = health.missing_days(con, settings.start_date, landing_dates)
    judged = f"{found.first} to {found.last}" if found.last else "no day delivered yet"
    ranges = [str(r) for r in found.ranges]
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=MISSING_DAYS,
        passed=not ranges,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{found.count} day(s) from {found.first} to {found.last} have no landing file: {_listed(ranges)}"
        if ranges
        else None,
        metadata={
            "window": _listed(ranges) if ranges else judged,
            "judged": judged,
            "missing_days": found.count,
            "missing": dg.MetadataValue.md(
                tabulate(
                    [[str(r), r.days] for r in found.ranges[:MAX_LISTED_DAYS]]
                    + (
                        [[f"... {len(ranges) - MAX_LISTED_DAYS} more ranges", ""]]
                        if len(ranges) > MAX_LISTED_DAYS
                        else []
                    ),
                    headers=["days", "count"],
                    tablefmt="github",
                )
            ),
        },
    )


def _value(metric: str, value: float) -> str:
    return f"{value:,.0f}" if metric == health.ROW_COUNT else f"{value:.1%}"


def _anomaly_result(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    asset: dg.AssetKey,
    check: str,
    judged: list[health.Judged],
    window: str,
) -> dg.AssetCheckResult:
    flagged = [j for j in judged if j.anomalous]
    rows = [
        [
            str(j.day),
            j.metric,
            _value(j.metric, j.value),
            f"{_value(j.metric, j.low)}..{_value(j.metric, j.high)}",
            _value(j.metric, j.median),
            f"{j.z:+.1f}",
            j.history,
        ]
        for j in flagged
    ]
    described = [f"{j.day} {j.metric} {r[2]} (expected {r[3]}, z {r[5]})" for j, r in zip(flagged, rows, strict=True)]
    days = health.day_ranges(con, [j.day for j in flagged])
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=check,
        passed=not flagged,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"outside the expected range on {len(flagged)} day-metric(s): {_listed(described)}"
        if flagged
        else None,
        metadata={
            "window": _listed([str(d) for d in days]) if flagged else window,
            "judged_days": len({j.day for j in judged}),
            "anomalies": len(flagged),
            "threshold_z": settings.anomaly_z,
            "history_window_days": settings.anomaly_window_days,
            "flagged": dg.MetadataValue.md(
                tabulate(
                    rows[:MAX_LISTED_DAYS],
                    headers=["day", "metric", "observed", "expected range", "median", "z", "history days"],
                    tablefmt="github",
                )
            ),
            "flagged_values": dg.MetadataValue.json(
                [
                    {"day": str(j.day), "metric": j.metric, "observed": j.value, "low": j.low, "high": j.high, "z": j.z}
                    for j in flagged[:MAX_LISTED_DAYS]
                ]
            ),
        },
    )


def anomaly_results(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    asset: dg.AssetKey,
    start: dt.date,
    end: dt.date,
    today: dt.date,
) -> list[dg.AssetCheckResult]:
    judged = health.anomalies(con, settings, start, end, today)
    window = f"{start} to {end}"
    return [
        _anomaly_result(
            con, settings, asset, ROW_COUNT_ANOMALY, [j for j in judged if j.metric == health.ROW_COUNT], window
        ),
        _anomaly_result(
            con, settings, asset, NULL_SHARE_ANOMALY, [j for j in judged if j.metric != health.ROW_COUNT], window
        ),
    ]


def load_times(instance: dg.DagsterInstance, load_ids: list[str]) -> dict[str, float]:
    """When each load id (a Dagster run id) was loaded: the start of its run, from the instance's run history."""
    if not load_ids:
        return {}
    records = instance.get_run_records(filters=dg.RunsFilter(run_ids=load_ids))
    return {r.dagster_run.run_id: r.start_time for r in records if r.start_time is not None}


def lag_metadata(lag: health.IngestionLag) -> dict:
    """The ingestion-lag gauge of the window, for the raw materialization."""
    metadata: dict = {LAG_PARTITIONS: lag.measured}
    if lag.measured:
        metadata |= {
            LAG_MEDIAN_HOURS: round(lag.median_hours, 2),
            LAG_MAX_HOURS: round(lag.max_hours, 2),
            LAG_MAX_PARTITION: str(lag.max_day),
        }
    if lag.measured < lag.partitions:
        # Their loads' runs are no longer in the run history.
        metadata[LAG_UNMEASURED] = lag.partitions - lag.measured
    return metadata
