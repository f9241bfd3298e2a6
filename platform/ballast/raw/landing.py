"""Finding landing files and loading them as-is into the warehouse's raw layer.

A landing file belongs to the event date in its name (`transactions_2025-01-31.csv`,
`2025-01-31_store.parquet`) or in the name of a folder that holds it
(`2025-01-31/part-1.csv`). Rows are kept as text exactly as received; typing and
validation happen in the clean layer, where a rejected row keeps a reason.

Every entry under the landing folder is accounted for. One that belongs to no
partition (no date or an impossible one, a date after today, a format Ballast does not
read, something that is not a readable regular file) is recorded in raw.rejected_files
without an event date on every raw run, and its record goes when the entry does.
Operating-system debris and names starting with `_` or `.` (the Hadoop/Spark
convention: `_SUCCESS`, `.crc`, the generator's `_manifest.json`) are listed in
raw.ignored_files. A dated file that cannot be used as a whole (empty, not UTF-8, a
required column missing, ...) is recorded under its date and loads nothing. Inside a
readable CSV file every record is one raw row; one whose fields cannot be parsed is
kept with its text in `raw_line`, so the clean layer quarantines it as
`malformed_line` and the records always add up.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ballast.common.columns import create_table_sql
from ballast.raw.landing_formats import (
    FIELD_RE,
    LF,
    FileRejected,
    TextScan,
    check_duplicates,
    csv_header,
    csv_select,
    file_hash,
    gunzip,
    parquet_columns,
    parquet_select,
    scan_csv,
)
from ballast.raw.tables import (
    CONTRACT_COLUMNS,
    RAW_IGNORED_FILES_COLUMNS,
    RAW_IGNORED_FILES_TABLE,
    RAW_LAYER,
    RAW_REJECTED_FILES_COLUMNS,
    RAW_REJECTED_FILES_TABLE,
    RAW_TRANSACTIONS_COLUMNS,
    RAW_TRANSACTIONS_TABLE,
    REQUIRED_COLUMNS,
)
from ballast.settings import Settings

FORMATS = {".csv": "csv", ".parquet": "parquet"}
GZIP = ".gz"
SUPPORTED_FORMATS = ".csv, .csv.gz or .parquet"
# Names that file managers, office suites and archivers leave behind (lower case).
OS_DEBRIS_NAMES = frozenset({".ds_store", "thumbs.db", "ehthumbs.db", "desktop.ini", "icon\r"})
OS_DEBRIS_PREFIXES = ("._", "~$")
HIDDEN_PREFIXES = ("_", ".")
_DATE_IN_NAME = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f\\]")

# The raw tables as raw/tables.py declares them; a statement that changes an existing home follows its create.
RAW_DDL = ";\n".join(
    (
        f"create schema if not exists {RAW_LAYER}",
        create_table_sql(RAW_TRANSACTIONS_TABLE, RAW_TRANSACTIONS_COLUMNS),
        create_table_sql(RAW_REJECTED_FILES_TABLE, RAW_REJECTED_FILES_COLUMNS),
        # Files that belong to no date are recorded without one (homes made before allowed it).
        f"alter table {RAW_REJECTED_FILES_TABLE} alter column event_date drop not null",
        create_table_sql(RAW_IGNORED_FILES_TABLE, RAW_IGNORED_FILES_COLUMNS),
    )
)


class LandingError(Exception):
    """The landing folder cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class Limits:
    """Beyond these a landing file is rejected; the defaults are the settings' (BALLAST_MAX_FILE_BYTES, BALLAST_MAX_COLUMNS)."""

    max_file_bytes: int = Settings.max_file_bytes
    max_columns: int = Settings.max_columns


@dataclass(frozen=True)
class LandingFile:
    path: Path
    name: str
    event_date: dt.date
    fmt: str
    gzip: bool = False


