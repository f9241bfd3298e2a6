"""Loading landing files into raw.transactions on a DuckDB file in tmp_path."""

import datetime as dt
import gzip
import hashlib
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ballast.cli.main import main
from ballast.raw.assets import MAX_LISTED_FILES, _transactions_result
from ballast.raw.landing import (
    RAW_DDL,
    FileLoad,
    LandingError,
    Limits,
    discover,
    files_by_date,
    load_file,
    plan,
    record_unplaced,
    survey,
)

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
    with pytest.raises(LandingError, match=r"landing folder .*nowhere does not exist"):
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
    path.write_text(
        HEADER + "T1,C1,M1,12.00,USD,2025-02-03T10:00:00Z,web,US\nT3,C3,M1,3.00,USD,2025-02-03T12:00:00Z,web,US\n"
    )
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
        (
            "transactions_2025-02-03.csv",
            "missing_columns",
            "required column(s) missing: merchant_id, currency, event_timestamp",
        )
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


ROW = "T1,C1,M1,10.00,USD,2025-02-03T10:00:00Z,web,US\n"


def test_survey_accounts_for_every_entry_with_a_reason(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    for name in (
        "transactions_2025-02-03.csv",
        "TRANSACTIONS_2025-02-03.CSV.GZ",
        "2025-02-04/part-1.parquet",
        "transactions.csv",
        "transactions_2025-02-30.csv",
        "transactions_2099-01-01.csv",
        "x_2025-02-03.json",
        "2025-02-03_2025-02-04.csv",
        ".DS_Store",
        "_SUCCESS",
        "~$book.xlsx",
        ".git/config",
        "transactions_2024-12-31.csv",
    ):
        _write(landing / name, HEADER)
    os.mkfifo(landing / "pipe_2025-02-03.csv")
    found = survey(landing, today=dt.date(2025, 6, 1), start_date=dt.date(2025, 1, 1))
    assert [(f.name, f.event_date, f.fmt, f.gzip) for f in found.files] == [
        ("2025-02-04/part-1.parquet", dt.date(2025, 2, 4), "parquet", False),
        ("TRANSACTIONS_2025-02-03.CSV.GZ", DAY, "csv", True),
        ("transactions_2025-02-03.csv", DAY, "csv", False),
    ]
    assert [(e.name, e.reason) for e in found.rejected] == [
        ("2025-02-03_2025-02-04.csv", "conflicting_dates"),
        ("pipe_2025-02-03.csv", "unreadable"),
        ("transactions.csv", "no_date_in_name"),
        ("transactions_2025-02-30.csv", "invalid_date"),
        ("transactions_2099-01-01.csv", "future_date"),
        ("x_2025-02-03.json", "unsupported_format"),
    ]
    assert [(e.name, e.reason) for e in found.ignored] == [
        (".DS_Store", "os_debris"),
        (".git/", "hidden_name"),
        ("_SUCCESS", "hidden_name"),
        ("transactions_2024-12-31.csv", "before_start_date"),
        ("~$book.xlsx", "os_debris"),
    ]


def test_a_future_file_does_not_stretch_the_plan(tmp_path: Path) -> None:
    for name in (
        "transactions_2025-05-30.csv",
        "transactions_2025-05-31.csv",
        "transactions_2099-01-01.csv",
        "notes.csv",
    ):
        _write(tmp_path / name, HEADER)
    window = plan(tmp_path, start_date=dt.date(2025, 1, 1), today=dt.date(2025, 6, 1))
    assert (window.start, window.end) == (dt.date(2025, 5, 30), dt.date(2025, 5, 31))
    assert window.notes == (
        "note: 2 landing files not loaded (1 future_date, 1 no_date_in_name); see raw/rejected_files",
    )


def test_todays_files_are_planned(tmp_path: Path) -> None:
    _write(tmp_path / "transactions_2025-05-31.csv", HEADER)
    _write(tmp_path / "transactions_2025-06-01.csv", HEADER)
    window = plan(tmp_path, start_date=dt.date(2025, 1, 1), today=dt.date(2025, 6, 1))
    assert (window.start, window.end, window.notes) == (dt.date(2025, 5, 31), dt.date(2025, 6, 1), ())


def test_run_with_only_unloadable_files_is_one_clear_line(tmp_path: Path, monkeypatch, capsys) -> None:
    landing = tmp_path / "landing"
    _write(landing / "transactions.csv", HEADER)
    _write(landing / "transactions_2099-01-01.csv", HEADER)
    monkeypatch.setenv("BALLAST_HOME", str(tmp_path))
    monkeypatch.delenv("BALLAST_LANDING_DIR", raising=False)
    assert main(["run"]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"ballast: error: no landing files to load under {landing} (2 not loaded: 1 future_date, 1 no_date_in_name)\n"
    )


def test_gzip_csv_loads_hashed_as_delivered(tmp_path: Path, con) -> None:
    body = (HEADER + ROW).encode()
    path = tmp_path / "transactions_2025-02-03.csv.gz"
    path.write_bytes(gzip.compress(body))
    scratch = tmp_path / "scratch"
    [f] = discover(tmp_path)
    assert load_file(con, f, load_id="l", landing_dir=tmp_path, scratch_dir=scratch).rows == 1
    assert con.execute("select file_hash from raw.transactions").fetchall() == [
        (hashlib.sha256(path.read_bytes()).hexdigest(),)
    ]
    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("content", "reason", "detail"),
    [
        (gzip.compress((HEADER + ROW).encode())[:-12], "unreadable", "not a complete gzip file"),
        (b"not gzip at all", "unreadable", "not a complete gzip file"),
        (gzip.compress(b""), "empty_file", "the file has 0 bytes once decompressed"),
        (gzip.compress(HEADER.encode()), "header_only", "the file has no data rows"),
        (
            gzip.compress((HEADER + ROW * 10).encode()),
            "too_large",
            "more than the limit of 300 bytes once decompressed",
        ),
    ],
)
def test_bad_gzip_is_rejected_with_a_clear_detail(
    tmp_path: Path, con, content: bytes, reason: str, detail: str
) -> None:
    (tmp_path / "transactions_2025-02-03.csv.gz").write_bytes(content)
    [f] = discover(tmp_path)
    load = load_file(
        con, f, load_id="l", landing_dir=tmp_path, limits=Limits(max_file_bytes=300), scratch_dir=tmp_path / "s"
    )
    assert (load.rejected, load.detail.startswith(detail)) == (reason, True)
    assert _rows(con) == []


