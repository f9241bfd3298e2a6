"""Bad input, one scenario per event date, through the real graph (raw and clean, dbt, Soda).

Every scenario's files land on their own date; the graph runs once, re-deliveries are
made, and it runs again. Each test then checks its date: where every row went (clean,
quarantine with its reason, or a rejected file), that raw = clean + quarantined, and
that the date holds exactly what the scenario predicts, so no other input leaked in.
"""

import dataclasses
import datetime as dt
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ballast.contracts import contract_checks
from ballast.runs import refresh
from ballast.settings import CONTRACTS_DIR
from tests.conftest import make_settings, query
from tests.raw.raw_tables import PER_LINE, RAW, assert_bulk_matches_per_line, load_counts, warehouse_raw_tables

pytestmark = pytest.mark.full  # raw and clean materialized over every scenario

HEADER = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
START = dt.date(2025, 1, 1)
END = dt.date(2025, 1, 23)
MAX_COLUMNS = 12


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


def row(
    tid: str,
    n: int,
    amount: str = "10.00",
    currency: str = "USD",
    ts: str | None = None,
    customer: str = "C1",
    channel: str = "web",
    country: str = "US",
) -> str:
    return ",".join([tid, customer, "M1", amount, currency, ts or f"{day(n)}T10:00:00Z", channel, country])


def csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


@dataclass(frozen=True)
class Expect:
    clean: int
    quarantined: dict[str, int]
    rejected: dict[str, int]


SCENARIOS: dict[str, tuple[int, Expect]] = {
    "clean_file": (1, Expect(3, {}, {})),
    "identical_redelivery": (2, Expect(2, {}, {})),
    "corrected_redelivery": (3, Expect(3, {}, {})),
    "empty_file": (4, Expect(1, {}, {"empty_file": 1})),
    "header_only_file": (5, Expect(0, {}, {"header_only": 1})),
    "truncated_parquet": (6, Expect(1, {}, {"unreadable": 1})),
    "latin1_bytes": (7, Expect(0, {}, {"not_utf8": 1})),
    "utf8_bom": (8, Expect(2, {}, {})),
    "columns_reordered": (9, Expect(2, {}, {})),
    "extra_column": (10, Expect(2, {}, {})),
    "missing_required_column": (11, Expect(0, {}, {"missing_columns": 1})),
    "too_many_fields": (12, Expect(2, {"malformed_line": 1}, {})),
    "too_few_fields": (13, Expect(2, {"malformed_line": 1}, {})),
    "unterminated_quote": (14, Expect(2, {"malformed_line": 1}, {})),
    "null_and_blank_ids": (15, Expect(1, {"missing_id": 2}, {})),
    "duplicate_in_one_file": (16, Expect(1, {"duplicate_id": 1}, {})),
    "conflicting_duplicate_across_files": (17, Expect(1, {"conflicting_duplicate": 1}, {})),
    "bad_amounts": (18, Expect(2, {"bad_amount": 4}, {})),
    "unknown_currency": (19, Expect(1, {"bad_currency": 2}, {})),
    "mixed_offsets": (20, Expect(4, {"out_of_partition": 1}, {})),
    "future_and_sentinel_dates": (21, Expect(1, {"future_timestamp": 1, "bad_timestamp": 2}, {})),
    "symlink_outside_landing": (22, Expect(1, {}, {"unsafe_path": 1})),
    "too_many_columns": (23, Expect(0, {}, {"too_many_columns": 1})),
}


# Plain CSV files of the first delivery with data rows, loaded in bulk: the CSV files of every scenario but the
# empty file of day 4, days 5 (header only), 7 (Latin-1), 11 (missing columns), 14 (a quote), the symlink out of
# day 22 and day 23 (too many columns); day 17 has two.
BULK_FIRST = 18


