"""Loading landing files into raw.transactions on a DuckDB file in tmp_path."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest

from ballast.lib.landing import RAW_DDL, LandingError, Limits, discover, files_by_date, load_file

HEADER = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country\n"
DAY = dt.date(2025, 2, 3)


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute(RAW_DDL)
    yield con
    con.close()


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _rows(con) -> list[tuple]:
    return con.execute(
        "select transaction_id, amount, channel, country, event_date, source_file, line_number, load_id"
        " from raw.transactions order by source_file, line_number"
    ).fetchall()


def test_discover_reads_the_date_from_file_or_folder_name(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    _write(landing / "transactions_2025-02-03.csv", HEADER)
    _write(landing / "2025-02-04" / "part-1.parquet", "")
    _write(landing / "notes.csv", HEADER)
    _write(landing / "transactions_2025-02-05.json", "{}")
    grouped = files_by_date(landing)
    assert {d: [f.name for f in fs] for d, fs in grouped.items()} == {
        dt.date(2025, 2, 3): ["transactions_2025-02-03.csv"],
        dt.date(2025, 2, 4): ["2025-02-04/part-1.parquet"],
    }


def test_missing_landing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LandingError, match="landing folder .*nowhere does not exist"):
        discover(tmp_path / "nowhere")


def test_rows_keep_file_line_hash_and_load_id(tmp_path: Path, con) -> None:
    path = _write(
        tmp_path / "transactions_2025-02-03.csv",
        HEADER + "T1,C1,M1,10.00,USD,2025-02-03T10:00:00Z,web,US\nT2,C2,M1,5.5,EUR,2025-02-03 11:00:00,,\n",
    )
    [f] = discover(tmp_path)
    load = load_file(con, f, load_id="load-1", landing_dir=tmp_path)
    assert (load.rows, load.skipped) == (2, False)
    assert _rows(con) == [
        ("T1", "10.00", "web", "US", DAY, path.name, 2, "load-1"),
        ("T2", "5.5", "", "", DAY, path.name, 3, "load-1"),
    ]
    [(file_hash,)] = con.execute("select distinct file_hash from raw.transactions").fetchall()
    assert len(file_hash) == 64


def test_columns_are_matched_by_name_and_optional_ones_may_be_absent(tmp_path: Path, con) -> None:
    _write(
        tmp_path / "transactions_2025-02-03.csv",
        "amount,event_timestamp,currency,merchant_id,customer_id,transaction_id\n"
        "7.00,2025-02-03T10:00:00Z,GBP,M9,C9,T9\n",
    )
    [f] = discover(tmp_path)
    load_file(con, f, load_id="l", landing_dir=tmp_path)
    assert _rows(con) == [("T9", "7.00", None, None, DAY, "transactions_2025-02-03.csv", 2, "l")]


def test_identical_redelivery_is_a_no_op(tmp_path: Path, con) -> None:
    _write(tmp_path / "transactions_2025-02-03.csv", HEADER + "T1,C1,M1,10.00,USD,2025-02-03T10:00:00Z,web,US\n")
    [f] = discover(tmp_path)
    load_file(con, f, load_id="first", landing_dir=tmp_path)
    again = load_file(con, f, load_id="second", landing_dir=tmp_path)
    assert again.skipped
    assert [r[-1] for r in _rows(con)] == ["first"]


def test_corrected_file_replaces_its_earlier_rows(tmp_path: Path, con) -> None:
    path = _write(tmp_path / "transactions_2025-02-03.csv", HEADER + "T1,C1,M1,10.00,USD,2025-02-03T10:00:00Z,web,US\n")
    _write(tmp_path / "transactions_2025-02-03_b.csv", HEADER + "T5,C5,M5,1.00,USD,2025-02-03T10:00:00Z,web,US\n")
    for f in discover(tmp_path):
        load_file(con, f, load_id="first", landing_dir=tmp_path)
    path.write_text(HEADER + "T1,C1,M1,12.00,USD,2025-02-03T10:00:00Z,web,US\nT3,C3,M1,3.00,USD,2025-02-03T12:00:00Z,web,US\n")
    for f in discover(tmp_path):
        load_file(con, f, load_id="second", landing_dir=tmp_path)
    assert [(r[0], r[1], r[-1]) for r in _rows(con)] == [
        ("T1", "12.00", "second"),
        ("T3", "3.00", "second"),
        ("T5", "1.00", "first"),
    ]


def _rejected(con) -> list[tuple]:
    return con.execute("select source_file, reason, detail from raw.rejected_files order by 1").fetchall()


def test_missing_required_column_rejects_the_file_naming_the_columns(tmp_path: Path, con) -> None:
    _write(tmp_path / "transactions_2025-02-03.csv", "transaction_id,customer_id,amount\nT1,C1,1.00\n")
    [f] = discover(tmp_path)
    load = load_file(con, f, load_id="l", landing_dir=tmp_path)
    assert load.rejected == "missing_columns"
    assert _rejected(con) == [
        ("transactions_2025-02-03.csv", "missing_columns", "required column(s) missing: merchant_id, currency, event_timestamp")
    ]
    assert _rows(con) == []


def test_unreadable_file_is_rejected_whole_and_recorded_once(tmp_path: Path, con) -> None:
    _write(tmp_path / "transactions_2025-02-03.parquet", "this is not parquet")
    [f] = discover(tmp_path)
    assert load_file(con, f, load_id="l1", landing_dir=tmp_path).rejected == "unreadable"
    again = load_file(con, f, load_id="l2", landing_dir=tmp_path)
    assert again.skipped and again.rejected == "unreadable"
    assert con.execute("select load_id from raw.rejected_files").fetchall() == [("l1",)]
    assert _rows(con) == []


def test_a_fixed_rejected_file_loads_and_its_reject_is_cleared(tmp_path: Path, con) -> None:
    path = _write(tmp_path / "transactions_2025-02-03.csv", "")
    [f] = discover(tmp_path)
    assert load_file(con, f, load_id="l1", landing_dir=tmp_path).rejected == "empty_file"
    path.write_text(HEADER + "T1,C1,M1,10.00,USD,2025-02-03T10:00:00Z,web,US\n")
    assert load_file(con, f, load_id="l2", landing_dir=tmp_path).rows == 1
    assert _rejected(con) == []


def test_too_large_file_is_rejected(tmp_path: Path, con) -> None:
    _write(tmp_path / "transactions_2025-02-03.csv", HEADER + "T1,C1,M1,10.00,USD,2025-02-03T10:00:00Z,web,US\n")
    [f] = discover(tmp_path)
    load = load_file(con, f, load_id="l", landing_dir=tmp_path, limits=Limits(max_file_bytes=50))
    assert load.rejected == "too_large" and "more than the limit of 50" in load.detail


def test_unsafe_names_and_outside_symlinks_are_rejected_unread(tmp_path: Path, con) -> None:
    landing = tmp_path / "landing"
    outside = _write(tmp_path / "secret.csv", HEADER + "T9,C9,M9,1.00,USD,2025-02-03T10:00:00Z,web,US\n")
    landing.mkdir()
    (landing / "transactions_2025-02-03.csv").symlink_to(outside)
    _write(landing / "transactions_2025-02-03_a\\b.csv", HEADER + "T8,C8,M8,1.00,USD,2025-02-03T10:00:00Z,web,US\n")
    loads = [load_file(con, f, load_id="l", landing_dir=landing) for f in discover(landing)]
    assert sorted(load.rejected for load in loads) == ["unsafe_path", "unsafe_path"]
    assert _rows(con) == []
    assert {r[2] for r in _rejected(con)} == {
        "symlink pointing outside the landing folder",
        "the file name contains a control character or a backslash",
    }
