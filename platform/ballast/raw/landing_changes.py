"""Landing files against what the raw tables recorded for them: new, changed and removed file versions.

A file version is its name and the SHA-256 of its bytes, as the raw loader records
them in raw.transactions (loaded rows) and raw.rejected_files (files refused whole).
`ballast run` plans from these changes, and the landing sensor requests runs from them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import duckdb

from ballast.raw.landing import LandingFile
from ballast.raw.landing_formats import file_hash
from ballast.raw.tables import RAW_REJECTED_FILES_TABLE, RAW_TRANSACTIONS_TABLE
from ballast.settings import Settings

# A file that could not be read when it was recorded has no hash; it matches a file that still cannot be read.
UNREAD = ""

# (file, hash, event date if rejected else None): one recorded file version.
Recorded = tuple[str, str, dt.date | None]


@dataclass(frozen=True)
class FileChanges:
    """Landing files against the raw tables' record."""

    new: tuple[LandingFile, ...] = ()
    changed: tuple[LandingFile, ...] = ()
    # Removed files whose rows stay (landing folders are often cleared once loaded) and
    # removed files that were rejected, whose record goes when their date is refreshed.
    removed_loaded: tuple[str, ...] = ()
    removed_rejected: tuple[tuple[str, dt.date], ...] = ()

    def dates(self) -> set[dt.date]:
        return {f.event_date for f in (*self.new, *self.changed)} | {day for _, day in self.removed_rejected}


def digest(f: LandingFile) -> str:
    """The file's SHA-256, or UNREAD when it cannot be read now."""
    try:
        return file_hash(f.path)
    except OSError:
        return UNREAD


def file_changes(settings: Settings, files: list[LandingFile]) -> FileChanges:
    """New, changed and removed landing files against the raw tables' record (an empty warehouse: all new)."""
    return compare(files, recorded_files(settings), digest)


def compare(files: list[LandingFile], recorded: list[Recorded], digest_of: Callable[[LandingFile], str]) -> FileChanges:
    """New, changed and removed files, each present file's version given by `digest_of`."""
    known: dict[str, set[str]] = {}
    for name, file_digest, _ in recorded:
        known.setdefault(name, set()).add(file_digest)
    new, changed = [], []
    for f in files:
        if f.name not in known:
            new.append(f)
        elif digest_of(f) not in known[f.name]:
            changed.append(f)
    present = {f.name for f in files}
    gone = [(name, rejected_on) for name, _, rejected_on in recorded if name not in present]
    removed_loaded = sorted({name for name, rejected_on in gone if rejected_on is None})
    removed_rejected = sorted({(name, rejected_on) for name, rejected_on in gone if rejected_on is not None})
    return FileChanges(tuple(new), tuple(changed), tuple(removed_loaded), tuple(removed_rejected))


def recorded_files(settings: Settings) -> list[Recorded]:
    """Every dated file version the raw tables hold (none for a new home).

    Raises duckdb.IOException when another process holds the warehouse's write lock.
    """
    if not settings.warehouse_path.exists():
        return []
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select schema_name || '.' || table_name from duckdb_tables()").fetchall()}
        if RAW_TRANSACTIONS_TABLE not in tables or RAW_REJECTED_FILES_TABLE not in tables:
            return []
        # Distinct in DuckDB: one row per file version, not per transaction.
        return con.execute(
            f"select distinct source_file, file_hash, null::date from {RAW_TRANSACTIONS_TABLE}"
            f" union select source_file, file_hash, event_date from {RAW_REJECTED_FILES_TABLE}"
            " where event_date is not null"
        ).fetchall()
    finally:
        con.close()