def _write(landing: Path, name: str, content: str | bytes) -> Path:
    path = landing / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _land_first_delivery(landing: Path, outside: Path) -> None:
    f = lambda n, suffix="": f"transactions_{day(n)}{suffix}.csv"  # noqa: E731
    _write(landing, f(1), csv(row("T01a", 1), row("T01b", 1), row("T01c", 1)))
    _write(landing, f(2), csv(row("T02a", 2), row("T02b", 2)))
    _write(landing, f(3), csv(row("T03a", 3, amount="1.00"), row("T03b", 3)))
    _write(landing, f(4), b"")
    _write(landing, f(4, "_b"), csv(row("T04a", 4)))
    _write(landing, f(5), csv())
    good = dict(zip(HEADER.split(","), row("T06a", 6).split(","), strict=True))
    pq.write_table(pa.table({c: [v] for c, v in good.items()}), landing / f"transactions_{day(6)}_b.parquet")
    full = landing / f"transactions_{day(6)}.parquet"
    pq.write_table(pa.table({c: [f"T06x-{c}"] * 100 for c in HEADER.split(",")}), full)
    full.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _write(landing, f(7), (csv(row("T07a", 7, customer="C\xe9")).encode("latin-1")))
    _write(landing, f(8), b"\xef\xbb\xbf" + csv(row("T08a", 8), row("T08b", 8)).encode())
    _write(
        landing,
        f(9),
        "event_timestamp,amount,currency,merchant_id,customer_id,transaction_id\n"
        f"{day(9)}T10:00:00Z,12.34,EUR,M9,C9,T09a\n{day(9)}T11:00:00Z,5.00,GBP,M9,C9,T09b\n",
    )
    _write(
        landing,
        f(10),
        csv(row("T10a", 10) + ",gold", row("T10b", 10) + ",silver", header=HEADER + ",loyalty_tier"),
    )
    _write(
        landing,
        f(11),
        csv(
            "T11a,C1,M1,1.00,2025-01-11T10:00:00Z",
            header="transaction_id,customer_id,merchant_id,amount,event_timestamp",
        ),
    )
    _write(landing, f(12), csv(row("T12a", 12), row("T12b", 12) + ",surplus", row("T12c", 12)))
    _write(landing, f(13), csv(row("T13a", 13), "T13b,C1,M1,10.00", row("T13c", 13)))
    _write(landing, f(14), csv(row("T14a", 14, customer='"C1'), row("T14b", 14), row("T14c", 14)))
    _write(landing, f(15), csv(row("", 15), row("   ", 15), row("T15a", 15)))
    _write(landing, f(16), csv(row("T16a", 16), row("T16a", 16)))
    _write(landing, f(17, "_a"), csv(row("T17a", 17, amount="1.00")))
    _write(landing, f(17, "_b"), csv(row("T17a", 17, amount="2.00")))
    _write(
        landing,
        f(18),
        csv(
            *(
                row(f"T18{i}", 18, amount=a)
                for i, a in enumerate(["-5.00", "0.00", "100000.01", "abc", "100000.00", "0.01"])
            )
        ),
    )
    _write(
        landing,
        f(19),
        csv(row("T19a", 19, currency="JPY"), row("T19b", 19, currency=""), row("T19c", 19, currency="eur")),
    )
    _write(
        landing,
        f(20),
        csv(
            row("T20a", 20, ts=f"{day(20)}T05:30:00+05:30"),
            row("T20b", 20, ts=f"{day(20)}T10:00:00-08:00"),
            row("T20c", 20, ts=f"{day(20)} 12:00:00"),
            row("T20d", 20, ts=f"{day(20)}T08:00:00Z"),
            row("T20e", 20, ts=f"{day(20)}T23:30:00-01:00"),
        ),
    )
    _write(
        landing,
        f(21),
        csv(
            row("T21a", 21, ts="2099-06-01T00:00:00Z"),
            row("T21b", 21, ts="9999-12-31T00:00:00Z"),
            row("T21c", 21, ts="1970-01-01T00:00:00Z"),
            row("T21d", 21),
        ),
    )
    secret = _write(outside, "elsewhere.csv", csv(row("T22x", 22)))
    os.symlink(secret, landing / f(22))
    _write(landing, f(22, "_b"), csv(row("T22a", 22)))
    extra = ",".join(f"x{i}" for i in range(MAX_COLUMNS - 8 + 1))
    _write(
        landing, f(23), csv(row("T23a", 23) + "," + ",".join("v" * (MAX_COLUMNS - 8 + 1)), header=HEADER + "," + extra)
    )


def _land_second_delivery(landing: Path) -> None:
    same = landing / f"transactions_{day(2)}.csv"
    same.write_bytes(same.read_bytes())
    _write(landing, f"transactions_{day(3)}.csv", csv(row("T03a", 3, amount="2.00"), row("T03b", 3), row("T03c", 3)))


