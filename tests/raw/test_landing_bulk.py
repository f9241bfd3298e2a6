"""Bulk and per-line loading of a window give the same raw tables, on DuckDB files in tmp_path.

One landing folder with files of every kind is loaded twice, into two warehouses: once
with the bulk path and once with every file parsed on its own; then a second delivery
changes some files and both load again. The tables must match row for row.
"""

import datetime as dt
import gzip
import os
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ballast.raw import landing_bulk
from ballast.raw.landing import RAW_DDL, FileLoad, Limits, discover
from ballast.raw.landing_bulk import load_window
from tests.raw.raw_tables import raw_tables

HEADER = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
D1, D2 = dt.date(2025, 2, 3), dt.date(2025, 2, 4)
MAX_FILE_BYTES = 4_000
LIMITS = Limits(max_file_bytes=MAX_FILE_BYTES, max_columns=12)


def row(tid: str, d: dt.date = D1, customer: str = "C1") -> str:
    return ",".join([tid, customer, "M1", "10.00", "USD", f"{d}T10:00:00Z", "web", "US"])


def csv(*rows: str, header: str = HEADER, eol: str = "\n") -> str:
    return eol.join([header, *rows]) + eol


def _write(landing: Path, name: str, content: str | bytes) -> None:
    path = landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())


