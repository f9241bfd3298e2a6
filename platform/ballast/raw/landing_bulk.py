"""Loading a window's landing files: the common ones together in one DuckDB statement, the rest one by one.

A file joins a bulk load when its one scan (the read that hashes it) shows plain UTF-8
CSV with LF line breaks, no quote anywhere and a header the contract accepts: then each
line is one record and a plain split gives exactly the rows the per-line parser gives
(`landing_formats.csv_bulk_select`). Files that share a header load in one transaction;
everything else (gzip, Parquet, quotes, CR-only line breaks, a header to reject, a
name DuckDB would read as a glob pattern) takes `landing.load_scanned`, as does any
batch whose statement fails. Either way a file is loaded whole or not at all, under the
same name, hash and line accounting.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ballast.raw.landing import (
    FileLoad,
    LandingFile,
    Limits,
    check_columns,
    earlier_outcomes,
    load_file,
    load_scanned,
    reject,
    scan,
)
from ballast.raw.landing_formats import LF, FileRejected, TextScan, csv_bulk_select, header_names
from ballast.raw.tables import RAW_REJECTED_FILES_TABLE, RAW_TRANSACTIONS_TABLE

# A batch reads at most this many bytes of files at once (a file larger than it loads alone).
BULK_BATCH_BYTES = 256 << 20
# Characters that make DuckDB's readers expand a path as a glob pattern.
_GLOB = re.compile(r"[*?\[\]{}]")


@dataclass
class WindowLoad:
    """The outcome of every file of a window, in the window's order, and why any bulk batch fell back."""

    loads: list[FileLoad]
    bulk_failures: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Scanned:
    file: LandingFile
    digest: str
    text: TextScan | None


def load_window(
    con: duckdb.DuckDBPyConnection,
    files: list[LandingFile],
    load_id: str,
    landing_dir: Path,
    limits: Limits,
    scratch_dir: Path | None = None,
    bulk: bool = True,
) -> WindowLoad:
    """Load the window's files into raw.transactions (or record why not), in bulk where a file allows it.

    With `bulk=False` every file takes the per-line parser, as `load_file` alone would.
    """
    if not bulk:
        return WindowLoad([load_file(con, f, load_id, landing_dir, limits, scratch_dir) for f in files])
    outcomes: dict[str, FileLoad] = {}
    pending: list[_Scanned] = []
    for f in files:
        scanned = scan(f, landing_dir)
        if isinstance(scanned, FileRejected):
            outcomes[f.name] = reject(con, f, "", load_id, scanned)
        else:
            pending.append(_Scanned(f, *scanned))
    outcomes |= earlier_outcomes(con, {s.file.name: s.digest for s in pending})
    pending = [s for s in pending if s.file.name not in outcomes]
    failures: list[str] = []
    for columns, batch in _batches(pending, limits):
        try:
            outcomes |= _load_batch(con, batch, columns, load_id, limits)
        except Exception as exc:  # any failure of a bulk statement: these files go one by one
            failures.append(f"{len(batch)} files from {batch[0].file.name}: {str(exc).splitlines()[0]}")
    for s in pending:
        if s.file.name not in outcomes:
            outcomes[s.file.name] = load_scanned(con, s.file, s.digest, s.text, load_id, limits, scratch_dir)
    return WindowLoad([outcomes[f.name] for f in files], failures)


def _bulk_columns(s: _Scanned, limits: Limits) -> tuple[str, ...] | None:
    """The header's columns when the file can join a bulk load, else None (it loads, or is rejected, on its own)."""
    text = s.text
    if text is None or text.problem or text.quoted or text.eol != LF or text.head is None:
        return None
    if not 0 < text.size <= limits.max_file_bytes or _GLOB.search(str(s.file.path)):
        return None
    try:
        columns = header_names(text.head, LF)
        check_columns(columns, limits)
    except FileRejected:
        return None
    return tuple(columns)


def _batches(pending: list[_Scanned], limits: Limits) -> list[tuple[tuple[str, ...], list[_Scanned]]]:
    """The files that can load in bulk, grouped by header and cut at BULK_BATCH_BYTES."""
    by_header: dict[tuple[str, ...], list[list[_Scanned]]] = {}
    filled: dict[tuple[str, ...], int] = {}
    for s in pending:
        columns = _bulk_columns(s, limits)
        if columns is None:
            continue
        batches = by_header.setdefault(columns, [[]])
        size = s.text.size if s.text else 0
        if batches[-1] and filled[columns] + size > BULK_BATCH_BYTES:
            batches.append([])
            filled[columns] = 0
        batches[-1].append(s)
        filled[columns] = filled.get(columns, 0) + size
    return [(columns, batch) for columns, batches in by_header.items() for batch in batches]


def _load_batch(
    con: duckdb.DuckDBPyConnection, batch: list[_Scanned], columns: tuple[str, ...], load_id: str, limits: Limits
) -> dict[str, FileLoad]:
    """Load files that share a header in one transaction: each replaces its earlier rows and rejection record.

    A file that turns out to have no data row stays out (rolled back, then the rest
    again): on its own it is rejected as header_only and keeps an earlier version's rows.
    """
    extra = check_columns(list(columns), limits)
    while batch:
        con.execute("begin transaction")
        try:
            counts = _insert_batch(con, batch, columns, extra, load_id)
            loaded = [s for s in batch if s.file.name in counts]
            con.execute("commit" if len(loaded) == len(batch) else "rollback")
        except BaseException:
            con.execute("rollback")
            raise
        if len(loaded) == len(batch):
            return {
                name: FileLoad(name, rows, skipped=False, malformed=malformed, extra_columns=extra, bulk=True)
                for name, (rows, malformed) in counts.items()
            }
        batch = loaded
    return {}


def _insert_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[_Scanned],
    columns: tuple[str, ...],
    extra: tuple[str, ...],
    load_id: str,
) -> dict[str, tuple[int, int]]:
    """Rows and malformed lines by file name, for the files of the batch that have data rows."""
    names = {"names": [s.file.name for s in batch]}
    for table in (RAW_TRANSACTIONS_TABLE, RAW_REJECTED_FILES_TABLE):
        con.execute(f"delete from {table} where source_file in (select unnest($names::varchar[]))", names)
    con.execute(
        f"insert into {RAW_TRANSACTIONS_TABLE} {csv_bulk_select(list(columns))}",
        {
            **names,
            "paths": [str(s.file.path) for s in batch],
            "hashes": [s.digest for s in batch],
            "dates": [s.file.event_date for s in batch],
            "load_id": load_id,
            "extra": ",".join(extra) or None,
            "strip_cr": True,
        },
    )
    counts = con.execute(
        f"select source_file, count(*), count(raw_line) from {RAW_TRANSACTIONS_TABLE}"
        " where source_file in (select unnest($names::varchar[])) group by source_file",
        names,
    ).fetchall()
    return {name: (rows, malformed) for name, rows, malformed in counts}
