"""Reading the three landing formats: CSV (RFC 4180), gzip-compressed CSV and Parquet.

Everything here decides whether a file can be read as a whole and builds the DuckDB
query that reads it; rows never pass through Python. A file that cannot be used raises
FileRejected with a reason code and a detail a person can act on.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ballast.raw.tables import CONTRACT_COLUMNS

# One CSV field after its comma (the record gets a leading comma): a quoted value (with
# "" for a quote; it may hold line breaks) or an unquoted value without quotes. Each
# match consumes its comma, so empty fields are found too.
FIELD_RE = r',("(?:[^"]|"")*"|[^,"]*)'
_BLOCK = 1 << 20
_MAX_HEADER_BYTES = 1 << 20
LF, CR = "\n", "\r"


class FileRejected(Exception):
    """A landing file cannot be loaded as a whole."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TextScan:
    """What one pass over a CSV file's (decompressed) bytes found."""

    size: int
    problem: FileRejected | None
    eol: str
    # The first line up to its LF when the first block holds one, and whether a quote
    # occurs anywhere: what decides if the file can join a bulk load (landing_bulk.py).
    head: bytes | None = None
    quoted: bool = True


class _TextChecker:
    """Checks blocks of CSV bytes as they stream by: UTF-8, NUL bytes, line endings, quotes."""

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        self.problem: FileRejected | None = None
        self.size = 0
        self.has_lf = self.has_cr = self.has_quote = False
        self.head: bytes | None = None

    def feed(self, block: bytes) -> None:
        if self.size == 0 and (end := block.find(b"\n")) >= 0:
            self.head = block[: end + 1]
        if self.problem is None:
            try:
                self.decoder.decode(block)
            except UnicodeDecodeError as exc:
                self.problem = FileRejected("not_utf8", f"bytes at offset {self.size + exc.start} are not UTF-8")
        if self.problem is None and b"\x00" in block:
            offset = self.size + block.index(b"\x00")
            self.problem = FileRejected("nul_bytes", f"a NUL byte at offset {offset} (a binary or UTF-16 file?)")
        self.has_lf = self.has_lf or b"\n" in block
        self.has_cr = self.has_cr or b"\r" in block
        self.has_quote = self.has_quote or b'"' in block
        self.size += len(block)

    def result(self) -> TextScan:
        if self.problem is None:
            try:
                self.decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.problem = FileRejected("not_utf8", "the file ends inside a UTF-8 character")
        # Files with only CR line breaks (classic Mac OS) are split on CR.
        eol = CR if self.has_cr and not self.has_lf else LF
        return TextScan(self.size, self.problem, eol, self.head, self.has_quote)


def file_hash(path: Path) -> str:
    """SHA-256 of the file as delivered (for gzip: of the compressed bytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def scan_csv(path: Path) -> tuple[str, TextScan]:
    """The file's SHA-256 and its text checks, in one read."""
    digest = hashlib.sha256()
    checker = _TextChecker()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
            checker.feed(block)
    return digest.hexdigest(), checker.result()


def gunzip(path: Path, out: Path, max_bytes: int) -> TextScan:
    """Decompress a gzip file into `out`, streamed, checking the text as it goes."""
    checker = _TextChecker()
    try:
        with gzip.open(path, "rb") as source, out.open("wb") as target:
            for block in iter(lambda: source.read(_BLOCK), b""):
                checker.feed(block)
                if checker.size > max_bytes:
                    raise FileRejected("too_large", f"more than the limit of {max_bytes} bytes once decompressed")
                target.write(block)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FileRejected("unreadable", f"not a complete gzip file ({exc or 'it ends early'})") from None
    return checker.result()


def csv_header(path: Path, eol: str) -> list[str]:
    """The header's column names, trimmed and lower-cased, from the file's first line."""
    with path.open("rb") as handle:
        first = handle.read(_MAX_HEADER_BYTES)
    return header_names(first, eol)