@dataclass(frozen=True)
class Scenarios:
    settings: object
    first: dg.ExecuteInProcessResult
    second: dg.ExecuteInProcessResult
    first_load_ids: dict[str, str]
    # After each run: the raw tables as loaded (bulk where it can) and as parsed file by file in a twin home.
    raw_pairs: list[tuple[dict, dict]]
    per_line_runs: list[dg.ExecuteInProcessResult]

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return query(self.settings, sql, params)


def _raw_tables(settings, runs: list[dg.ExecuteInProcessResult]) -> dict[str, list[tuple]]:
    return warehouse_raw_tables(settings.warehouse_path, {r.run_id: f"run {i}" for i, r in enumerate(runs)})


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory: pytest.TempPathFactory) -> Scenarios:
    # Each scenario's date is mostly bad rows on purpose: the quarantine-share limit would
    # stop the run, and it is tested on its own (tests/clean/test_quarantine_share.py).
    settings = make_settings(
        tmp_path_factory.mktemp("scenarios_home"), max_columns=MAX_COLUMNS, max_quarantine_share=1.0
    )
    settings.ensure_dirs()
    # The same folder loaded file by file, line by line, into a twin home: raw only.
    twin = dataclasses.replace(settings, home=tmp_path_factory.mktemp("scenarios_per_line_home"))
    twin.ensure_dirs()
    _land_first_delivery(settings.landing_dir, tmp_path_factory.mktemp("outside"))
    selection = dg.AssetSelection.groups("raw", "clean")
    runs, per_line_runs, raw_pairs = [], [], []
    for n in range(2):
        if n:
            first_load_ids = dict(query(settings, "select distinct source_file, load_id from raw.transactions"))
            _land_second_delivery(settings.landing_dir)
        runs.append(refresh(settings, START, END, selection=selection, log_level="WARNING"))
        per_line_runs.append(refresh(twin, START, END, selection=RAW, log_level="WARNING", op_config=PER_LINE))
        for result in (runs[-1], per_line_runs[-1]):
            assert result.success, [e.message for e in result.all_events if e.is_failure]
        raw_pairs.append((_raw_tables(settings, runs), _raw_tables(twin, per_line_runs)))
    return Scenarios(settings, runs[0], runs[1], first_load_ids, raw_pairs, per_line_runs)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_scenario_lands_where_it_should(scenarios: Scenarios, scenario: str) -> None:
    n, expect = SCENARIOS[scenario]
    d = day(n)
    [(raw,)] = scenarios.query("select count(*) from raw.transactions where event_date = ?", [d])
    [(clean,)] = scenarios.query("select count(*) from clean.transactions where event_date = ?", [d])
    quarantined = dict(
        scenarios.query(
            "select reject_reason, count(*) from clean.transactions_quarantine where event_date = ? group by 1", [d]
        )
    )
    rejected = Counter(r for (r,) in scenarios.query("select reason from raw.rejected_files where event_date = ?", [d]))
    assert (clean, quarantined, dict(rejected)) == (expect.clean, expect.quarantined, expect.rejected)
    assert raw == clean + sum(quarantined.values())


def test_no_rows_outside_the_scenarios(scenarios: Scenarios) -> None:
    [(raw, clean, quarantined)] = scenarios.query(
        "select (select count(*) from raw.transactions), (select count(*) from clean.transactions),"
        " (select count(*) from clean.transactions_quarantine)"
    )
    assert clean == sum(e.clean for _, e in SCENARIOS.values())
    assert raw == clean + quarantined == clean + sum(sum(e.quarantined.values()) for _, e in SCENARIOS.values())


def test_identical_redelivery_is_a_no_op(scenarios: Scenarios) -> None:
    name = f"transactions_{day(2)}.csv"
    assert dict(
        scenarios.query("select distinct source_file, load_id from raw.transactions where event_date = ?", [day(2)])
    ) == {name: scenarios.first_load_ids[name]}