def test_records_span_lines_and_keep_their_bytes(tmp_path: Path, con) -> None:
    _write(
        tmp_path / "transactions_2025-02-03.csv",
        HEADER.replace("\n", "\r\n")
        + 'T1,"C\r\n1","M1\n\n",10.00,USD,2025-02-03T10:00:00Z,web,US\r\n\r\n'
        + 'T2,C2,M2,1.00,USD,2025-02-03T10:00:00Z,web,"U""S"\r\n',
    )
    [f] = discover(tmp_path)
    assert load_file(con, f, load_id="l", landing_dir=tmp_path).rows == 2
    assert con.execute(
        "select line_number, customer_id, merchant_id, country, raw_line from raw.transactions order by 1"
    ).fetchall() == [
        (2, "C\r\n1", "M1\n\n", "US", None),
        (7, "C2", "M2", 'U"S', None),
    ]


def test_a_multi_line_record_of_the_wrong_width_is_taken_line_by_line(tmp_path: Path, con) -> None:
    _write(
        tmp_path / "transactions_2025-02-03.csv",
        HEADER + 'T1,"C\n1",M1,10.00,USD,2025-02-03T10:00:00Z,web,US,surplus\n' + ROW,
    )
    [f] = discover(tmp_path)
    load_file(con, f, load_id="l", landing_dir=tmp_path)
    assert con.execute("select line_number, transaction_id, raw_line from raw.transactions order by 1").fetchall() == [
        (2, None, 'T1,"C'),
        (3, None, '1",M1,10.00,USD,2025-02-03T10:00:00Z,web,US,surplus'),
        (4, "T1", None),
    ]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("transaction_id,customer_id,merchant_id,amount,currency,event_timestamp, Currency \n", "duplicate_columns"),
        ('"transaction_id,customer_id,merchant_id,amount,currency,event_timestamp\n', "malformed_header"),
    ],
)
def test_ambiguous_or_broken_headers_are_rejected(tmp_path: Path, con, header: str, reason: str) -> None:
    _write(tmp_path / "transactions_2025-02-03.csv", header + ROW)
    [f] = discover(tmp_path)
    assert load_file(con, f, load_id="l", landing_dir=tmp_path).rejected == reason