@dataclass(frozen=True)
class Unplaced:
    """A landing entry that belongs to no partition: rejected or ignored, with a reason."""

    name: str
    reason: str
    detail: str


@dataclass(frozen=True)
class Survey:
    """Every entry under the landing folder, sorted by name: loadable, rejected or ignored."""

    files: list[LandingFile] = field(default_factory=list)
    rejected: list[Unplaced] = field(default_factory=list)
    ignored: list[Unplaced] = field(default_factory=list)


@dataclass(frozen=True)
class FileLoad:
    name: str
    rows: int
    skipped: bool
    malformed: int = 0
    extra_columns: tuple[str, ...] = ()
    rejected: str | None = None
    detail: str = ""
    # Loaded with other files in one statement (landing_bulk.py), not parsed on its own.
    bulk: bool = False


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def display_name(path: Path, landing_dir: Path) -> str:
    """The path under the landing folder, as text that can be stored (bytes that are not UTF-8 as \\x..)."""
    relative = path.relative_to(landing_dir).as_posix()
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


IGNORED_DETAILS = {
    "os_debris": "left by a file manager or office suite, not data",
    "hidden_name": "a name starting with _ or . marks a temporary, marker or metadata file (Hadoop/Spark convention)",
}


def _ignored_reason(name: str) -> str | None:
    lower = name.lower()
    if lower in OS_DEBRIS_NAMES or lower.startswith(OS_DEBRIS_PREFIXES):
        return "os_debris"
    if name.startswith(HIDDEN_PREFIXES):
        return "hidden_name"
    return None


def _entry_kind(entry: os.DirEntry) -> tuple[str, str]:
    """("folder" | "file" | "unreadable", detail), without opening anything (a FIFO would block)."""
    try:
        if entry.is_symlink():
            try:
                mode = os.stat(entry.path).st_mode
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    return "unreadable", "symlink loop"
                if exc.errno == errno.ENOENT:
                    return "unreadable", "broken symlink: its target does not exist"
                return "unreadable", f"symlink cannot be followed: {exc.strerror}"
            if stat.S_ISDIR(mode):
                return "unreadable", "symlink to a folder (folders behind symlinks are not followed)"
        else:
            mode = entry.stat(follow_symlinks=False).st_mode
            if stat.S_ISDIR(mode):
                return "folder", ""
    except OSError as exc:
        return "unreadable", f"cannot be inspected: {exc.strerror}"
    if stat.S_ISREG(mode):
        return "file", ""
    kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return "unreadable", f"{kind}, not a regular file (never opened)"


def _format(name: str) -> tuple[str, bool] | None:
    lower = name.lower()
    gzipped = lower.endswith(GZIP)
    suffix = Path(lower[: -len(GZIP)] if gzipped else lower).suffix
    fmt = FORMATS.get(suffix)
    if fmt is None or (gzipped and fmt != "csv"):
        return None
    return fmt, gzipped


def _format_detail(name: str) -> str:
    suffixes = "".join(Path(name).suffixes[-2:]) if name.lower().endswith(GZIP) else Path(name).suffix
    return f"{suffixes or 'no extension'}: not a landing format (use {SUPPORTED_FORMATS})"


def _event_date(name: str, today: dt.date) -> tuple[dt.date | None, str, str]:
    """The one event date the path names, or ("", reason, detail) for why there is none."""
    found = sorted(set(_DATE_IN_NAME.findall(name)))
    if not found:
        return None, "no_date_in_name", "no YYYY-MM-DD date in the file or folder names"
    dates = []
    for text in found:
        try:
            dates.append(dt.date.fromisoformat(text))
        except ValueError:
            return None, "invalid_date", f"{text} is not a calendar date"
    if len(dates) > 1:
        return None, "conflicting_dates", f"the path names more than one date: {', '.join(found)}"
    if dates[0] > today:
        return None, "future_date", f"{dates[0]} is after today (UTC)"
    return dates[0], "", ""


