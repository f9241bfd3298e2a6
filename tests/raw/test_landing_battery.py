"""Adversarial landing folders through the real graph (raw and clean, dbt, Soda).

Every case lands on its own event date, or is an entry that belongs to no date and is
named here. The graph runs once under a time zone far from UTC; then some entries are
fixed or removed and it runs again. Each test checks where every row and every file
went: clean, quarantined with a reason, rejected with a reason, or ignored and listed.
"""

import dataclasses
import datetime as dt
import gzip
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ballast.runs import refresh
from tests.conftest import make_settings, query
from tests.raw.raw_tables import PER_LINE, RAW, assert_bulk_matches_per_line, warehouse_raw_tables

pytestmark = pytest.mark.full  # raw and clean materialized over every case

HEADER = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
COLUMNS = HEADER.split(",")
START = dt.date(2025, 3, 1)
END = dt.date(2025, 3, 31)
MAX_FILE_BYTES = 20_000
RUN_TZ = "Asia/Tokyo"


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


def row(tid: str, n: int, amount: str = "10.00", customer: str = "C1", merchant: str = "M1") -> str:
    return ",".join([tid, customer, merchant, amount, "USD", f"{day(n)}T10:00:00Z", "web", "US"])


def csv(*rows: str, header: str = HEADER, eol: str = "\n") -> str:
    return eol.join([header, *rows]) + eol


def table(*rows: dict) -> pa.Table:
    return pa.Table.from_pylist(list(rows))


def record(tid: str, n: int, **values) -> dict:
    return {**dict(zip(COLUMNS, row(tid, n).split(","), strict=True)), **values}


@dataclass(frozen=True)
class Expect:
    clean: int
    quarantined: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)


CASES: dict[str, tuple[int, Expect]] = {
    "gzip_csv": (1, Expect(3)),
    "gzip_uppercase_extension": (2, Expect(2)),
    "gzip_corrupt_beside_a_good_file": (3, Expect(1, rejected={"unreadable": 1})),
    "gzip_of_nothing": (4, Expect(0, rejected={"empty_file": 1})),
    "gzip_header_only": (5, Expect(0, rejected={"header_only": 1})),
    "gzip_latin1": (6, Expect(0, rejected={"not_utf8": 1})),
    "gzip_bomb_over_the_size_limit": (7, Expect(0, rejected={"too_large": 1})),
    "quoted_line_breaks_crlf": (8, Expect(3)),
    "blank_lines_inside_and_between_records": (9, Expect(2)),
    "two_stray_quotes": (10, Expect(2, {"malformed_line": 2})),
    "open_quote_at_end_of_file": (11, Expect(2, {"malformed_line": 1})),
    "duplicate_columns_csv": (12, Expect(0, rejected={"duplicate_columns": 1})),
    "duplicate_columns_parquet": (13, Expect(0, rejected={"duplicate_columns": 1})),
    "parquet_list_amount": (14, Expect(0, rejected={"unsupported_type": 1})),
    "parquet_struct_customer": (15, Expect(0, rejected={"unsupported_type": 1})),
    "parquet_map_merchant": (16, Expect(0, rejected={"unsupported_type": 1})),
    "parquet_binary_id": (17, Expect(0, rejected={"unsupported_type": 1})),
    "parquet_zoned_timestamps_and_floats": (18, Expect(3)),
    "parquet_padded_mixed_case_names_nested_extra": (19, Expect(1)),
    "uppercase_csv_and_unicode_name_with_spaces": (20, Expect(2)),
    "folder_named_like_a_csv_and_nested_folders": (21, Expect(2)),
    "cr_only_line_endings": (22, Expect(2)),
    "nul_byte": (23, Expect(0, rejected={"nul_bytes": 1})),
    "trailing_empty_header_column_and_quoted_names": (24, Expect(2)),
    "replaced_by_an_unreadable_version": (25, Expect(2, rejected={"not_utf8": 1})),
    "debris_and_hidden_partial_upload_beside_a_good_file": (26, Expect(1)),
    "symlink_inside_the_landing_folder": (27, Expect(1, {"duplicate_id": 1})),
    "rejected_file_removed_before_the_second_run": (28, Expect(1)),
    "name_with_bytes_that_are_not_utf8": (29, Expect(0, rejected={"unsafe_path": 1})),
    "malformed_header": (30, Expect(0, rejected={"malformed_header": 1})),
}

