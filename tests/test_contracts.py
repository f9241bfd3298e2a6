"""The contract runner on a DuckDB file: check naming, partition scoping, metrics, no network."""

import socket
from pathlib import Path

import duckdb
import pytest
import yaml

from ballast import contracts
from ballast.raw.landing import RAW_DDL
from ballast.resources import dbt_project_vars, feature_windows
from ballast.settings import CONTRACTS_DIR

CLEAN = CONTRACTS_DIR / "clean_transactions.yml"
RAW = CONTRACTS_DIR / "raw_transactions.yml"
FEATURES = CONTRACTS_DIR / "customer_daily_features.yml"


@pytest.fixture
def con(tmp_path: Path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create schema clean")
    con.execute(
        """
        create table clean.transactions as
        select * from (values
            ('T1', 'C1', 'M1', 10.00::decimal(18,2), 'USD', timestamp '2025-01-01 10:00:00', date '2025-01-01', 'web', 'US', 'f1', 2::bigint, 'l'),
            ('T2', 'C1', 'M1', 20.00::decimal(18,2), 'EUR', timestamp '2025-01-01 11:00:00', date '2025-01-01', 'store', 'GB', 'f1', 3::bigint, 'l'),
            ('T3', 'C2', 'M1', 250000.00::decimal(18,2), 'USD', timestamp '2025-01-02 10:00:00', date '2025-01-02', 'web', 'US', 'f2', 2::bigint, 'l'),
            ('T3', 'C2', 'M1', 5.00::decimal(18,2), 'JPY', timestamp '2025-01-02 11:00:00', date '2025-01-02', 'web', 'US', 'f2', 3::bigint, 'l')
        ) as t(transaction_id, customer_id, merchant_id, amount, currency, event_timestamp, event_date,
               channel, country, source_file, line_number, load_id)
        """
    )
    yield con
    con.close()


def _outcomes(con, start: str, end: str) -> dict[str, contracts.CheckOutcome]:
    variables = {"start_date": start, "end_date": end, "currencies": "'USD', 'EUR', 'GBP'"}
    return {o.name: o for o in contracts.verify(CLEAN, con, variables)}


def test_each_declared_check_has_a_stable_unique_name() -> None:
    names = [c.name for c in contracts.contract_checks(CLEAN)]
    assert len(names) == len(set(names))
    assert {
        "transaction_id_duplicate",
        "amount_invalid",
        "row_count",
        "failed_rows_currency",
        "schema",
    } <= set(names)


def test_a_clean_partition_passes_although_another_is_bad(con) -> None:
    outcomes = _outcomes(con, "2025-01-01", "2025-01-01")
    assert all(o.passed for o in outcomes.values()), [o.name for o in outcomes.values() if not o.passed]
    assert outcomes["row_count"].value == 2


def test_the_bad_partition_fails_with_its_metrics(con) -> None:
    outcomes = _outcomes(con, "2025-01-02", "2025-01-02")
    failed = {name for name, o in outcomes.items() if not o.passed}
    assert failed == {"transaction_id_duplicate", "amount_invalid", "failed_rows_currency"}
    assert outcomes["amount_invalid"].metrics["invalid_count"] == 1
    assert outcomes["transaction_id_duplicate"].metrics["duplicate_count"] == 1


def test_verification_never_opens_a_network_connection(con, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network connection attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert _outcomes(con, "2025-01-01", "2025-01-01")["row_count"].passed


def test_a_contract_on_a_missing_table_is_an_error(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    try:
        with pytest.raises(contracts.ContractError, match=r"clean_transactions\.yml"):
            contracts.verify(CLEAN, con, {"start_date": "2025-01-01", "end_date": "2025-01-01"})
    finally:
        con.close()


def test_the_features_contract_defaults_to_the_configured_long_window() -> None:
    # Ballast passes the dbt var; the default only serves `soda contract verify` by hand.
    variables = yaml.safe_load(FEATURES.read_text())["variables"]
    assert variables["long_window_days"]["default"] == feature_windows().long


def test_the_contracts_amount_range_is_the_dbt_one() -> None:
    # Soda takes numbers, not variables, for valid_min/valid_max: the contract spells the
    # range, and this keeps it equal to its home, the dbt vars min_amount and max_amount.
    columns = {c["name"]: c for c in yaml.safe_load(CLEAN.read_text())["columns"]}
    invalid = next(c["invalid"] for c in columns["amount"]["checks"] if "invalid" in c)
    assert (invalid["valid_min"], invalid["valid_max"]) == (
        dbt_project_vars()["min_amount"],
        dbt_project_vars()["max_amount"],
    )


def test_the_raw_contract_fails_on_a_line_loaded_twice(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute(RAW_DDL)
        con.execute(
            "insert into raw.transactions (event_date, source_file, file_hash, line_number, load_id)"
            " values ('2025-01-01', 'a.csv', 'h', 2, 'l'), ('2025-01-01', 'a.csv', 'h', 3, 'l'),"
            " ('2025-01-02', 'b.csv', 'h', 2, 'l'), ('2025-01-02', 'b.csv', 'h', 2, 'l')"
        )
        for day, passed in (("2025-01-01", True), ("2025-01-02", False)):
            outcomes = {o.name: o for o in contracts.verify(RAW, con, {"start_date": day, "end_date": day})}
            assert set(outcomes) == {"schema", "duplicate"}
            assert outcomes["duplicate"].passed is passed, day
    finally:
        con.close()


def test_the_features_contract_fails_on_a_customer_outside_the_long_window(tmp_path: Path) -> None:
    long = feature_windows().long
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        con.execute("create schema features")
        con.execute(
            """
            create table features.customer_daily_features as
            select 'C' || i as customer_id, date '2025-04-10' + (i % 2)::integer as feature_date,
                   timestamp '2025-04-11' as feature_timestamp, 0 as txn_count_7d, 0 as txn_count_30d,
                   1 as txn_count_90d, 0.0 as spend_7d, 0.0 as spend_30d, 1.0 as spend_90d,
                   0.0 as avg_amount_30d, (? - 1 + (i % 2))::integer as days_since_last_txn, ? as tenure_days,
                   0 as distinct_merchants_30d, 0.0 as web_share_30d, 'US' as home_country
            from range(4) as r(i)
            """,
            [long, long],
        )
        for day, passed in (("2025-04-10", True), ("2025-04-11", False)):
            variables = {"start_date": day, "end_date": day, "long_window_days": str(long)}
            outcomes = {o.name: o for o in contracts.verify(FEATURES, con, variables)}
            assert all(o.passed for name, o in outcomes.items() if name != "failed_rows_recency")
            assert outcomes["failed_rows_recency"].passed is passed, day
    finally:
        con.close()
