"""Checks the `ballast` command makes before any work: the folders it writes, the warehouse, the contracts.

Each check raises PreflightError with one line that names the path and what to do, so
a fault in the environment is reported in a second instead of minutes into a run.
"""

from __future__ import annotations

import os
import re
import sqlite3
import tempfile
from pathlib import Path

import duckdb
import yaml

from ballast.settings import CONTRACTS_DIR, Settings, folder_problem

_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


class PreflightError(Exception):
    """The environment cannot support the command; the message names the path and the fix."""


def writable_folder(path: Path, what: str, fix: str) -> None:
    """Create `path` if needed and prove a file can be written in it."""
    problem = folder_problem(path)
    if problem:
        raise PreflightError(f"{what} {path} {problem}; {fix}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".ballast-probe-", dir=path)
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise PreflightError(f"{what} {path} is not writable ({exc.strerror}); {fix}") from None


def home(settings: Settings) -> None:
    """BALLAST_HOME and its folders exist and take files."""
    fix = "set BALLAST_HOME to a folder you can write, or fix its permissions"
    writable_folder(settings.home, "BALLAST_HOME", fix)
    try:
        settings.ensure_dirs()
    except OSError as exc:
        raise PreflightError(f"cannot create {exc.filename} under BALLAST_HOME ({exc.strerror}); {fix}") from None


def landing(settings: Settings) -> None:
    """The landing folder exists (a run reads it; creating an empty one would hide a mistyped path)."""
    if not settings.landing_dir.is_dir():
        raise PreflightError(
            f"the landing folder {settings.landing_dir} does not exist; put the transaction files there, or point"
            " BALLAST_LANDING_DIR (or `ballast run --landing`) at the folder that holds them"
        )


def duckdb_problem(path: Path, exc: duckdb.Error) -> str:
    """One line for a DuckDB error on the warehouse: in use by another process, or damaged."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "Could not set lock" in first:
        holder = _LOCK_HOLDER.search(first)
        who = f"process {holder.group(1)}" if holder else "another process"
        return (
            f"the warehouse {path} is in use by {who} (a running `ballast run` or `dagster dev` step);"
            " wait for it to finish, or stop it, and try again"
        )
    return (
        f"the warehouse {path} cannot be opened ({first}); it is damaged: move it aside"
        f" (mv {path} {path}.damaged, and its .wal file if any) and run `ballast run`"
        " to rebuild it from the landing files"
    )


def warehouse(settings: Settings, allow_locked: bool = False) -> None:
    """Open the warehouse read-only and close it, if it exists; a lock is fine when the caller waits its turn."""
    path = settings.warehouse_path
    if not path.exists():
        return
    if not path.is_file():
        raise PreflightError(f"the warehouse {path} is not a file; move it aside and run `ballast run` to rebuild it")
    try:
        con = duckdb.connect(str(path), read_only=True)
        try:
            con.execute("select count(*) from duckdb_tables()").fetchall()
        finally:
            con.close()
    except duckdb.Error as exc:
        if allow_locked and "Could not set lock" in str(exc):
            return
        raise PreflightError(duckdb_problem(path, exc)) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or type(exc).__name__
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark else problem


def contracts(settings: Settings) -> None:
    """Every contract file parses and lists its checks (the asset graph is built from them)."""
    from ballast.contracts import ContractError, contract_checks

    fix = f"fix it, or restore it from {CONTRACTS_DIR}"
    for shipped in sorted(CONTRACTS_DIR.glob("*.yml")):
        path = settings.contracts_dir / shipped.name
        try:
            contract_checks(path)
        except yaml.YAMLError as exc:
            raise PreflightError(f"contract {path} is not valid YAML ({_yaml_problem(exc)}); {fix}") from None
        except ContractError as exc:
            raise PreflightError(f"contract {path} cannot be used ({exc}); {fix}") from None
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise PreflightError(
                f"contract {path} is not a Soda contract ({type(exc).__name__}: {exc}); {fix}"
            ) from None
        except OSError as exc:
            raise PreflightError(f"contract {path} cannot be read ({exc.strerror}); {fix}") from None


# The Dagster instance's index databases (SQLite storage); per-run event logs are read only when shown.
_INSTANCE_DATABASES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")


def dagster_instance(settings: Settings) -> None:
    """The Dagster instance's SQLite databases under BALLAST_HOME open, if they exist."""
    for relative in _INSTANCE_DATABASES:
        path = settings.dagster_home / relative
        if not path.exists():
            continue
        try:
            con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                con.execute("select count(*) from sqlite_master").fetchall()
            finally:
                con.close()
        except sqlite3.Error as exc:
            raise PreflightError(
                f"the Dagster instance database {path} is damaged ({exc}); move {settings.dagster_home} aside"
                " to start a new run history (the warehouse, lake and model registry are kept)"
            ) from None