# Plain CSV files of the first delivery, loaded in bulk: days 3 (_b), 20 (2), 21 (2), 25, 26, 27 (file and link), 28.
BULK_FIRST = 10

# Entries that belong to no date: rejected (event_date null) or ignored, after the second run.
FUTURE = "transactions_2099-01-01.csv"
UNPLACED_REJECTED = {
    "transactions.csv": "no_date_in_name",
    FUTURE: "future_date",
    f"transactions_{day(1)}.json": "unsupported_format",
    f"transactions_{day(1)}.xlsx": "unsupported_format",
    f"transactions_{day(1)}.tsv": "unsupported_format",
    f"transactions_{day(1)}.gz": "unsupported_format",
    f"transactions_{day(1)}.parquet.gz": "unsupported_format",
    f"{day(2)}_to_{day(3)}.csv": "conflicting_dates",
    f"{day(4)}/transactions_{day(5)}.csv": "conflicting_dates",
    "2025/03/05/part-1.csv": "no_date_in_name",
    f"loop_{day(1)}.csv": "unreadable",
    f"broken_{day(1)}.csv": "unreadable",
    f"fifo_{day(1)}.csv": "unreadable",
    f"linked_folder_{day(1)}": "unreadable",
}
UNPLACED_IGNORED = {
    ".DS_Store": "os_debris",
    "._transactions_2025-03-01.csv": "os_debris",
    "~$transactions.xlsx": "os_debris",
    "Thumbs.db": "os_debris",
    "desktop.ini": "os_debris",
    "_SUCCESS": "hidden_name",
    "_manifest.json": "hidden_name",
    ".staging/": "hidden_name",
    f"{day(26)}/.transactions_{day(26)}.csv.part": "hidden_name",
    f"{day(26)}/_SUCCESS": "hidden_name",
    f"{day(26)}/.DS_Store": "os_debris",
    "transactions_2025-02-28.csv": "before_start_date",
}
# Fixed or removed before the second run: their records must go.
REMOVED = {"transactions_2025-02-30.csv": "invalid_date", "notes.txt": "unsupported_format"}