def survey(landing_dir: Path, today: dt.date | None = None, start_date: dt.date | None = None) -> Survey:
    """Every entry under the landing folder: the files to load by date, and what is rejected or ignored, with why.

    Symlinks to files are listed as files (a symlink out of the landing folder is
    rejected when its date loads); folders behind symlinks are not followed.
    """
    if not landing_dir.is_dir():
        raise LandingError(f"landing folder {landing_dir} does not exist or is not a folder")
    today = today or utc_today()
    result = Survey()
    folders = [landing_dir]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if folder == landing_dir:
                raise LandingError(f"landing folder {landing_dir} cannot be read: {exc.strerror}") from None
            result.rejected.append(
                Unplaced(
                    display_name(folder, landing_dir) + "/", "unreadable", f"folder cannot be listed: {exc.strerror}"
                )
            )
            continue
        for entry in entries:
            _classify(entry, landing_dir, today, start_date, result, folders)
    for found in (result.files, result.rejected, result.ignored):
        found.sort(key=lambda f: f.name)
    return result


def _classify(
    entry: os.DirEntry,
    landing_dir: Path,
    today: dt.date,
    start_date: dt.date | None,
    result: Survey,
    folders: list[Path],
) -> None:
    path = Path(entry.path)
    name = display_name(path, landing_dir)
    ignored = _ignored_reason(entry.name)
    kind, detail = _entry_kind(entry)
    if ignored:
        # A hidden folder (`.git/`, `_temporary/`) is listed once, not walked.
        folder = kind == "folder"
        detail = IGNORED_DETAILS[ignored] + ("; the folder is not read" if folder else "")
        result.ignored.append(Unplaced(name + "/" * folder, ignored, detail))
    elif kind == "folder":
        folders.append(path)
    elif kind == "unreadable":
        result.rejected.append(Unplaced(name, "unreadable", detail))
    elif (fmt := _format(entry.name)) is None:
        result.rejected.append(Unplaced(name, "unsupported_format", _format_detail(entry.name)))
    else:
        event_date, reason, detail = _event_date(name, today)
        if event_date is None:
            result.rejected.append(Unplaced(name, reason, detail))
        elif start_date is not None and event_date < start_date:
            result.ignored.append(
                Unplaced(name, "before_start_date", f"{event_date} is before BALLAST_START_DATE={start_date}")
            )
        else:
            result.files.append(LandingFile(path, name, event_date, fmt[0], gzip=fmt[1]))


def discover(landing_dir: Path, today: dt.date | None = None) -> list[LandingFile]:
    """The loadable landing files (a landing format, one valid date up to today), sorted by name."""
    return survey(landing_dir, today).files


def files_by_date(landing_dir: Path, today: dt.date | None = None) -> dict[dt.date, list[LandingFile]]:
    return group_by_date(discover(landing_dir, today))


def group_by_date(files: list[LandingFile]) -> dict[dt.date, list[LandingFile]]:
    grouped: dict[dt.date, list[LandingFile]] = {}
    for f in files:
        grouped.setdefault(f.event_date, []).append(f)
    return grouped


@dataclass(frozen=True)
class Plan:
    """The days a run covers: from the first to the last loadable file's date (today at the latest)."""

    start: dt.date
    end: dt.date
    notes: tuple[str, ...]


