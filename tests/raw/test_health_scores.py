"""The raw health measures on a DuckDB file, without Dagster: a constant history's floor, gaps in ranges, today's day."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ballast.raw import health
from ballast.raw.landing import RAW_DDL
from tests.conftest import START, make_settings

TODAY = START + dt.timedelta(days=60)


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(RAW_DDL)
    yield con
    con.close()


def _day(con: duckdb.DuckDBPyConnection, n: int, rows: int, empty_country: int = 0) -> dt.date:
    """Day n (from 1) with `rows` rows, the first `empty_country` of them without a country."""
    day = START + dt.timedelta(days=n - 1)
    con.execute(
        "insert into raw.transactions (transaction_id, customer_id, merchant_id, amount, currency, event_timestamp,"
        " channel, country, event_date, source_file, file_hash, line_number, load_id)"
        " select 'T' || i, 'C1', 'M1', '1.00', 'USD', $day::varchar || 'T12:00:00Z', 'web',"
        " case when i < $empty then '' else 'US' end, $day, 'f_' || $day::varchar || '.csv', 'h', i + 2, 'run'"
        " from range($rows) as t(i)",
        {"day": day, "rows": rows, "empty": empty_country},
    )
    return day


def _flagged(con, settings, day: dt.date) -> dict[str, health.Judged]:
    return {j.metric: j for j in health.anomalies(con, settings, day, day, TODAY) if j.anomalous}


def test_a_constant_history_tolerates_a_small_move_but_not_a_jump(tmp_path: Path, con) -> None:
    settings = make_settings(tmp_path)
    for n in range(1, 29):
        _day(con, n, 100)
    # MAD 0: the scale's floor (5 % of the median) makes 110 rows z = 1.3, and 150 rows z = 6.7.
    small = _day(con, 29, 110)
    (judged,) = [j for j in health.anomalies(con, settings, small, small, TODAY) if j.metric == health.ROW_COUNT]
    assert not judged.anomalous and judged.z == pytest.approx(0.6745 * 10 / 5)
    assert (judged.low, judged.high) == pytest.approx((100 - 3.5 * 5 / 0.6745, 100 + 3.5 * 5 / 0.6745))
    jump = _day(con, 30, 150)
    assert _flagged(con, settings, jump)[health.ROW_COUNT].z == pytest.approx(0.6745 * 50 / 5)


def test_a_column_that_is_never_empty_warns_from_about_five_percent_empty(tmp_path: Path, con) -> None:
    settings = make_settings(tmp_path)
    for n in range(1, 29):
        _day(con, n, 200)
    assert "country" not in _flagged(con, settings, _day(con, 29, 200, empty_country=8))
    assert _flagged(con, settings, _day(con, 30, 200, empty_country=12))["country"].value == pytest.approx(0.06)


def test_too_little_history_and_todays_row_count_are_not_judged(tmp_path: Path, con) -> None:
    settings = make_settings(tmp_path, anomaly_min_history_days=5)
    for n in range(1, 5):
        _day(con, n, 100)
    early = _day(con, 5, 1000)
    assert health.anomalies(con, settings, early, early, TODAY) == []
    # Today's partition is still being delivered: its null shares are judged, its row count is not.
    today = _day(con, 11, 5)
    assert [j.metric for j in health.anomalies(con, settings, today, today, today)] == ["channel", "country"]
    later = {j.metric for j in health.anomalies(con, settings, today, today, TODAY)}
    assert later == {"channel", "country", health.ROW_COUNT}


def test_missing_days_are_runs_of_days_up_to_the_latest_delivery(con) -> None:
    assert health.missing_days(con, START, []) == health.MissingDays(START, None, [])
    delivered = [1, 2, 6, 8, 9, 12]
    landing = [START + dt.timedelta(days=n - 1) for n in delivered[:3]]
    for n in delivered[3:]:
        _day(con, n, 1)
    found = health.missing_days(con, START, landing)
    assert [str(r) for r in found.ranges] == ["2025-01-03..2025-01-05", "2025-01-07", "2025-01-10..2025-01-11"]
    assert (found.count, found.last) == (6, START + dt.timedelta(days=11))