def test_parquet_text_is_the_same_on_any_time_zone(tmp_path: Path, con) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    pq.write_table(
        pa.table(
            {
                "transaction_id": ["T1", "T2", "T3"],
                "customer_id": ["C1"] * 3,
                "merchant_id": ["M1"] * 3,
                "amount": pa.array([0.1, 12.345, 100000.0], pa.float64()),
                "currency": ["USD"] * 3,
                "event_timestamp": pa.array(
                    [dt.datetime(2025, 2, 3, 9, 0, 0, 1, tokyo)] * 3, pa.timestamp("us", tz="Asia/Tokyo")
                ),
                "country": pa.array([12.34, 0.1, 1e-5], pa.float32()),
            }
        ),
        tmp_path / "transactions_2025-02-03.parquet",
    )
    con.execute("set TimeZone = 'America/Los_Angeles'")
    [f] = discover(tmp_path)
    load_file(con, f, load_id="l", landing_dir=tmp_path)
    assert con.execute(
        "select amount, event_timestamp, country from raw.transactions order by line_number"
    ).fetchall() == [
        ("0.1", "2025-02-03T00:00:00.000001Z", "12.34"),
        ("12.345", "2025-02-03T00:00:00.000001Z", "0.1"),
        ("100000.0", "2025-02-03T00:00:00.000001Z", "1e-05"),
    ]


def test_a_file_that_vanishes_or_becomes_loadable_loses_its_record(tmp_path: Path, con) -> None:
    landing = tmp_path / "landing"
    _write(landing / "transactions.csv", HEADER)
    _write(landing / ".DS_Store", "")
    record_unplaced(con, survey(landing), load_id="l1")
    record_unplaced(con, survey(landing), load_id="l2")
    assert con.execute("select event_date, source_file, reason, load_id from raw.rejected_files").fetchall() == [
        (None, "transactions.csv", "no_date_in_name", "l1")
    ]
    assert con.execute("select source_file, reason, load_id from raw.ignored_files").fetchall() == [
        (".DS_Store", "os_debris", "l1")
    ]
    (landing / "transactions.csv").rename(landing / "transactions_2025-02-03.csv")
    (landing / ".DS_Store").unlink()
    record_unplaced(con, survey(landing), load_id="l3")
    assert con.execute("select count(*) from raw.rejected_files").fetchall() == [(0,)]
    assert con.execute("select count(*) from raw.ignored_files").fetchall() == [(0,)]


def test_a_long_window_lists_the_files_that_need_a_look_first_and_counts_the_rest(con) -> None:
    """The outcome table goes into every partition's event, so it is bounded; rejected and malformed files lead."""
    loads = [FileLoad(name=f"transactions_{i:04d}.csv", rows=10, skipped=False) for i in range(700)]
    loads += [
        FileLoad(name="zz_bad.csv", rows=0, skipped=False, rejected="missing_columns"),
        FileLoad(name="zz_ragged.csv", rows=9, skipped=False, malformed=1),
    ]
    table = _transactions_result(con, loads, dt.date(2025, 1, 1), dt.date(2026, 12, 31)).metadata["files"].value
    lines = table.splitlines()[2:]
    assert len(lines) == MAX_LISTED_FILES + 1
    assert "zz_bad.csv" in lines[0] and "zz_ragged.csv" in lines[1]
    assert f"{len(loads) - MAX_LISTED_FILES} more" in lines[-1]
