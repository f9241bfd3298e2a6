"""Amounts and timestamps at the edges of the input contract, one case per event date.

The graph (raw and clean) runs in a child process whose machine time zone is
Asia/Tokyo, and again under UTC: a value's fate must not depend on where it runs. Each
test checks its date: where every row went (clean, or quarantined with its reason),
that raw = clean + quarantined, and for clean rows the exact stored amount and UTC
instant; nothing is rounded, truncated or re-zoned on the way.
"""

import datetime as dt
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ballast.resources import DBT_EXECUTABLE, write_dbt_profile
from ballast.settings import DBT_PROJECT_DIR, REPO_ROOT, Settings
from tests.conftest import make_settings, query

pytestmark = pytest.mark.full  # raw and clean materialized over every case

HEADER = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
FIRST_DAY = dt.date(2025, 2, 1)
# Each case's day quarantines most of its rows on purpose: the quarantine-share limit is
# tested on its own (test_quarantine_share.py) and must not stop this run.
BATTERY_MAX_QUARANTINE_SHARE = 1.0
TOKYO = "Asia/Tokyo"

# Runs raw and clean for [start, end] on a Ballast home; the time zone comes from TZ.
RUNNER = """
import datetime as dt, sys, time
from pathlib import Path
import dagster as dg
from ballast.runs import refresh
from tests.conftest import make_settings
assert time.strftime('%z') == sys.argv[5], ('machine time zone not applied', time.strftime('%z'))
settings = make_settings(Path(sys.argv[1]), max_quarantine_share=float(sys.argv[4]))
result = refresh(settings, dt.date.fromisoformat(sys.argv[2]), dt.date.fromisoformat(sys.argv[3]),
                 selection=dg.AssetSelection.groups('raw', 'clean'), log_level='WARNING')
sys.exit(0 if result.success else 1)
"""


@dataclass(frozen=True)
class Case:
    """One delivered row (or several): `ts` may use {d} (the case's date) and {p} (the day before)."""

    amount: str | float = "10.00"
    ts: str = "{d}T10:00:00Z"
    reason: str | None = None
    # For a clean row: the stored amount as text and the UTC instant as ISO text.
    stored_amount: str | None = None
    utc: str | None = None
    extra_rows: tuple[tuple[str, str], ...] = field(default=())
    parquet: bool = False


def clean(
    amount: str = "10.00", ts: str = "{d}T10:00:00Z", stored_amount: str = "10.00", utc: str = "{d} 10:00:00", **kw
) -> Case:
    return Case(amount=amount, ts=ts, stored_amount=stored_amount, utc=utc, **kw)


def bad(reason: str, amount: str | float = "10.00", ts: str = "{d}T10:00:00Z", **kw) -> Case:
    return Case(amount=amount, ts=ts, reason=reason, **kw)