def test_corrected_redelivery_replaces_the_earlier_rows(scenarios: Scenarios) -> None:
    rows = scenarios.query(
        "select transaction_id, amount::varchar, load_id from clean.transactions where event_date = ? order by 1",
        [day(3)],
    )
    assert [(t, a) for t, a, _ in rows] == [("T03a", "2.00"), ("T03b", "10.00"), ("T03c", "10.00")]
    assert {load for _, _, load in rows} == {scenarios.second.run_id}


def test_bom_and_reordered_columns_are_matched_by_name(scenarios: Scenarios) -> None:
    assert scenarios.query(
        "select transaction_id from clean.transactions where event_date = ? order by 1", [day(8)]
    ) == [("T08a",), ("T08b",)]
    assert scenarios.query(
        "select transaction_id, customer_id, merchant_id, amount::varchar, currency, channel from clean.transactions"
        " where event_date = ? order by 1",
        [day(9)],
    ) == [("T09a", "C9", "M9", "12.34", "EUR", None), ("T09b", "C9", "M9", "5.00", "GBP", None)]


def test_offsets_are_normalised_to_utc(scenarios: Scenarios) -> None:
    rows = dict(
        scenarios.query(
            "select transaction_id, event_timestamp from clean.transactions where event_date = ?", [day(20)]
        )
    )
    at = lambda h, m=0: dt.datetime.combine(day(20), dt.time(h, m))  # noqa: E731
    assert rows == {"T20a": at(0), "T20b": at(18), "T20c": at(12), "T20d": at(8)}
    [(reason, raw_ts)] = scenarios.query(
        "select reject_reason, event_timestamp from clean.transactions_quarantine where transaction_id = 'T20e'"
    )
    assert (reason, raw_ts) == ("out_of_partition", f"{day(20)}T23:30:00-01:00")


def test_malformed_lines_keep_line_number_and_text(scenarios: Scenarios) -> None:
    rows = scenarios.query(
        "select event_date, line_number, raw_line from clean.transactions_quarantine"
        " where reject_reason = 'malformed_line' order by 1"
    )
    assert rows == [
        (day(12), 3, row("T12b", 12) + ",surplus"),
        (day(13), 3, "T13b,C1,M1,10.00"),
        (day(14), 2, row("T14a", 14, customer='"C1')),
    ]


def test_extra_column_stays_out_of_clean_and_warns(scenarios: Scenarios) -> None:
    columns = {
        c
        for (c,) in scenarios.query(
            "select column_name from information_schema.columns where table_schema = 'clean' and table_name = 'transactions'"
        )
    }
    assert "loyalty_tier" not in columns
    [drift] = [e for e in scenarios.second.get_asset_check_evaluations() if e.check_name == "no_schema_drift"]
    assert not drift.passed and drift.severity == dg.AssetCheckSeverity.WARN
    assert f"transactions_{day(10)}.csv | loyalty_tier" in drift.metadata["files"].value


def test_rejected_files_fail_their_check_and_name_the_reason(scenarios: Scenarios) -> None:
    [check] = [e for e in scenarios.second.get_asset_check_evaluations() if e.check_name == "no_rejected_files"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    rejected = dict(scenarios.query("select source_file, reason from raw.rejected_files"))
    assert rejected[f"transactions_{day(22)}.csv"] == "unsafe_path"
    assert check.metadata["rejected_files"].value == len(rejected) == 7
    # The symlink's target was never read.
    assert scenarios.query("select count(*) from raw.transactions where transaction_id = 'T22x'") == [(0,)]


def test_contract_checks_pass_on_the_clean_layer(scenarios: Scenarios) -> None:
    declared = {c.name for c in contract_checks(CONTRACTS_DIR / "clean_transactions.yml")}
    contract = [
        e
        for e in scenarios.second.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["clean", "transactions"]) and e.check_name in declared
    ]
    assert len(contract) >= 10 and all(e.passed for e in contract)
    window = {e.metadata["window"].value for e in contract}
    assert window == {f"{START} to {END}"}


def test_bulk_and_per_line_loading_give_identical_raw_tables(scenarios: Scenarios) -> None:
    # Most scenario files are plain CSV and load in bulk; Parquet and quoted ones on their own.
    assert_bulk_matches_per_line(
        scenarios.raw_pairs, (scenarios.first, scenarios.second), scenarios.per_line_runs, BULK_FIRST
    )
    # The corrected file of the second delivery loads in bulk.
    assert load_counts(scenarios.second) == (1, 1, 0)
