"""Soda Core v4 data contracts: listing a contract's checks and verifying it on DuckDB.

One runner for every layer. The check list is read from the contract file itself, so
each Soda check becomes one Dagster asset check with a stable name; verification runs
on the caller's DuckDB connection (no second connection, no network, no telemetry).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DATA_SOURCE_NAME = "ballast"


class ContractError(Exception):
    """A contract could not be verified (bad file, SQL error, missing table)."""


@dataclass(frozen=True)
class ContractCheck:
    name: str
    check_type: str
    column: str | None
    qualifier: str | None
    description: str


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    outcome: str
    value: float | int | None
    metrics: dict[str, Any]
    description: str


def check_name(check_type: str, column: str | None, qualifier: str | None) -> str:
    parts = [column, check_type, qualifier]
    return "_".join(p for p in parts if p)


def _describe(check_type: str, column: str | None, body: dict) -> str:
    if body.get("name"):
        return str(body["name"])
    target = f"column {column}" if column else "the dataset"
    details = ", ".join(f"{k}={v}" for k, v in body.items() if k not in ("qualifier", "name", "threshold"))
    return f"Soda {check_type} check on {target}" + (f" ({details})" if details else "")


def _checks_in(entries: list, column: str | None) -> list[ContractCheck]:
    found = []
    for entry in entries or []:
        [(check_type, body)] = entry.items()
        body = body or {}
        qualifier = body.get("qualifier")
        found.append(
            ContractCheck(
                check_name(check_type, column, qualifier),
                check_type,
                column,
                qualifier,
                _describe(check_type, column, body),
            )
        )
    return found


def contract_checks(path: Path) -> list[ContractCheck]:
    """Every check a contract file declares, column checks first, in file order."""
    contract = yaml.safe_load(path.read_text())
    checks = []
    for column in contract.get("columns", []):
        checks += _checks_in(column.get("checks"), column["name"])
    checks += _checks_in(contract.get("checks"), None)
    names = [c.name for c in checks]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ContractError(f"{path.name}: checks need a qualifier to be told apart: {', '.join(sorted(duplicated))}")
    return checks


def contract_variables(path: Path) -> set[str]:
    """The variables a contract declares; only those are passed to it."""
    return set(yaml.safe_load(path.read_text()).get("variables") or {})


def write_data_source(path: Path, warehouse: Path) -> Path:
    """A Soda data source file for the warehouse, for `soda contract verify -ds` by hand."""
    config = {
        "type": "duckdb",
        "name": DATA_SOURCE_NAME,
        "connection": {"database": str(warehouse), "read_only": True},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def verify(path: Path, con: Any, variables: dict[str, str]) -> list[CheckOutcome]:
    """Verify a contract on an open DuckDB connection; one outcome per declared check."""
    # Soda reads this once, when soda_core is first imported; Ballast never sends telemetry.
    os.environ["SODA_CORE_TELEMETRY_ENABLED"] = "false"
    from soda_core.contracts import verify_contract_locally
    from soda_duckdb import DuckDBDataSource

    data_source = DuckDBDataSource.from_existing_cursor(con, name=DATA_SOURCE_NAME)
    session = verify_contract_locally(
        data_sources=[data_source], contract_file_path=str(path), variables=variables, publish=False
    )
    if session.has_errors:
        raise ContractError(f"{path.name}: {session.get_errors_str()}")
    declared = {c.name: c for c in contract_checks(path)}
    outcomes = []
    for result in session.contract_verification_results:
        for check_result in result.check_results:
            check = check_result.check
            name = check_name(check.type, check.column_name, check.qualifier)
            outcomes.append(
                CheckOutcome(
                    name=name,
                    # A check Soda could not evaluate is a failure: it proves nothing.
                    passed=bool(check_result.is_passed or check_result.is_warned),
                    outcome=check_result.outcome.name,
                    value=check_result.threshold_value,
                    metrics=dict(check_result.diagnostic_metric_values or {}),
                    description=declared[name].description if name in declared else str(check.name),
                )
            )
    missing = set(declared) - {o.name for o in outcomes}
    if missing:
        raise ContractError(f"{path.name}: Soda returned no result for {', '.join(sorted(missing))}")
    return outcomes
