"""dbt's data tests of the quarantine and the labels catch what they guard, run by the real dbt CLI on hand-made tables."""

import json

import duckdb
import pytest

from ballast.raw.landing import RAW_DDL
from ballast.resources import write_dbt_profile
from tests.clean.test_dbt_unit_tests import _dbt
from tests.conftest import make_settings

DAY = "2025-01-10"
# One quarantined value differs from raw's (a normalised amount), one label is wrong each way.
EXPECTED_FAILURES = {
    "amount_as_received",
    "churned_matches_transactions",
    "next_event_is_next_purchase",
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    settings = make_settings(tmp_path_factory.mktemp("data_tests_home"))
    settings.ensure_dirs()
    write_dbt_profile(settings)
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute(RAW_DDL)
        con.execute(
            "insert into raw.transactions values"
            " ('T1', 'C1', 'M1', '12.3', 'usd', '2025-01-10T10:00:00Z', 'web', 'US', $day, 'a.csv', 'h', 2, 'L', null, null),"
            " ('T2', 'C2', 'M1', 'x', 'USD', '2025-01-10T11:00:00Z', null, null, $day, 'a.csv', 'h', 3, 'L', null, null),"
            " (null, null, null, null, null, null, null, null, $day, 'a.csv', 'h', 4, 'L', 'x,y', null)",
            {"day": DAY},
        )
        con.execute("create schema clean")
        con.execute(
            "create table clean.transactions_quarantine as select"
            " 'bad_amount' as reject_reason, event_date, source_file, file_hash, line_number, load_id, transaction_id,"
            " customer_id, merchant_id, amount, currency, event_timestamp, channel, country, raw_line"
            " from raw.transactions"
        )
        con.execute("update clean.transactions_quarantine set amount = '12.30' where line_number = 2")
        con.execute(
            "create table clean.transactions as select * from (values"
            " ('C1', date '2025-01-05'), ('C1', date '2025-01-20'), ('C2', date '2025-01-02'))"
            " as t(customer_id, event_date)"
        )
        con.execute("create schema model")
        con.execute(
            "create table model.churn_labels as select * from (values"
            " ('C1', date '2025-01-01', date '2025-01-05', false),"  # right
            " ('C1', date '2025-01-05', date '2025-01-20', true),"  # churned, yet bought 15 days later
            " ('C2', date '2025-01-01', date '2025-01-03', false),"  # the next purchase was on the 2nd
            " ('C2', date '2025-01-02', null, true))"  # right
            " as t(customer_id, snapshot_date, next_event_date, churned)"
        )
    finally:
        con.close()
    run = _dbt(
        settings,
        "test",
        "--select",
        "test_name:kept_as_received test_name:next_purchase_after test_name:churn_within_window",
        "--vars",
        json.dumps({"start_date": DAY, "end_date": DAY}),
    )
    found = json.loads((settings.dbt_runs_dir / "unit" / "run_results.json").read_text())
    assert len(found["results"]) == 16, run.stdout[-3000:]
    return {r["unique_id"].split(".")[2]: r for r in found["results"]}


def test_each_data_test_fails_on_exactly_the_fault_it_guards(results: dict[str, dict]) -> None:
    failed = {name for name, r in results.items() if r["status"] != "pass"}
    assert failed == EXPECTED_FAILURES, {n: (r["status"], r.get("message")) for n, r in results.items()}
    assert all(results[name]["failures"] == 1 for name in EXPECTED_FAILURES)