def _write(landing: Path, name: str, content: str | bytes) -> Path:
    path = landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _land_gzip(landing: Path) -> None:
    _write(landing, f"transactions_{day(1)}.csv.gz", gzip.compress(csv(*(row(f"B01{c}", 1) for c in "abc")).encode()))
    _write(landing, f"TRANSACTIONS_{day(2)}.CSV.GZ", gzip.compress(csv(row("B02a", 2), row("B02b", 2)).encode()))
    _write(landing, f"transactions_{day(3)}.csv.gz", gzip.compress(csv(row("B03x", 3)).encode() * 50)[:-30])
    _write(landing, f"transactions_{day(3)}_b.csv", csv(row("B03a", 3)))
    _write(landing, f"transactions_{day(4)}.csv.gz", gzip.compress(b""))
    _write(landing, f"transactions_{day(5)}.csv.gz", gzip.compress(csv().encode()))
    _write(
        landing, f"transactions_{day(6)}.csv.gz", gzip.compress(csv(row("B06a", 6, customer="C\xe9")).encode("latin-1"))
    )
    bomb = csv(*(row(f"B07{i:05d}", 7) for i in range(MAX_FILE_BYTES // 40)))
    assert len(bomb) > MAX_FILE_BYTES
    _write(landing, f"transactions_{day(7)}.csv.gz", gzip.compress(bomb.encode()))


def _land_rfc4180(landing: Path) -> None:
    _write(
        landing,
        f"transactions_{day(8)}.csv",
        csv(row("B08a", 8), row("B08b", 8, merchant='"M\r\n8, ""the"" shop"'), row("B08c", 8), eol="\r\n"),
    )
    _write(
        landing,
        f"transactions_{day(9)}.csv",
        csv(row("B09a", 9, merchant='"M9\n\n\nafter blank lines"'), "", "", row("B09b", 9), ""),
    )
    _write(
        landing,
        f"transactions_{day(10)}.csv",
        csv(row("B10a", 10, customer='C"1'), row("B10b", 10), row("B10c", 10, customer='C"2'), row("B10d", 10)),
    )
    _write(
        landing, f"transactions_{day(11)}.csv", csv(row("B11a", 11), row("B11b", 11), row("B11c", 11, customer='"C1'))
    )
    _write(landing, f"transactions_{day(30)}.csv", csv(row("B30a", 30), header='"transaction_id,' + HEADER))


def _land_parquet(landing: Path) -> None:
    _write(landing, f"transactions_{day(12)}.csv", csv(row("B12a", 12) + ",1.00", header=HEADER + ", Amount "))
    pq.write_table(table({**record("B13a", 13), "AMOUNT": "1.00"}), landing / f"transactions_{day(13)}.parquet")
    nested = {
        14: ("amount", pa.list_(pa.float64()), [1.0]),
        15: ("customer_id", pa.struct([("id", pa.string())]), {"id": "C1"}),
        16: ("merchant_id", pa.map_(pa.string(), pa.string()), [("k", "v")]),
        17: ("transaction_id", pa.binary(), b"B17a"),
    }
    for n, (column, dtype, value) in nested.items():
        values = record(f"B{n}a", n)
        arrays = {c: pa.array([value], dtype) if c == column else pa.array([v]) for c, v in values.items()}
        pq.write_table(pa.table(arrays), landing / f"transactions_{day(n)}.parquet")
    tokyo = dt.timezone(dt.timedelta(hours=9))
    instants = [
        dt.datetime.combine(day(18), dt.time(9, 30), tokyo),
        dt.datetime.combine(day(19), dt.time(8, 59, 59), tokyo),
    ]
    pq.write_table(
        pa.table(
            {
                "transaction_id": ["B18a", "B18b", "B18c"],
                "customer_id": ["C1"] * 3,
                "merchant_id": ["M1"] * 3,
                "currency": ["USD"] * 3,
                "amount": pa.array([12.34, 99.99, 0.1], pa.float64()),
                "event_timestamp": pa.array([*instants, instants[0]], pa.timestamp("us", tz="Asia/Tokyo")),
            }
        ),
        landing / f"transactions_{day(18)}.parquet",
    )
    pq.write_table(
        pa.table(
            {
                " Transaction_ID ": ["B19a"],
                "CUSTOMER_ID": ["C1"],
                "Merchant_Id": ["M1"],
                "amount": pa.array([12.34], pa.float32()),
                "currency": ["USD"],
                "event_timestamp": [f"{day(19)}T10:00:00Z"],
                "tags": pa.array([["a", "b"]]),
            }
        ),
        landing / f"transactions_{day(19)}.parquet",
    )


def _land_names_and_encodings(landing: Path, outside: Path) -> None:
    _write(landing, f"TRANSACTIONS_{day(20)}.CSV", csv(row("B20a", 20)))
    _write(landing, f"données du {day(20)} (1).csv", csv(row("B20b", 20)))
    _write(landing, f"{day(21)}.csv/part-1.csv", csv(row("B21a", 21)))
    _write(landing, f"{day(21)}/store 7/part-1.csv", csv(row("B21b", 21)))
    _write(landing, f"transactions_{day(22)}.csv", csv(row("B22a", 22), row("B22b", 22), eol="\r"))
    _write(landing, f"transactions_{day(23)}.csv", csv(row("B23a", 23), row("B23b\x0023", 23)))
    _write(
        landing,
        f"transactions_{day(24)}.csv",
        csv(row("B24a", 24) + ",", row("B24b", 24) + ",", header=",".join(f'"{c}"' for c in COLUMNS) + ","),
    )
    _write(landing, f"transactions_{day(25)}.csv", csv(row("B25a", 25), row("B25b", 25)))
    for name in (f".transactions_{day(26)}.csv.part", "_SUCCESS", ".DS_Store"):
        _write(landing, f"{day(26)}/{name}", csv(row("B26x", 26)))
    _write(landing, f"{day(26)}/part-0.csv", csv(row("B26a", 26)))
    _write(landing, f"transactions_{day(27)}.csv", csv(row("B27a", 27)))
    os.symlink(landing / f"transactions_{day(27)}.csv", landing / f"transactions_{day(27)}_link.csv")
    _write(landing, f"transactions_{day(28)}.csv", csv(row("B28a", 28)))
    _write(landing, f"transactions_{day(28)}_broken.csv", b"")
    bad_name = os.fsencode(landing) + f"/transactions_{day(29)}_\xff.csv".encode("latin-1")
    with open(bad_name, "wb") as handle:
        handle.write(csv(row("B29a", 29)).encode())


def _land_unplaced(landing: Path, outside: Path) -> None:
    for name in UNPLACED_REJECTED | UNPLACED_IGNORED | REMOVED:
        if (
            name.startswith(("loop_", "broken_", "fifo_", "linked_folder_"))
            or name.endswith("/")
            or day(26).isoformat() in name
        ):
            continue
        _write(landing, name, csv(row("U1", 1)))
    (landing / ".staging").mkdir()
    _write(landing, f".staging/transactions_{day(1)}.csv", csv(row("U2", 1)))
    os.symlink(f"loop_{day(1)}.csv", landing / f"loop_{day(1)}.csv")
    os.symlink(outside / "nothing_here.csv", landing / f"broken_{day(1)}.csv")
    os.mkfifo(landing / f"fifo_{day(1)}.csv")
    os.symlink(outside, landing / f"linked_folder_{day(1)}")


def _second_delivery(landing: Path) -> None:
    (landing / f"transactions_{day(25)}.csv").write_bytes(csv(row("B25z", 25, customer="C\xe9")).encode("latin-1"))
    (landing / f"transactions_{day(28)}_broken.csv").unlink()
    for name in REMOVED:
        (landing / name).unlink()


def md_rows(text: str) -> list[list[str]]:
    """The body rows of a markdown table, cells trimmed."""
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in text.splitlines()[2:]]


@dataclass(frozen=True)
class Battery:
    settings: object
    first: dg.ExecuteInProcessResult
    second: dg.ExecuteInProcessResult
    first_unplaced: list[tuple]
    # After each run: the raw tables as loaded (bulk where it can) and as parsed file by file in a twin home.
    raw_pairs: list[tuple[dict, dict]]
    per_line_runs: list[dg.ExecuteInProcessResult]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return query(self.settings, sql, params)


def _raw_tables(settings, runs: list[dg.ExecuteInProcessResult]) -> dict[str, list[tuple]]:
    return warehouse_raw_tables(settings.warehouse_path, {r.run_id: f"run {i}" for i, r in enumerate(runs)})


@pytest.fixture(scope="module")
def battery(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("battery_home")
    # Each case's day is mostly bad rows on purpose: the quarantine-share check must not block it.
    settings = dataclasses.replace(
        make_settings(home, max_file_bytes=MAX_FILE_BYTES, max_quarantine_share=1.0), start_date=START
    )
    settings.ensure_dirs()
    landing, outside = settings.landing_dir, tmp_path_factory.mktemp("battery_outside")
    _land_gzip(landing)
    _land_rfc4180(landing)
    _land_parquet(landing)
    _land_names_and_encodings(landing, outside)
    _land_unplaced(landing, outside)
    selection = dg.AssetSelection.groups("raw", "clean")
    # The same folder loaded file by file, line by line, into a twin home: raw only.
    twin = dataclasses.replace(settings, home=tmp_path_factory.mktemp("battery_per_line_home"))
    twin.ensure_dirs()
    runs, per_line_runs, raw_pairs = [], [], []
    # The results must not depend on the machine's time zone (dbt inherits it too).
    saved = os.environ.get("TZ")
    os.environ["TZ"] = RUN_TZ
    time.tzset()
    try:
        for n in range(2):
            if n:
                unplaced = query(
                    settings,
                    "select source_file, reason, load_id from raw.rejected_files where event_date is null order by 1",
                )
                _second_delivery(landing)
            runs.append(refresh(settings, START, END, selection=selection, log_level="WARNING"))
            per_line_runs.append(refresh(twin, START, END, selection=RAW, log_level="WARNING", op_config=PER_LINE))
            for result in (runs[-1], per_line_runs[-1]):
                assert result.success, [e.message for e in result.all_events if e.is_failure]
            raw_pairs.append((_raw_tables(settings, runs), _raw_tables(twin, per_line_runs)))
    finally:
        if saved is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = saved
        time.tzset()
    return Battery(settings, runs[0], runs[1], unplaced, raw_pairs, per_line_runs)


@pytest.mark.parametrize("case", list(CASES))
def test_case_lands_where_it_should(battery: Battery, case: str) -> None:
    n, expect = CASES[case]
    d = day(n)
    [(raw,)] = battery.query("select count(*) from raw.transactions where event_date = ?", [d])
    [(clean,)] = battery.query("select count(*) from clean.transactions where event_date = ?", [d])
    quarantined = dict(
        battery.query(
            "select reject_reason, count(*) from clean.transactions_quarantine where event_date = ? group by 1", [d]
        )
    )
    rejected = Counter(r for (r,) in battery.query("select reason from raw.rejected_files where event_date = ?", [d]))
    assert (clean, quarantined, dict(rejected)) == (expect.clean, expect.quarantined, expect.rejected)
    assert raw == clean + sum(quarantined.values())


def test_no_rows_outside_the_cases(battery: Battery) -> None:
    [(raw, clean, quarantined, _dates)] = battery.query(
        "select (select count(*) from raw.transactions), (select count(*) from clean.transactions),"
        " (select count(*) from clean.transactions_quarantine), (select count(distinct event_date) from raw.transactions)"
    )
    assert clean == sum(e.clean for _, e in CASES.values())
    assert raw == clean + quarantined == clean + sum(sum(e.quarantined.values()) for _, e in CASES.values())
    # Not a row of the unplaced entries (all ids U...) was loaded, and nothing after the window.
    assert battery.query(
        "select count(*) from raw.transactions where transaction_id like 'U%' or event_date > ?", [END]
    ) == [(0,)]


def test_entries_without_a_date_are_rejected_or_ignored_by_name(battery: Battery) -> None:
    rejected = dict(battery.query("select source_file, reason from raw.rejected_files where event_date is null"))
    ignored = dict(battery.query("select source_file, reason from raw.ignored_files"))
    assert rejected == UNPLACED_REJECTED
    assert ignored == UNPLACED_IGNORED


def test_records_of_fixed_or_removed_entries_go_and_the_rest_keep_their_first_load(battery: Battery) -> None:
    first = {name: (reason, load) for name, reason, load in battery.first_unplaced}
    assert {name: first[name][0] for name in REMOVED} == REMOVED
    assert {name: reason for name, (reason, _) in first.items() if name not in REMOVED} == UNPLACED_REJECTED
    now = battery.query(
        "select source_file, reason, load_id from raw.rejected_files where event_date is null order by 1"
    )
    assert now == [row for row in battery.first_unplaced if row[0] not in REMOVED]
    assert {load for _, _, load in now} == {battery.first.run_id}
    assert battery.query("select count(*) from raw.rejected_files where source_file like '%broken.csv'") == [(0,)]


def test_the_check_names_every_rejected_and_ignored_file(battery: Battery) -> None:
    [check] = [e for e in battery.second.get_asset_check_evaluations() if e.check_name == "no_rejected_files"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    dated = sum(sum(e.rejected.values()) for _, e in CASES.values())
    assert check.metadata["rejected_files"].value == dated + len(UNPLACED_REJECTED)
    assert check.metadata["ignored_files"].value == len(UNPLACED_IGNORED)
    listed = {(date, name): reason for date, name, reason, _ in md_rows(check.metadata["files"].value)}
    assert {name: reason for (date, name), reason in listed.items() if date == "-"} == UNPLACED_REJECTED
    assert listed[(str(day(29)), f"transactions_{day(29)}_\\xff.csv")] == "unsafe_path"
    assert {name: reason for name, reason, _ in md_rows(check.metadata["ignored"].value)} == UNPLACED_IGNORED


def test_values_survive_exactly(battery: Battery) -> None:
    merchants = dict(
        battery.query(
            "select transaction_id, merchant_id from clean.transactions where event_date in (?, ?)", [day(8), day(9)]
        )
    )
    assert merchants["B08b"] == 'M\r\n8, "the" shop' and merchants["B08c"] == "M1"
    assert merchants["B09a"] == "M9\n\n\nafter blank lines"
    lines = battery.query(
        "select transaction_id, line_number from raw.transactions where event_date in (?, ?) order by 1",
        [day(8), day(9)],
    )
    assert lines == [("B08a", 2), ("B08b", 3), ("B08c", 5), ("B09a", 2), ("B09b", 8)]


def test_a_stray_quote_costs_only_its_own_line(battery: Battery) -> None:
    assert battery.query(
        "select event_date, line_number from clean.transactions_quarantine where reject_reason = 'malformed_line' order by 1, 2"
    ) == [(day(10), 2), (day(10), 4), (day(11), 4)]


def test_parquet_instants_and_floats_keep_their_meaning(battery: Battery) -> None:
    raw = battery.query(
        "select transaction_id, amount, event_timestamp from raw.transactions where event_date in (?, ?) order by 1",
        [day(18), day(19)],
    )
    assert raw == [
        ("B18a", "12.34", f"{day(18)}T00:30:00Z"),
        ("B18b", "99.99", f"{day(18)}T23:59:59Z"),
        ("B18c", "0.1", f"{day(18)}T00:30:00Z"),
        ("B19a", "12.34", f"{day(19)}T10:00:00Z"),
    ]


def test_extra_and_unnamed_columns_warn_by_name(battery: Battery) -> None:
    [drift] = [e for e in battery.second.get_asset_check_evaluations() if e.check_name == "no_schema_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert dict(md_rows(drift.metadata["files"].value)) == {
        f"transactions_{day(19)}.parquet": "tags",
        f"transactions_{day(24)}.csv": "(unnamed column 9)",
    }


def test_rejection_details_name_the_problem(battery: Battery) -> None:
    details = dict(battery.query("select source_file, detail from raw.rejected_files"))
    assert details[f"transactions_{day(12)}.csv"] == "column(s) named more than once: amount"
    assert details[f"transactions_{day(14)}.parquet"].startswith(
        "contract column(s) of a type that has no text form: amount (list<"
    )
    assert details[f"transactions_{day(17)}.parquet"].endswith("transaction_id (binary)")
    assert details[f"transactions_{day(3)}.csv.gz"].startswith("not a complete gzip file")
    assert details[f"fifo_{day(1)}.csv"] == "a FIFO, not a regular file (never opened)"
    assert details[f"loop_{day(1)}.csv"] == "symlink loop"
    assert details[FUTURE] == "2099-01-01 is after today (UTC)"


def test_bulk_and_per_line_loading_give_identical_raw_tables(battery: Battery) -> None:
    # The plain CSV files of the first delivery load in bulk; quoted, gzip, Parquet, CR-only ... on their own.
    assert_bulk_matches_per_line(battery.raw_pairs, (battery.first, battery.second), battery.per_line_runs, BULK_FIRST)