def header_names(first: bytes, eol: str) -> list[str]:
    """The header's column names from the file's first bytes (at most its first MiB)."""
    end = first.find(eol.encode())
    if end < 0 and len(first) == _MAX_HEADER_BYTES:
        raise FileRejected("malformed_header", f"no line break in the first {_MAX_HEADER_BYTES} bytes")
    line = first[: end if end >= 0 else len(first)].decode("utf-8-sig")
    if eol == LF and line.endswith(CR):
        line = line[:-1]
    if line.count('"') % 2:
        raise FileRejected("malformed_header", "the header line has an unterminated quote")
    try:
        names = next(csv.reader([line], strict=True), [])
    except csv.Error as exc:
        raise FileRejected("malformed_header", f"the header line does not parse as CSV ({exc})") from None
    return [name.strip().lower() for name in names]


def check_duplicates(columns: list[str]) -> None:
    seen: set[str] = set()
    twice = sorted({c for c in columns if c and (c in seen or seen.add(c))})
    if twice:
        raise FileRejected("duplicate_columns", f"column(s) named more than once: {', '.join(twice)}")


def _unsupported(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (
        pa.types.is_nested(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_fixed_size_binary(t)
    )


def parquet_columns(path: Path) -> dict[str, str]:
    """Contract name -> column name as written, from the footer only; rejects what cannot become text as received."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise FileRejected("unreadable", f"not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    columns = [name.strip().lower() for name in schema.names]
    check_duplicates(columns)
    bad = [
        f"{field.name} ({field.type})"
        for field, name in zip(schema, columns, strict=True)
        if name in CONTRACT_COLUMNS and _unsupported(field.type)
    ]
    if bad:
        raise FileRejected("unsupported_type", f"contract column(s) of a type that has no text form: {', '.join(bad)}")
    return dict(zip(columns, schema.names, strict=True))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def parquet_select(columns: dict[str, str], types: dict[str, str]) -> str:
    """One raw row per Parquet row; an instant with a zone becomes its UTC text, whatever the session's TimeZone."""

    def text(c: str) -> str:
        if c not in columns:
            return "cast(null as varchar)"
        ident = _quote_ident(columns[c])
        if types[columns[c]] == "TIMESTAMP WITH TIME ZONE":
            return f"replace(cast(timezone('UTC', {ident}) as varchar), ' ', 'T') || 'Z'"
        # DuckDB writes floats as their shortest round-trip decimal (0.1, 12.345; a
        # float32 12.34 as 12.34), so the clean layer judges what the provider wrote.
        return f"cast({ident} as varchar)"

    values = ", ".join(text(c) for c in CONTRACT_COLUMNS)
    return f"""
        select {values}, $event_date, $name, $hash, file_row_number + 1, $load_id, null, $extra
        from read_parquet($path, file_row_number = true)
    """


def _unquote(field: str) -> str:
    return f"""case when {field} like '"%"' then replace(substr({field}, 2, length({field}) - 2), '""', '"') else {field} end"""


def _fields(text: str) -> str:
    return f"regexp_extract_all(',' || {text}, $field_re, 1)"


def _well_formed(text: str, width: int) -> str:
    # Every character is in a field or is one of the separating commas: nothing was skipped.
    return f"""len(fields) = {width}
            and length({text}) = list_sum(list_transform(fields, lambda f: length(f))) + len(fields) - 1"""


# Only the record terminator's CR goes; a CR inside a quoted field is part of the value.
_STRIP_CR = "case when $strip_cr and suffix({0}, chr(13)) then left({0}, -1) else {0} end"


def csv_select(columns: list[str]) -> str:
    """One raw row per CSV record (RFC 4180), numbered by the line it starts on.

    A record is a run of lines whose quotes balance: a line starts a record when the
    quotes before it are balanced. A multi-line record that does not parse (wrong field
    count, or still open at the end of the file) is taken line by line instead, so a
    stray quote costs its own line, not every line after it.
    """
    values = ", ".join(
        f"case when well_formed then {_unquote(f'fields[{columns.index(c) + 1}]')} end"
        if c in columns
        else "cast(null as varchar)"
        for c in CONTRACT_COLUMNS
    )
    return f"""
        with {_CSV_RECORDS},
        {_csv_checked(len(columns))}
        select
            {values},
            $event_date, $name, $hash, line_number, $load_id,
            case when well_formed then null else text end,
            $extra
        from checked
        where text <> ''
    """


# The file's lines, each marked as starting a record or not: one-line records in
# `singles`, the lines of multi-line records in `grouped` and joined in `joined`.
_CSV_RECORDS = f"""
        physical as (
            -- Two unnests in one select list advance together. (A lateral `unnest(...) with
            -- ordinality` took time quadratic in the file's lines: 1.7 s for 5,000 lines.)
            select unnest(l) as line, unnest(range(1, len(l) + 1)) as n
            from (select string_split(content, $eol) as l from read_text($path))
        ),
        body as (
            select n, line, length(line) - length(replace(line, '"', '')) as quotes
            from physical
            where n > 1
        ),
        marked as materialized (
            -- A line starts a record when the quotes before it balance; most records are one line.
            select *, coalesce(lead(starts) over (order by n), true) as next_starts
            from (select *, (sum(quotes) over (order by n) - quotes) % 2 = 0 as starts from body)
        ),
        singles as (
            select n as line_number, {_STRIP_CR.format("line")} as text from marked where starts and next_starts
        ),
        grouped as (
            select n, line, quotes, sum(starts::int) over (order by n) as record
            from marked
            where not (starts and next_starts)
        ),
        joined as (
            select
                record, min(n) as line_number, sum(quotes) % 2 = 1 as open_at_end,
                string_agg(line, $eol order by n) as joined
            from grouped
            group by record
        )"""


def _csv_checked(width: int) -> str:
    """Every record split into fields in `checked`; a multi-line record that does not parse, line by line."""
    return f"""
        -- (Each step in its own select: DuckDB would evaluate an alias's expression again
        -- wherever the same select list refers to it, the regular expression included.)
        multi_split as (select *, {_fields("text")} as fields from (select *, {_STRIP_CR.format("joined")} as text from joined)),
        multi as materialized (
            select *, open_at_end or not well_formed as retake
            from (select *, {_well_formed("text", width)} as well_formed from multi_split)
        ),
        lines as (
            select line_number, text from singles
            union all
            select n, {_STRIP_CR.format("line")} from grouped where record in (select record from multi where retake)
        ),
        checked as (
            select line_number, text, fields, {_well_formed("text", width)} as well_formed
            from (select *, {_fields("text")} as fields from lines)
            union all
            select line_number, text, fields, well_formed from multi where not retake
        )"""


def csv_bulk_select(columns: list[str]) -> str:
    """One raw row per line of many CSV files that share a header and hold no quote, LF line breaks.

    Without quotes a record is one line and its fields are the text between commas, so
    this gives the rows `csv_select` gives each file on its own (CR before the LF
    dropped, blank lines skipped, a line of the wrong width kept in `raw_line`), with
    a plain split instead of a regular expression, over the whole list in one scan.
    """
    values = ", ".join(
        f"case when well_formed then fields[{columns.index(c) + 1}] end" if c in columns else "cast(null as varchar)"
        for c in CONTRACT_COLUMNS
    )
    return f"""
        with files as (
            select unnest($paths::varchar[]) as path, unnest($names::varchar[]) as name,
                unnest($hashes::varchar[]) as hash, unnest($dates::date[]) as event_date
        ),
        physical as (
            select path, unnest(l) as line, unnest(range(1, len(l) + 1)) as n
            from (select filename as path, string_split(content, chr(10)) as l from read_text($paths))
        ),
        lines as (
            select path, n, text
            from (select path, n, {_STRIP_CR.format("line")} as text from physical where n > 1)
            where text <> ''
        ),
        checked as (
            select *, len(fields) = {len(columns)} as well_formed
            from (select *, string_split(text, ',') as fields from lines)
        )
        select
            {values},
            files.event_date, files.name, files.hash, n, $load_id,
            case when well_formed then null else text end,
            $extra
        from checked join files using (path)
    """