def _counts(entries: list[Unplaced]) -> str:
    counts = Counter(e.reason for e in entries)
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def plan(landing_dir: Path, start_date: dt.date, today: dt.date | None = None) -> Plan:
    """The partitions a run materializes for the landing folder, with one-line notes on files it does not load.

    Today's partition exists (the day's files so far load now, and again when a later
    delivery changes them); files dated later are rejected, so one of them cannot stretch
    a run.
    """
    today = today or utc_today()
    found = survey(landing_dir, today, start_date)
    early = [e for e in found.ignored if e.reason == "before_start_date"]
    days = [f.event_date for f in found.files]
    notes = []
    if found.rejected:
        notes.append(
            f"note: {_plural(len(found.rejected), 'landing file')} not loaded ({_counts(found.rejected)}); see raw/rejected_files"
        )
    if early:
        notes.append(f"note: {len(early)} landing file(s) dated before BALLAST_START_DATE={start_date} are not loaded")
    if not days:
        if early:
            raise LandingError(
                f"every landing file is dated before BALLAST_START_DATE={start_date}; set it to the first event date"
            )
        detail = f" ({len(found.rejected)} not loaded: {_counts(found.rejected)})" if found.rejected else ""
        raise LandingError(f"no landing files to load under {landing_dir}{detail}")
    return Plan(min(days), max(days), tuple(notes))


def _check_path(f: LandingFile, landing_dir: Path) -> None:
    try:
        str(f.path).encode("utf-8")
    except UnicodeEncodeError:
        raise FileRejected("unsafe_path", "the file name has bytes that are not UTF-8") from None
    if _UNSAFE_NAME.search(f.name):
        raise FileRejected("unsafe_path", "the file name contains a control character or a backslash")
    if f.path.is_symlink():
        target = f.path.resolve()
        if not target.is_relative_to(landing_dir.resolve()):
            raise FileRejected("unsafe_path", "symlink pointing outside the landing folder")
        if not target.is_file():
            raise FileRejected("unsafe_path", "symlink to something that is not a regular file")


def _check_size(size: int, limits: Limits, what: str = "") -> None:
    if size == 0:
        raise FileRejected("empty_file", f"the file has 0 bytes{what}")
    if size > limits.max_file_bytes:
        raise FileRejected("too_large", f"{size} bytes{what}, more than the limit of {limits.max_file_bytes}")


