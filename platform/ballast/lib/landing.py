"""Finding landing files and loading them as-is into the warehouse's raw layer.

A landing file belongs to the event date in its name (`transactions_2025-01-31.csv`,
`2025-01-31_store.parquet`) or in the name of the folder that holds it
(`2025-01-31/part-1.csv`). Rows are kept as text exactly as received; typing and
validation happen in the clean layer, where a rejected row keeps a reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

REQUIRED_COLUMNS = ("transaction_id", "customer_id", "merchant_id", "amount", "currency", "event_timestamp")
OPTIONAL_COLUMNS = ("channel", "country")
CONTRACT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
FORMATS = {".csv": "csv", ".parquet": "parquet"}
_DATE_IN_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})")

RAW_DDL = """
create schema if not exists raw;
create table if not exists raw.transactions (
    transaction_id varchar,
    customer_id varchar,
    merchant_id varchar,
    amount varchar,
    currency varchar,
    event_timestamp varchar,
    channel varchar,
    country varchar,
    event_date date not null,
    source_file varchar not null,
    file_hash varchar not null,
    line_number bigint not null,
    load_id varchar not null
);
"""


class LandingError(Exception):
    """A landing file or folder cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class LandingFile:
    path: Path
    name: str
    event_date: dt.date
    fmt: str


@dataclass(frozen=True)
class FileLoad:
    name: str
    rows: int
    skipped: bool


def _event_date(path: Path, landing_dir: Path) -> dt.date | None:
    for part in (path.name, *(p.name for p in path.relative_to(landing_dir).parents if p.name)):
        match = _DATE_IN_NAME.search(part)
        if match:
            try:
                return dt.date.fromisoformat(match.group(1))
            except ValueError:
                return None
    return None


def discover(landing_dir: Path) -> list[LandingFile]:
    """Every data file under the landing folder that names an event date, sorted by name."""
    if not landing_dir.is_dir():
        raise LandingError(f"landing folder {landing_dir} does not exist or is not a folder")
    files = []
    for path in sorted(landing_dir.rglob("*")):
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None or not path.is_file():
            continue
        event_date = _event_date(path, landing_dir)
        if event_date is not None:
            files.append(LandingFile(path, path.relative_to(landing_dir).as_posix(), event_date, fmt))
    return files


def files_by_date(landing_dir: Path) -> dict[dt.date, list[LandingFile]]:
    grouped: dict[dt.date, list[LandingFile]] = {}
    for f in discover(landing_dir):
        grouped.setdefault(f.event_date, []).append(f)
    return grouped


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _scan_sql(f: LandingFile) -> str:
    path = str(f.path).replace("'", "''")
    if f.fmt == "csv":
        return f"read_csv('{path}', header = true, all_varchar = true)"
    return f"read_parquet('{path}')"


def _columns(con: duckdb.DuckDBPyConnection, f: LandingFile) -> list[str]:
    try:
        return [row[0] for row in con.execute(f"describe select * from {_scan_sql(f)}").fetchall()]
    except duckdb.Error as exc:
        raise LandingError(f"landing file {f.name} cannot be read: {str(exc).splitlines()[0]}") from None


def load_file(con: duckdb.DuckDBPyConnection, f: LandingFile, load_id: str) -> FileLoad:
    """Load one landing file into raw.transactions, replacing earlier rows of the same file.

    Loading is keyed by file name and content hash: an identical re-delivery is a no-op,
    a corrected file replaces the rows its earlier version loaded. The file is loaded in
    one transaction, so a file that fails half-way leaves nothing behind.
    """
    file_hash = file_sha256(f.path)
    loaded = {row[0] for row in con.execute(
        "select distinct file_hash from raw.transactions where source_file = ?", [f.name]
    ).fetchall()}
    if loaded == {file_hash}:
        return FileLoad(f.name, 0, skipped=True)
    columns = _columns(con, f)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise LandingError(f"landing file {f.name} is missing required column(s): {', '.join(missing)}")
    values = ", ".join(
        f'cast("{c}" as varchar)' if c in columns else "cast(null as varchar)" for c in CONTRACT_COLUMNS
    )
    # CSV line 1 is the header; a Parquet row's "line" is its 1-based row number.
    line = "ordinality + 1" if f.fmt == "csv" else "ordinality"
    con.execute("begin transaction")
    try:
        con.execute("delete from raw.transactions where source_file = ?", [f.name])
        con.execute(
            f"""
            insert into raw.transactions
            select {values}, ?::date, ?, ?, {line}, ?
            from {_scan_sql(f)} with ordinality
            """,
            [f.event_date, f.name, file_hash, load_id],
        )
        rows = con.execute("select count(*) from raw.transactions where source_file = ?", [f.name]).fetchone()[0]
        con.execute("commit")
    except duckdb.Error as exc:
        con.execute("rollback")
        raise LandingError(f"landing file {f.name} cannot be loaded: {str(exc).splitlines()[0]}") from None
    return FileLoad(f.name, rows, skipped=False)