CASES: dict[str, Case] = {
    # Amounts: exact in two decimals or quarantined, never rounded.
    "amount_two_decimals": clean("12.30", stored_amount="12.30"),
    "amount_zeros_beyond_two_decimals": clean("12.300", stored_amount="12.30"),
    "amount_many_trailing_zeros": clean("7.5000000000000000000000", stored_amount="7.50"),
    "amount_leading_point": clean(".5", stored_amount="0.50"),
    "amount_trailing_point": clean("5.", stored_amount="5.00"),
    "amount_plus_sign": clean("+12.34", stored_amount="12.34"),
    "amount_leading_zeros": clean("0012.30", stored_amount="12.30"),
    "amount_surrounding_spaces": clean(" 42.10 ", stored_amount="42.10"),
    "amount_three_decimals": bad("amount_precision", "12.345"),
    "amount_half_cent": bad("amount_precision", "0.005"),
    "amount_max_plus_a_tenth_of_a_cent": bad("amount_precision", "100000.001"),
    "amount_nonzero_digit_far_out": bad("amount_precision", "12.3000000000000000000001"),
    "amount_thousands_separator": bad("bad_amount", '"1,000.00"'),
    "amount_decimal_comma": bad("bad_amount", '"12,30"'),
    "amount_exponent": bad("bad_amount", "1e3"),
    "amount_nan": bad("bad_amount", "NaN"),
    "amount_infinity": bad("bad_amount", "Infinity"),
    "amount_currency_symbol": bad("bad_amount", "$5.00"),
    "amount_overflows_decimal_18_2": bad("bad_amount", "99999999999999999999.00"),
    "amount_negative_zero": bad("bad_amount", "-0.00"),
    "amount_lone_point": bad("bad_amount", "."),
    "parquet_float_exact": clean(0.1, stored_amount="0.10", parquet=True),
    "parquet_float_inexact": bad("amount_precision", 12.345, parquet=True),
    "same_amount_other_form_is_a_duplicate": clean(
        "12.3", stored_amount="12.30", extra_rows=(("12.300", "{d}T10:00:00+00:00"),)
    ),
    # Timestamps: an offset applied exactly, or quarantined; never re-zoned or rolled over.
    "ts_iana_zone_name": bad("unsupported_timezone", ts="{d} 10:00:00 America/New_York"),
    "ts_zone_abbreviation": bad("unsupported_timezone", ts="{d} 10:00:00 EST"),
    "ts_utc_by_name": bad("unsupported_timezone", ts="{d} 10:00:00 UTC"),
    "ts_offset_hour_25": bad("bad_timestamp", ts="{d}T10:00:00+25:00"),
    "ts_offset_minute_99": bad("bad_timestamp", ts="{d}T10:00:00+05:99"),
    "ts_offset_one_digit_hour": bad("bad_timestamp", ts="{d}T10:00:00+1:00"),
    "ts_space_before_offset": bad("bad_timestamp", ts="{d} 10:00:00 +01:00"),
    "ts_compact_offset": clean(ts="{d}T10:00:00+0530", utc="{d} 04:30:00"),
    "ts_hours_only_offset": clean(ts="{d}T10:00:00+05", utc="{d} 05:00:00"),
    "ts_negative_zero_offset": clean(ts="{d}T10:00:00-00:00", utc="{d} 10:00:00"),
    "ts_lowercase_t_and_z": clean(ts="{d}t10:00:00z", utc="{d} 10:00:00"),
    "ts_date_only_is_midnight_utc": clean(ts="{d}", utc="{d} 00:00:00"),
    "ts_space_no_seconds": clean(ts="{d} 10:00", utc="{d} 10:00:00"),
    "ts_no_seconds_with_offset": clean(ts="{d}T10:00-08:00", utc="{d} 18:00:00"),
    "ts_offset_brings_previous_day_in": clean(ts="{p}T23:30:00-01:00", utc="{d} 00:30:00"),
    "ts_microseconds_with_offset": clean(ts="{d}T10:00:00.000001-01:00", utc="{d} 11:00:00.000001"),
    "ts_nanoseconds_all_zero": clean(ts="{d}T10:00:00.123456000Z", utc="{d} 10:00:00.123456"),
    "ts_nanoseconds": bad("timestamp_precision", ts="{d}T10:00:00.123456789Z"),
    "ts_hour_24": bad("bad_timestamp", ts="{d}T24:00:00Z"),
    "ts_leap_second": bad("bad_timestamp", ts="{d}T23:59:60Z"),
    "ts_february_30": bad("bad_timestamp", ts="2025-02-30T10:00:00Z"),
    "ts_unpadded_month_and_day": bad("bad_timestamp", ts="2025-3-9T10:00:00Z"),
    "ts_twelve_hour_clock": bad("bad_timestamp", ts="{d} 10:00:00 PM"),
    "ts_point_without_digits": bad("bad_timestamp", ts="{d}T10:00:00.Z"),
}


def day_of(name: str) -> dt.date:
    return FIRST_DAY + dt.timedelta(days=list(CASES).index(name))


LAST_DAY = day_of(list(CASES)[-1])


def _fill(text: str, d: dt.date) -> str:
    return text.format(d=d.isoformat(), p=(d - dt.timedelta(days=1)).isoformat())


def _land(landing: Path) -> None:
    for name, case in CASES.items():
        d = day_of(name)
        rows = [(f"{name}-0", case.amount, _fill(case.ts, d))]
        rows += [(f"{name}-0", amount, _fill(ts, d)) for amount, ts in case.extra_rows]
        if case.parquet:
            table = pa.table(
                {
                    "transaction_id": [r[0] for r in rows],
                    "customer_id": ["C1"] * len(rows),
                    "merchant_id": ["M1"] * len(rows),
                    "amount": pa.array([r[1] for r in rows], pa.float64()),
                    "currency": ["USD"] * len(rows),
                    "event_timestamp": [r[2] for r in rows],
                }
            )
            pq.write_table(table, landing / f"transactions_{d}.parquet")
        else:
            lines = [HEADER, *(f"{tid},C1,M1,{amount},USD,{ts},web,US" for tid, amount, ts in rows)]
            (landing / f"transactions_{d}.csv").write_text("\n".join(lines) + "\n")


def _run(settings: Settings, tz: str, expected_utc_offset: str) -> float:
    """Raw and clean for every case's day, in a child process with machine time zone `tz`; the seconds it took."""
    began = time.monotonic()
    subprocess.run(
        [
            sys.executable,
            "-c",
            RUNNER,
            str(settings.home),
            FIRST_DAY.isoformat(),
            LAST_DAY.isoformat(),
            str(BATTERY_MAX_QUARANTINE_SHARE),
            expected_utc_offset,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "TZ": tz},
        check=True,
        timeout=600,
    )
    return time.monotonic() - began