# Plain CSV that the bulk path takes: every line a record, whatever is wrong inside it.
BULK_FILES = {
    f"transactions_{D1}.csv": csv(row("A1"), row("A2"), row("A3")),
    f"transactions_{D1}_crlf.csv": csv(row("B1"), row("B2") + "\r\r", eol="\r\n"),
    f"transactions_{D1}_bom.csv": "\ufeff" + csv(row("C1"), row("C2")),
    f"transactions_{D1}_blank_lines.csv": csv("", row("D1"), "", "", row("D2"), "\r", ""),
    f"transactions_{D1}_ragged.csv": csv(row("E1") + ",surplus", "E2,C1,M1", row("E3"), ",,,,,,,", ","),
    f"transactions_{D1}_no_final_newline.csv": csv(row("F1"), row("F2"))[:-1],
    f"transactions_{D1}_reordered.csv": "currency,amount,event_timestamp,merchant_id,customer_id,transaction_id\n"
    f"EUR,1.00,{D1}T10:00:00Z,M1,C1,G1\n",
    f"transactions_{D1}_extra.csv": csv(row("H1") + ",gold,", header=f" {HEADER.upper()} ,tier,"),
    f"{D1}/store 7/données é.csv": csv(row("I1", customer="Cé 1\x7f"), row("I2", customer="  C\t2 ")),
    f"transactions_{D1}_cr_inside.csv": csv(row("J1", customer="C\r1")),
}
# Files the bulk path leaves to the per-line parser (or to rejection), each for a reason.
PER_FILE_FILES = {
    f"transactions_{D2}_quoted.csv": csv(row("K1", customer='"C,1"'), row("K2", customer='"C\n2"')),
    f"transactions_{D2}_stray_quote.csv": csv(row("L1", customer='C"1'), row("L2")),
    f"transactions_{D2}_cr_only.csv": csv(row("M1", D2), row("M2", D2), eol="\r"),
    f"transactions_{D2}_header_only.csv": csv(),
    f"transactions_{D2}_blank_lines_only.csv": csv("", "\r", ""),
    f"transactions_{D2}_empty.csv": "",
    f"transactions_{D2}_latin1.csv": csv(row("N1", D2, customer="C\xe9")).encode("latin-1"),
    f"transactions_{D2}_nul.csv": csv(row("O1\x00", D2)),
    f"transactions_{D2}_duplicate_columns.csv": csv(row("P1", D2) + ",x", header=HEADER + ",Amount"),
    f"transactions_{D2}_missing_columns.csv": "transaction_id,amount\nQ1,1.00\n",
    f"transactions_{D2}_too_many_columns.csv": csv(row("R1", D2) + ",1,2,3,4,5", header=HEADER + ",a,b,c,d,e"),
    f"transactions_{D2}_too_large.csv": csv(*(row(f"S{i}", D2) for i in range(MAX_FILE_BYTES // 40))),
    f"transactions_{D2}[glob].csv": csv(row("T1", D2)),
    f"transactions_{D2}.csv.gz": gzip.compress(csv(row("U1", D2)).encode()),
}


def _land_first(landing: Path) -> None:
    for name, content in (BULK_FILES | PER_FILE_FILES).items():
        _write(landing, name, content)
    pq.write_table(
        pa.table({c: [v] for c, v in zip(HEADER.split(","), row("V1", D2).split(","), strict=True)}),
        landing / f"transactions_{D2}.parquet",
    )
    os.symlink(landing / f"transactions_{D1}.csv", landing / f"transactions_{D1}_link.csv")


def _land_second(landing: Path) -> None:
    _write(landing, f"transactions_{D1}.csv", csv(row("A1"), row("A9")))  # corrected
    _write(landing, f"transactions_{D1}_crlf.csv", csv())  # becomes header only: rejected, keeps its rows
    _write(landing, f"transactions_{D1}_bom.csv", csv(row("C1", customer='"C, 1"')))  # now quoted
    _write(landing, f"transactions_{D2}_header_only.csv", csv(row("W1", D2)))  # fixed
    _write(landing, f"transactions_{D2}_quoted.csv", csv(row("K1"), row("K3")))  # now plain
    (landing / f"transactions_{D1}_ragged.csv").unlink()


def _load(con: duckdb.DuckDBPyConnection, landing: Path, load_id: str, bulk: bool) -> list[FileLoad]:
    return load_window(con, discover(landing), load_id, landing, LIMITS, landing.parent / "scratch", bulk=bulk).loads


def _outcomes(loads: list[FileLoad]) -> list[tuple]:
    return [(f.name, f.rows, f.skipped, f.malformed, f.extra_columns, f.rejected, f.detail) for f in loads]


@pytest.fixture
def landing(tmp_path: Path) -> Path:
    folder = tmp_path / "landing"
    _land_first(folder)
    return folder


def _warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    con.execute(RAW_DDL)
    return con


def test_bulk_and_per_line_loads_give_identical_tables(tmp_path: Path, landing: Path) -> None:
    bulk, per_line = _warehouse(tmp_path / "bulk.duckdb"), _warehouse(tmp_path / "per_line.duckdb")
    labels = {"first": "first", "second": "second"}
    for load_id, deliver in (("first", None), ("second", _land_second)):
        if deliver:
            deliver(landing)
        fast, slow = _load(bulk, landing, load_id, True), _load(per_line, landing, load_id, False)
        assert _outcomes(fast) == _outcomes(slow)
        assert raw_tables(bulk, labels) == raw_tables(per_line, labels)
        assert not any(f.bulk for f in slow)
        if load_id == "first":
            went_bulk = {f.name for f in fast if f.bulk}
            assert went_bulk == set(BULK_FILES) | {f"transactions_{D1}_link.csv"}
    # Second delivery: changed plain files in bulk (the link follows its target); the header-only one on its own.
    assert {f.name for f in fast if f.bulk} == {
        f"transactions_{D1}.csv",
        f"transactions_{D1}_link.csv",
        f"transactions_{D2}_header_only.csv",
        f"transactions_{D2}_quoted.csv",
    }
    assert {f.name: f.rejected for f in fast if not f.skipped and not f.bulk} == {
        f"transactions_{D1}_crlf.csv": "header_only",
        f"transactions_{D1}_bom.csv": None,
    }


def test_the_bulk_path_keeps_every_line_and_value(tmp_path: Path, landing: Path) -> None:
    con = _warehouse(tmp_path / "bulk.duckdb")
    _load(con, landing, "l", bulk=True)
    got = con.execute(
        "select source_file, line_number, transaction_id, customer_id, country, raw_line, extra_columns"
        " from raw.transactions where source_file in (?, ?, ?, ?) order by 1, 2",
        [
            f"transactions_{D1}_blank_lines.csv",
            f"transactions_{D1}_ragged.csv",
            f"transactions_{D1}_extra.csv",
            f"{D1}/store 7/données é.csv",
        ],
    ).fetchall()
    blank, ragged, extra = (f"transactions_{D1}_{s}.csv" for s in ("blank_lines", "ragged", "extra"))
    store = f"{D1}/store 7/données é.csv"
    assert got == [
        (store, 2, "I1", "Cé 1\x7f", "US", None, None),
        (store, 3, "I2", "  C\t2 ", "US", None, None),
        (blank, 3, "D1", "C1", "US", None, None),
        (blank, 6, "D2", "C1", "US", None, None),
        (extra, 2, "H1", "C1", "US", None, "tier,(unnamed column 10)"),
        (ragged, 2, None, None, None, row("E1") + ",surplus", None),
        (ragged, 3, None, None, None, "E2,C1,M1", None),
        (ragged, 4, "E3", "C1", "US", None, None),
        (ragged, 5, "", "", "", None, None),
        (ragged, 6, None, None, None, ",", None),
    ]


def test_a_window_of_good_files_loads_in_bulk_and_a_bad_one_on_its_own(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    days = [D1 + dt.timedelta(days=i) for i in range(30)]
    for d in days:
        _write(landing, f"transactions_{d}.csv", csv(*(row(f"X{d}-{i}", d) for i in range(5))))
    bad = f"transactions_{days[7]}_b.csv"
    _write(landing, bad, csv(row("Y1", days[7]), row("Y2", days[7], customer='"C\n2')))
    bulk, per_line = _warehouse(tmp_path / "bulk.duckdb"), _warehouse(tmp_path / "per_line.duckdb")
    loads = _load(bulk, landing, "l", bulk=True)
    assert [f.name for f in loads if not f.bulk] == [bad]
    assert sum(f.bulk for f in loads) == len(days)
    _load(per_line, landing, "l", bulk=False)
    assert raw_tables(bulk, {}) == raw_tables(per_line, {})
    # The stray quote still costs only its own lines.
    assert bulk.execute(
        "select count(*), count(raw_line) from raw.transactions where source_file = ?", [bad]
    ).fetchall() == [(3, 2)]
    # An identical re-delivery is a no-op for every file.
    again = _load(bulk, landing, "again", bulk=True)
    assert all(f.skipped and not f.rejected for f in again)
    assert bulk.execute("select distinct load_id from raw.transactions").fetchall() == [("l",)]


def test_a_failing_bulk_statement_leaves_nothing_and_the_files_load_one_by_one(
    tmp_path: Path, landing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bulk, per_line = _warehouse(tmp_path / "bulk.duckdb"), _warehouse(tmp_path / "per_line.duckdb")
    _load(bulk, landing, "first", bulk=True)
    _load(per_line, landing, "first", bulk=False)
    _land_second(landing)
    # Fault injection into Ballast's own SQL: the batch's insert fails after its deletes ran.
    real = landing_bulk.csv_bulk_select
    monkeypatch.setattr(
        landing_bulk,
        "csv_bulk_select",
        lambda columns: real(columns).replace("$load_id", "coalesce(error('disk full'), $load_id)"),
    )
    window = load_window(bulk, discover(landing), "second", landing, LIMITS, tmp_path / "scratch")
    assert window.bulk_failures and "disk full" in window.bulk_failures[0]
    assert not any(f.bulk for f in window.loads)
    _load(per_line, landing, "second", bulk=False)
    labels = {"first": "first", "second": "second"}
    assert raw_tables(bulk, labels) == raw_tables(per_line, labels)