def check_columns(columns: list[str], limits: Limits) -> tuple[str, ...]:
    if len(columns) > limits.max_columns:
        raise FileRejected("too_many_columns", f"{len(columns)} columns, more than the limit of {limits.max_columns}")
    check_duplicates(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise FileRejected("missing_columns", f"required column(s) missing: {', '.join(missing)}")
    return tuple(c or f"(unnamed column {i})" for i, c in enumerate(columns, 1) if c not in CONTRACT_COLUMNS)


def _csv_query(path: Path, text: TextScan, limits: Limits, params: dict) -> tuple[str, tuple[str, ...]]:
    if text.problem:
        raise text.problem
    columns = csv_header(path, text.eol)
    extra = check_columns(columns, limits)
    params.update(path=str(path), field_re=FIELD_RE, eol=text.eol, strip_cr=text.eol == LF)
    return csv_select(columns), extra


def _parquet_query(
    con: duckdb.DuckDBPyConnection, path: Path, limits: Limits, params: dict
) -> tuple[str, tuple[str, ...]]:
    columns = parquet_columns(path)
    extra = check_columns(list(columns), limits)
    try:
        types = dict(
            con.execute(
                "select column_name, column_type from (describe select * from read_parquet(?))", [str(path)]
            ).fetchall()
        )
    except duckdb.Error as exc:
        raise FileRejected("unreadable", str(exc).splitlines()[0]) from None
    params["path"] = str(path)
    return parquet_select(columns, types), extra


def load_file(
    con: duckdb.DuckDBPyConnection,
    f: LandingFile,
    load_id: str,
    landing_dir: Path,
    limits: Limits = Limits(),
    scratch_dir: Path | None = None,
) -> FileLoad:
    """Load one landing file into raw.transactions, or record why it cannot be loaded.

    Loading is keyed by file name and content hash: an identical re-delivery is a no-op,
    a corrected file replaces the rows its earlier version loaded. A file is loaded in
    one transaction, so one that fails half-way leaves nothing behind; a rejected file
    keeps the rows of an earlier, readable version of it. A gzip file is hashed as
    delivered and decompressed, streamed, into `scratch_dir` (default: the system's
    temporary folder) for the load.
    """
    scanned = scan(f, landing_dir)
    if isinstance(scanned, FileRejected):
        return reject(con, f, "", load_id, scanned)
    digest, text = scanned
    earlier = earlier_outcomes(con, {f.name: digest}).get(f.name)
    if earlier is not None:
        return earlier
    return load_scanned(con, f, digest, text, load_id, limits, scratch_dir)


def load_scanned(
    con: duckdb.DuckDBPyConnection,
    f: LandingFile,
    digest: str,
    text: TextScan | None,
    load_id: str,
    limits: Limits = Limits(),
    scratch_dir: Path | None = None,
) -> FileLoad:
    """Load one landing file already hashed (and for plain CSV scanned) by `scan`, with no earlier load of that hash."""
    params = {"event_date": f.event_date, "name": f.name, "hash": digest, "load_id": load_id}
    scratch = None
    try:
        _check_size(f.path.stat().st_size, limits)
        if f.gzip:
            scratch = (scratch_dir or Path(tempfile.gettempdir())) / f"ballast-{uuid.uuid4().hex}.csv"
            scratch.parent.mkdir(parents=True, exist_ok=True)
            text = gunzip(f.path, scratch, limits.max_file_bytes)
            _check_size(text.size, limits, " once decompressed")
        if f.fmt == "csv":
            select, extra = _csv_query(scratch or f.path, text, limits, params)
        else:
            select, extra = _parquet_query(con, f.path, limits, params)
        params["extra"] = ",".join(extra) or None
        rows, malformed = _insert(con, f, select, params)
    except FileRejected as rejected:
        return reject(con, f, digest, load_id, rejected)
    except duckdb.Error as exc:
        return reject(con, f, digest, load_id, FileRejected("unreadable", str(exc).splitlines()[0]))
    except OSError as exc:
        return reject(con, f, digest, load_id, FileRejected("unreadable", f"cannot be read: {exc.strerror}"))
    finally:
        if scratch is not None:
            scratch.unlink(missing_ok=True)
    return FileLoad(f.name, rows, skipped=False, malformed=malformed, extra_columns=extra)


def scan(f: LandingFile, landing_dir: Path) -> tuple[str, TextScan | None] | FileRejected:
    """The file's SHA-256, and for a plain CSV file its text checks from the same read; or why it cannot be read."""
    try:
        _check_path(f, landing_dir)
        if f.fmt == "csv" and not f.gzip:
            return scan_csv(f.path)
        return file_hash(f.path), None
    except FileRejected as rejected:
        return rejected
    except OSError as exc:
        return FileRejected("unreadable", f"cannot be read: {exc.strerror}")


def earlier_outcomes(con: duckdb.DuckDBPyConnection, digests: dict[str, str]) -> dict[str, FileLoad]:
    """By file name, the outcome of an earlier load of the very same file (name and hash): nothing to do again.

    A file whose rows are loaded is unchanged even if a record of it as rejected lingers.
    """
    seen = con.execute(
        f"""
        with now as (select unnest($names::varchar[]) as source_file, unnest($hashes::varchar[]) as file_hash)
        select source_file, min(reason), min(detail), bool_or(loaded) from (
            select source_file, null as reason, null as detail, true as loaded
            from (select distinct source_file, file_hash from {RAW_TRANSACTIONS_TABLE}
                  where source_file in (select source_file from now)) join now using (source_file, file_hash)
            union all
            select source_file, reason, detail, false
            from {RAW_REJECTED_FILES_TABLE} join now using (source_file, file_hash)
        )
        group by source_file
        """,
        {"names": list(digests), "hashes": list(digests.values())},
    ).fetchall()
    return {
        name: FileLoad(
            name, 0, skipped=True, rejected=None if loaded else reason, detail="" if loaded else detail or ""
        )
        for name, reason, detail, loaded in seen
    }


def _insert(con: duckdb.DuckDBPyConnection, f: LandingFile, select: str, params: dict) -> tuple[int, int]:
    con.execute("begin transaction")
    try:
        con.execute(f"delete from {RAW_TRANSACTIONS_TABLE} where source_file = ?", [f.name])
        con.execute(f"delete from {RAW_REJECTED_FILES_TABLE} where source_file = ?", [f.name])
        con.execute(f"insert into {RAW_TRANSACTIONS_TABLE} {select}", params)
        rows, malformed = con.execute(
            f"select count(*), count(raw_line) from {RAW_TRANSACTIONS_TABLE} where source_file = ?", [f.name]
        ).fetchall()[0]
        if rows == 0:
            raise FileRejected("header_only" if f.fmt == "csv" else "empty_file", "the file has no data rows")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return rows, malformed


def reject(
    con: duckdb.DuckDBPyConnection, f: LandingFile, digest: str, load_id: str, rejected: FileRejected
) -> FileLoad:
    recorded = con.execute(
        f"select 1 from {RAW_REJECTED_FILES_TABLE} where source_file = ? and file_hash = ? and reason = ? and event_date = ?",
        [f.name, digest, rejected.reason, f.event_date],
    ).fetchall()
    if recorded:
        return FileLoad(f.name, 0, skipped=True, rejected=rejected.reason, detail=rejected.detail)
    con.execute(f"delete from {RAW_REJECTED_FILES_TABLE} where source_file = ?", [f.name])
    con.execute(
        f"insert into {RAW_REJECTED_FILES_TABLE} values (?, ?, ?, ?, ?, ?)",
        [f.event_date, f.name, digest, rejected.reason, rejected.detail, load_id],
    )
    return FileLoad(f.name, 0, skipped=False, rejected=rejected.reason, detail=rejected.detail)


def record_unplaced(con: duckdb.DuckDBPyConnection, found: Survey, load_id: str) -> None:
    """Bring the records of entries that belong to no partition in line with the folder as it is now.

    An entry recorded before with the same reason and detail keeps its first record (and
    load id), so a re-run leaves the tables as they were; a record whose entry is gone,
    or now loads, is dropped.
    """
    for table, entries, scope, values in (
        (
            RAW_REJECTED_FILES_TABLE,
            found.rejected,
            "event_date is null",
            "null, source_file, '', reason, detail, $load_id",
        ),
        (RAW_IGNORED_FILES_TABLE, found.ignored, "true", "source_file, reason, detail, $load_id"),
    ):
        now = """(select unnest($names::varchar[]) as source_file, unnest($reasons::varchar[]) as reason,
                   unnest($details::varchar[]) as detail)"""
        same = "t.source_file = n.source_file and t.reason = n.reason and t.detail = n.detail"
        params = {
            "names": [e.name for e in entries],
            "reasons": [e.reason for e in entries],
            "details": [e.detail for e in entries],
        }
        con.execute(f"delete from {table} t where {scope} and not exists (select 1 from {now} n where {same})", params)
        con.execute(
            f"insert into {table} select {values} from {now} n"
            f" where not exists (select 1 from {table} t where {scope} and {same})",
            {**params, "load_id": load_id},
        )


def forget_vanished(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date, files: list[LandingFile]) -> None:
    """Drop the rejection records of the window's dated files that are no longer in the landing folder.

    Rows a file loaded stay after the file is removed (landing folders are often
    cleared once loaded); a record of a file that never loaded has nothing left to say.
    """
    con.execute(
        f"delete from {RAW_REJECTED_FILES_TABLE} where event_date between $start and $end"
        " and source_file not in (select unnest($names::varchar[]))",
        {"start": start, "end": end, "names": [f.name for f in files]},
    )


def clear_scratch(scratch_dir: Path) -> None:
    """Remove decompressed files a killed load left behind (raw loads run one at a time)."""
    shutil.rmtree(scratch_dir, ignore_errors=True)
