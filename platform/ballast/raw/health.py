"""The raw layer's health, measured in DuckDB: days without a landing file, volume and null-share anomalies, ingestion lag.

No Dagster here (raw/health_checks.py turns these into check results): every function
takes a warehouse connection and returns small per-day summaries computed in SQL.

Anomalies use a robust z-score against the trailing window of days with data:
z = 0.6745 · (x − median) / MAD, the MAD (median absolute deviation) scaled by 0.6745 so
that z reads like a standard normal score (Iglewicz and Hoaglin's modified z-score). A
history whose values barely vary (MAD near 0, e.g. a column that is never empty) would
make any wobble an "anomaly", so the scale has a floor: a share of the median
(SCALE_FLOOR_OF_MEDIAN) or, for a median near 0, an absolute minimum (one row; one
percentage point of null share).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb

from ballast.raw.tables import OPTIONAL_COLUMNS, RAW_REJECTED_FILES_TABLE, RAW_TRANSACTIONS_TABLE
from ballast.settings import Settings

# Scales the MAD to a normal distribution's standard deviation: z = MAD_TO_Z · (x − median) / MAD.
MAD_TO_Z = 0.6745
# The scale never falls below this share of the median: with a constant history a day must
# move by anomaly_z · 5 % / 0.6745 (26 % at z 3.5) to warn, while a 5x jump still does.
SCALE_FLOOR_OF_MEDIAN = 0.05
# Nor below these, for a median near 0: one row, and one percentage point of null share
# (a column that is never empty warns from 5.2 % empty at z 3.5).
ROW_COUNT_SCALE_FLOOR = 1.0
NULL_SHARE_SCALE_FLOOR = 0.01
ROW_COUNT = "row_count"


@dataclass(frozen=True)
class DayRange:
    first: dt.date
    last: dt.date
    days: int

    def __str__(self) -> str:
        return str(self.first) if self.days == 1 else f"{self.first}..{self.last}"


@dataclass(frozen=True)
class MissingDays:
    """Days from the start date to the latest delivered day with no landing file, as runs of consecutive days."""

    first: dt.date
    last: dt.date | None
    ranges: list[DayRange]

    @property
    def count(self) -> int:
        return sum(r.days for r in self.ranges)


def missing_days(con: duckdb.DuckDBPyConnection, start_date: dt.date, landing_dates: list[dt.date]) -> MissingDays:
    """Days in [start_date, latest delivered day] that no landing file, loaded row or rejected file belongs to.

    A day counts as delivered if a landing file is dated it now, or if raw rows or a
    rejection record carry its date (landing folders are often cleared once loaded). A
    day whose only file was rejected is delivered: no_rejected_files names that file.
    """
    params = {"landing": landing_dates, "start": start_date}
    delivered = f"""
        delivered as (
            select day from (
                select unnest($landing::date[]) as day
                union select distinct event_date from {RAW_TRANSACTIONS_TABLE}
                union select distinct event_date from {RAW_REJECTED_FILES_TABLE} where event_date is not null
            ) where day >= $start
        )"""
    last = con.execute(f"with {delivered} select max(day) from delivered", params).fetchone()[0]
    if last is None:
        return MissingDays(start_date, None, [])
    missing = con.execute(
        f"""
        with {delivered}
        select cast(t.day as date) as day
        from generate_series($start::timestamp, $last::timestamp, interval 1 day) as t(day)
        where cast(t.day as date) not in (select day from delivered)
        """,
        {**params, "last": last},
    ).fetchall()
    return MissingDays(start_date, last, day_ranges(con, [d for (d,) in missing]))


def day_ranges(con: duckdb.DuckDBPyConnection, days: list[dt.date]) -> list[DayRange]:
    """`days` as runs of consecutive days, in order."""
    rows = con.execute(
        """
        with islands as (
            select day, day - cast(row_number() over (order by day) as integer) as island
            from (select distinct unnest($days::date[]) as day)
        )
        select min(day), max(day), count(*) from islands group by island order by 1
        """,
        {"days": days},
    ).fetchall()
    return [DayRange(first, last, n) for first, last, n in rows]


@dataclass(frozen=True)
class Judged:
    """One metric of one day against its trailing history: the observed value, its z-score and the expected range."""

    day: dt.date
    metric: str
    value: float
    median: float
    z: float
    low: float
    high: float
    history: int
    anomalous: bool


def _daily_metrics_sql() -> str:
    # Null share over the rows whose fields parsed (a malformed line has none); blank counts
    # as null, as in the clean layer. The day still being delivered has no row count yet.
    shares = ",\n".join(
        f"count(*) filter (where raw_line is null and nullif(trim({c}), '') is null) / nullif(count(*) filter"
        f" (where raw_line is null), 0) as {c}"
        for c in OPTIONAL_COLUMNS
    )
    return f"""
        select
            event_date,
            case when event_date < $today then count(*)::double end as {ROW_COUNT},
            {shares}
        from {RAW_TRANSACTIONS_TABLE}
        where event_date between $history_from and $end
        group by event_date
    """


def anomalies(
    con: duckdb.DuckDBPyConnection, settings: Settings, start: dt.date, end: dt.date, today: dt.date
) -> list[Judged]:
    """Every day of [start, end] with enough history, per metric (row count, null share of each optional column), judged.

    The history of a day is the days with data among the anomaly_window_days before it
    (from the whole table, not only this run's window); a day with fewer than
    anomaly_min_history_days of them is not judged. Days before `today` only for the
    row count: today's partition is still being delivered.
    """
    window = settings.anomaly_window_days
    floors = " ".join(f"when '{c}' then {NULL_SHARE_SCALE_FLOOR}" for c in OPTIONAL_COLUMNS)
    rows = con.execute(
        f"""
        with daily as ({_daily_metrics_sql()}),
        long as (unpivot daily on {ROW_COUNT}, {", ".join(OPTIONAL_COLUMNS)} into name metric value value),
        history as (
            select
                event_date, metric, value,
                median(value) over w as center,
                mad(value) over w as mad,
                count(value) over w as history
            from long
            window w as (
                partition by metric order by event_date
                range between interval {window} days preceding and interval 1 day preceding
            )
        ),
        scaled as (
            select *, greatest(
                mad, {SCALE_FLOOR_OF_MEDIAN} * abs(center),
                case metric {floors} else {ROW_COUNT_SCALE_FLOOR} end
            ) as scale
            from history
            where event_date between $start and $end and history >= $min_history
        )
        select
            event_date, metric, value, center,
            {MAD_TO_Z} * (value - center) / scale as z,
            greatest(center - $z * scale / {MAD_TO_Z}, 0) as low,
            case when metric = '{ROW_COUNT}' then center + $z * scale / {MAD_TO_Z}
                 else least(center + $z * scale / {MAD_TO_Z}, 1) end as high,
            history
        from scaled
        order by event_date, metric
        """,
        {
            "today": today,
            "history_from": start - dt.timedelta(days=window),
            "start": start,
            "end": end,
            "min_history": settings.anomaly_min_history_days,
            "z": settings.anomaly_z,
        },
    ).fetchall()
    return [
        Judged(day, metric, value, center, z, low, high, history, abs(z) > settings.anomaly_z)
        for day, metric, value, center, z, low, high, history in rows
    ]


@dataclass(frozen=True)
class IngestionLag:
    """Per partition, hours from its latest event to the load of the file that brought it; median and max over a window."""

    partitions: int
    measured: int
    median_hours: float | None
    max_hours: float | None
    max_day: dt.date | None


def ingestion_lag(
    con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, load_times: dict[str, float]
) -> IngestionLag:
    """The lag of every partition of [start, end] with rows, given each load id's load time (epoch seconds).

    The latest event is the latest event timestamp, read by DuckDB's cast (a naive value
    in the session's time zone: UTC on every warehouse connection), no later than its
    load: a gauge needs the instant, not the clean layer's strict reading, and a timestamp
    after its load is a bad one, which the clean layer quarantines. A partition whose
    loads have no known time (a run history that was cleared) is not measured.
    """
    row = con.execute(
        f"""
        with loads as (
            select unnest($ids::varchar[]) as load_id, to_timestamp(unnest($times::double[])) as loaded_at
        ),
        events as (
            select event_date, load_id, try_cast(trim(event_timestamp) as timestamptz) as event_at
            from {RAW_TRANSACTIONS_TABLE}
            where event_date between $start and $end and raw_line is null
        ),
        per_day as (
            select event_date, arg_max(loaded_at, event_at) - max(event_at) as lag
            from events join loads using (load_id)
            where event_at <= loaded_at
            group by event_date
        ),
        hours as (select event_date, epoch(lag) / 3600 as hours from per_day)
        select
            (select count(distinct event_date) from {RAW_TRANSACTIONS_TABLE} where event_date between $start and $end),
            count(*), median(hours), max(hours), arg_max(event_date, hours)
        from hours
        """,
        {"ids": list(load_times), "times": list(load_times.values()), "start": start, "end": end},
    ).fetchone()
    partitions, measured, median, worst, worst_day = row
    return IngestionLag(partitions, measured, median, worst, worst_day)


def load_ids(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> list[str]:
    """The load ids (Dagster run ids) of the rows of [start, end]."""
    return [
        r[0]
        for r in con.execute(
            f"select distinct load_id from {RAW_TRANSACTIONS_TABLE} where event_date between ? and ? order by 1",
            [start, end],
        ).fetchall()
    ]