@dataclass(frozen=True)
class Battery:
    settings: Settings
    utc_settings: Settings

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return query(self.settings, sql, params)


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory) -> Battery:
    homes = []
    for tz, offset in ((TOKYO, "+0900"), ("UTC", "+0000")):
        settings = make_settings(
            tmp_path_factory.mktemp("battery_home"), max_quarantine_share=BATTERY_MAX_QUARANTINE_SHARE
        )
        settings.ensure_dirs()
        _land(settings.landing_dir)
        seconds = _run(settings, tz, offset)
        print(f"battery graph under TZ={tz}: {seconds:.1f} s")
        homes.append(settings)
    return Battery(*homes)


@pytest.mark.parametrize("name", list(CASES))
def test_value_lands_where_it_should(battery: Battery, name: str) -> None:
    case, d = CASES[name], day_of(name)
    [(raw,)] = battery.query("select count(*) from raw.transactions where event_date = ?", [d])
    stored = battery.query(
        "select amount::varchar, strftime(event_timestamp, '%Y-%m-%d %H:%M:%S.%f') from clean.transactions where event_date = ?",
        [d],
    )
    quarantined = dict(
        battery.query(
            "select reject_reason, count(*) from clean.transactions_quarantine where event_date = ? group by 1", [d]
        )
    )
    if case.reason is None:
        instant = dt.datetime.fromisoformat(_fill(case.utc, d)).strftime("%Y-%m-%d %H:%M:%S.%f")
        expected_quarantine = {"duplicate_id": len(case.extra_rows)} if case.extra_rows else {}
        assert (stored, quarantined) == ([(case.stored_amount, instant)], expected_quarantine)
    else:
        assert (stored, quarantined) == ([], {case.reason: 1})
    assert raw == 1 + len(case.extra_rows) == len(stored) + sum(quarantined.values())


def test_quarantined_values_are_kept_exactly_as_received(battery: Battery) -> None:
    rows = dict(
        battery.query(
            "select transaction_id, amount || ' | ' || event_timestamp from clean.transactions_quarantine"
            " where reject_reason <> 'duplicate_id'"
        )
    )
    expected = {
        f"{name}-0": f"{case.amount if not case.parquet else repr(case.amount)} | {_fill(case.ts, day_of(name))}"
        for name, case in CASES.items()
        if case.reason is not None
    }
    expected = {k: v.replace('"', "") for k, v in expected.items()}
    assert rows == expected


def test_nothing_outside_the_battery(battery: Battery) -> None:
    [(raw, clean_rows, quarantined)] = battery.query(
        "select (select count(*) from raw.transactions), (select count(*) from clean.transactions),"
        " (select count(*) from clean.transactions_quarantine)"
    )
    assert raw == sum(1 + len(c.extra_rows) for c in CASES.values()) == clean_rows + quarantined
    assert clean_rows == sum(c.reason is None for c in CASES.values())


def test_machine_time_zone_changes_nothing(battery: Battery) -> None:
    tables = {
        "clean.transactions": "select * exclude (load_id) from clean.transactions order by transaction_id",
        "clean.transactions_quarantine": (
            "select * exclude (load_id) from clean.transactions_quarantine order by event_date, source_file, line_number"
        ),
    }
    for table, sql in tables.items():
        tokyo, utc = query(battery.settings, sql), query(battery.utc_settings, sql)
        assert tokyo == utc and len(tokyo) > 0, table


def test_every_duckdb_session_computes_in_utc_on_a_tokyo_machine(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ensure_dirs()
    write_dbt_profile(settings)
    tokyo = {**os.environ, "TZ": TOKYO}
    dbt = subprocess.run(
        [
            DBT_EXECUTABLE,
            "show",
            "--inline",
            "select current_setting('TimeZone') as tz",
            "--output",
            "json",
            "--quiet",
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path / "target"),
            "--log-path",
            str(tmp_path / "logs"),
        ],
        env=tokyo,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(dbt.stdout)["show"] == [{"tz": "UTC"}]
    ours = subprocess.run(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from ballast.resources import WarehouseResource\n"
                "assert time.strftime('%z') == '+0900'\n"
                "with WarehouseResource(path=sys.argv[1]).connect() as con:\n"
                "    print(con.execute(\"select current_setting('TimeZone')\").fetchone()[0])"
            ),
            str(settings.warehouse_path),
        ],
        env=tokyo,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert ours.stdout.strip() == "UTC"
