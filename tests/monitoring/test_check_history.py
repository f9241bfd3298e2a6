"""The quality history's tables from constructed evaluations, in DuckDB: days, streaks per partition, recoveries, the stale-failure check."""

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ballast.monitoring import check_history
from ballast.monitoring.check_history import (
    QUALITY_HISTORY_TABLE,
    QUALITY_OPEN_FAILURES_TABLE,
    QUALITY_RECOVERIES_TABLE,
)
from ballast.monitoring.quality_history import STALE_FAILURE_DAYS, stale_check

T0 = dt.datetime(2025, 3, 1, 22, 0)
NOW = T0 + dt.timedelta(days=3)


def _frame(rows: list[tuple[str, str | None, float, bool, str]]) -> pd.DataFrame:
    """(check, partition, hours after T0, passed, severity) -> evaluation rows of asset `a`, in the given order."""
    return pd.DataFrame(
        [
            {
                "asset_key": "a",
                "check_name": check,
                "partition_key": partition,
                "execution_id": i,
                "run_id": f"run{i}",
                "evaluated_at": T0 + dt.timedelta(hours=hours),
                "passed": passed,
                "severity": severity,
            }
            for i, (check, partition, hours, passed, severity) in enumerate(rows)
        ]
    )


ROWS = [
    # x: fail (WARN), fail (ERROR) after midnight, pass, fail, fail: one recovery of 5 h, open since 30 h.
    ("x", None, 0, False, "WARN"),
    ("x", None, 3, False, "ERROR"),
    ("x", None, 5, True, "ERROR"),
    ("x", None, 30, False, "ERROR"),
    ("x", None, 31, False, "ERROR"),
    # y per partition: p1 fails then passes (2 h), p2 passes then fails (open), p1 passes again.
    ("y", "p1", 1, False, "WARN"),
    ("y", "p2", 1.5, True, "WARN"),
    ("y", "p1", 3, True, "WARN"),
    ("y", "p2", 4, False, "WARN"),
    ("y", "p1", 6, True, "WARN"),
    # z: an old failure, never fixed.
    ("z", None, -24 * (STALE_FAILURE_DAYS + 1), False, "ERROR"),
]


@pytest.fixture()
def con():
    connection = duckdb.connect()
    check_history.rebuild(connection, _frame(ROWS), NOW)
    yield connection
    connection.close()


def test_each_day_counts_passes_and_failures_by_severity(con) -> None:
    rows = con.execute(
        f"select check_name, day, executions, passed, failed_warn, failed_error, pass_rate from {QUALITY_HISTORY_TABLE} order by 1, 2"
    ).fetchall()
    day0, day1, day2 = T0.date(), T0.date() + dt.timedelta(days=1), T0.date() + dt.timedelta(days=2)
    assert rows == [
        ("x", day0, 1, 0, 1, 0, 0.0),
        ("x", day1, 2, 1, 0, 1, 0.5),
        ("x", day2, 2, 0, 0, 2, 0.0),
        ("y", day0, 2, 1, 1, 0, 0.5),
        ("y", day1, 3, 2, 1, 0, pytest.approx(2 / 3)),
        ("z", day0 - dt.timedelta(days=STALE_FAILURE_DAYS + 1), 1, 0, 0, 1, 0.0),
    ]


def test_open_failures_start_at_the_current_streak_per_partition(con) -> None:
    rows = con.execute(
        f"select check_name, partition_key, severity, failing_since, last_failed_at, failed_evaluations, age_hours"
        f" from {QUALITY_OPEN_FAILURES_TABLE} order by 1"
    ).fetchall()
    hours = dt.timedelta(hours=1)
    z_since = T0 - dt.timedelta(days=STALE_FAILURE_DAYS + 1)
    assert rows == [
        (
            "x",
            None,
            "ERROR",
            T0 + 30 * hours,
            T0 + 31 * hours,
            2,
            pytest.approx((NOW - T0).total_seconds() / 3600 - 30),
        ),
        ("y", "p2", "WARN", T0 + 4 * hours, T0 + 4 * hours, 1, pytest.approx((NOW - T0).total_seconds() / 3600 - 4)),
        ("z", None, "ERROR", z_since, z_since, 1, pytest.approx((NOW - z_since).total_seconds() / 3600)),
    ]


def test_a_recovery_runs_from_the_first_failure_to_the_first_pass_after_it(con) -> None:
    rows = con.execute(
        f"select check_name, partition_key, severity, failed_at, recovered_at, failed_evaluations, recovery_hours"
        f" from {QUALITY_RECOVERIES_TABLE} order by 1"
    ).fetchall()
    hours = dt.timedelta(hours=1)
    assert rows == [
        ("x", None, "ERROR", T0, T0 + 5 * hours, 2, 5.0),
        ("y", "p1", "WARN", T0 + hours, T0 + 3 * hours, 1, 2.0),
    ]
    summary = check_history.per_check(con).set_index("check_name")
    assert summary.loc[
        "x", ["open_failures", "recoveries", "median_recovery_hours", "max_recovery_hours"]
    ].tolist() == [1, 1, 5.0, 5.0]


def test_the_stale_failure_check_names_only_the_old_failure(con) -> None:
    result = stale_check(con)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert result.description.startswith(f"failing for more than {STALE_FAILURE_DAYS} days: a:z (")
    assert result.metadata["stale_open_failures"].value == 1


def test_rebuilding_replaces_the_tables_and_an_empty_history_is_empty(con) -> None:
    before = con.execute(f"select * from {QUALITY_HISTORY_TABLE} order by all").fetchall()
    check_history.rebuild(con, _frame(ROWS), NOW)
    assert con.execute(f"select * from {QUALITY_HISTORY_TABLE} order by all").fetchall() == before
    check_history.rebuild(con, check_history.empty_evaluations(), NOW)
    assert [con.execute(f"select count(*) from {t}").fetchone()[0] for t in check_history.TABLES] == [0, 0, 0]
    assert stale_check(con).passed
