"""The contract runner on a DuckDB file: check naming, partition scoping, metrics, no network."""

import socket
from pathlib import Path

import duckdb
import pytest
import yaml

from ballast import contracts
from ballast.resources import feature_windows
from ballast.settings import CONTRACTS_DIR

CLEAN = CONTRACTS_DIR / "clean_transactions.yml"


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
        "contract_transaction_id_duplicate",
        "contract_amount_invalid",
        "contract_row_count",
        "contract_failed_rows_currency",
        "contract_schema",
    } <= set(names)


def test_a_clean_partition_passes_although_another_is_bad(con) -> None:
    outcomes = _outcomes(con, "2025-01-01", "2025-01-01")
    assert all(o.passed for o in outcomes.values()), [o.name for o in outcomes.values() if not o.passed]
    assert outcomes["contract_row_count"].value == 2


def test_the_bad_partition_fails_with_its_metrics(con) -> None:
    outcomes = _outcomes(con, "2025-01-02", "2025-01-02")
    failed = {name for name, o in outcomes.items() if not o.passed}
    assert failed == {"contract_transaction_id_duplicate", "contract_amount_invalid", "contract_failed_rows_currency"}
    assert outcomes["contract_amount_invalid"].metrics["invalid_count"] == 1
    assert outcomes["contract_transaction_id_duplicate"].metrics["duplicate_count"] == 1


def test_verification_never_opens_a_network_connection(con, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"network connection attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert _outcomes(con, "2025-01-01", "2025-01-01")["contract_row_count"].passed


def test_a_contract_on_a_missing_table_is_an_error(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    try:
        with pytest.raises(contracts.ContractError, match=r"clean_transactions\.yml"):
            contracts.verify(CLEAN, con, {"start_date": "2025-01-01", "end_date": "2025-01-01"})
    finally:
        con.close()


def test_the_features_contract_defaults_to_the_configured_long_window() -> None:
    # Ballast passes the dbt var; the default only serves `soda contract verify` by hand.
    variables = yaml.safe_load((CONTRACTS_DIR / "customer_daily_features.yml").read_text())["variables"]
    assert variables["long_window_days"]["default"] == feature_windows().long
