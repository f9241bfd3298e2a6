"""Raw layer: landing files loaded as-is into the warehouse, one daily partition per event date."""

import datetime as dt
from pathlib import Path

import dagster as dg
import duckdb
from tabulate import tabulate

from ballast.common import code_version
from ballast.common.metadata import LANDING_COLUMNS, NO_RETRY_REASON, table_metadata, warehouse_table_name
from ballast.common.naming import table_key
from ballast.common.partitions import partition_dates
from ballast.common.retries import LOCK_RETRY_NOTE
from ballast.quality import contract_checks
from ballast.raw import health, health_checks, landing, landing_bulk, landing_formats
from ballast.raw.landing import (
    RAW_DDL,
    LandingError,
    Limits,
    clear_scratch,
    forget_vanished,
    record_unplaced,
    survey,
)
from ballast.raw.landing_bulk import load_window
from ballast.raw.tables import (
    CONTRACT_COLUMNS,
    RAW_IGNORED_FILES_COLUMNS,
    RAW_IGNORED_FILES_TABLE,
    RAW_LAYER,
    RAW_REJECTED_FILES_COLUMNS,
    RAW_REJECTED_FILES_TABLE,
    RAW_TRANSACTIONS_COLUMNS,
    RAW_TRANSACTIONS_TABLE,
)
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

CODE_VERSION = code_version.of_sources(Path(__file__), landing, landing_bulk, landing_formats)
RAW_TRANSACTIONS = table_key(RAW_TRANSACTIONS_TABLE)
RAW_REJECTED_FILES = table_key(RAW_REJECTED_FILES_TABLE)
RAW_IGNORED_FILES = table_key(RAW_IGNORED_FILES_TABLE)
# Where gzip files are decompressed for loading, under BALLAST_HOME.
SCRATCH_DIR = Path("scratch") / "landing"
NO_REJECTED_FILES = "no_rejected_files"
# The most files a step's outcome table lists (the rest are counted).
MAX_LISTED_FILES = 50
NO_SCHEMA_DRIFT = "no_schema_drift"
REJECTED_NOT_LOADED = "rejected_files_loaded_nothing"
IGNORED_NOT_LOADED = "ignored_entries_loaded_nothing"


NO_RETRY = (
    "Reads the local landing folder into the local DuckDB warehouse: an unreadable file is rejected and recorded,"
    " not failed; a failure is a landing folder that cannot be read, a full disk or a damaged warehouse, which a"
    f" retry repeats at once; loads are idempotent by file hash, so the next run resumes. {LOCK_RETRY_NOTE}"
)

# The columns of raw.transactions that the loader makes: no landing column holds them.
LOADER_COLUMNS = tuple(c.name for c in RAW_TRANSACTIONS_COLUMNS if c.name not in CONTRACT_COLUMNS)
LANDING_LINEAGE = dg.MetadataValue.json({**{c: [c] for c in CONTRACT_COLUMNS}, **{c: [] for c in LOADER_COLUMNS}})

# Written by one multi-asset: the load also records the files it did not load.
RAW_SPECS = [
    dg.AssetSpec(
        key,
        description=description,
        group_name=RAW_LAYER,
        kinds={"duckdb"},
        code_version=CODE_VERSION,
        metadata={
            NO_RETRY_REASON: NO_RETRY,
            **table_metadata(warehouse_table_name(table), columns),
            **({LANDING_COLUMNS: LANDING_LINEAGE} if key == RAW_TRANSACTIONS else {}),
        },
    )
    for key, table, columns, description in (
        (
            RAW_TRANSACTIONS,
            RAW_TRANSACTIONS_TABLE,
            RAW_TRANSACTIONS_COLUMNS,
            "Landing files loaded as-is, one daily partition per event date, with the source file, hash, line and load id of every row.",
        ),
        (
            RAW_REJECTED_FILES,
            RAW_REJECTED_FILES_TABLE,
            RAW_REJECTED_FILES_COLUMNS,
            "Landing files that were not loaded, with the reason (no date in the name, unsupported format, empty, unreadable, not UTF-8, missing columns, ...).",
        ),
        (
            RAW_IGNORED_FILES,
            RAW_IGNORED_FILES_TABLE,
            RAW_IGNORED_FILES_COLUMNS,
            "Landing entries ignored by their name (operating-system debris, names starting with _ or .) or dated before the start date, listed so none disappears without a trace.",
        ),
    )
]
RAW_CHECK_SPECS = [
    dg.AssetCheckSpec(
        NO_REJECTED_FILES,
        asset=RAW_TRANSACTIONS,
        description="Every landing file of the partitions, and every file that belongs to no partition, was readable and loaded.",
    ),
    dg.AssetCheckSpec(
        NO_SCHEMA_DRIFT,
        asset=RAW_TRANSACTIONS,
        description="No landing file of the partitions has columns beyond the input contract.",
    ),
    dg.AssetCheckSpec(
        REJECTED_NOT_LOADED,
        asset=RAW_REJECTED_FILES,
        description="No row of raw.transactions comes from a rejected file as it was rejected (same name and hash):"
        " a rejected file is never half-loaded.",
    ),
    dg.AssetCheckSpec(
        IGNORED_NOT_LOADED,
        asset=RAW_IGNORED_FILES,
        description="No row of raw.transactions comes from a landing entry that is now ignored (WARN: e.g. rows"
        " loaded before BALLAST_START_DATE moved past their date).",
    ),
]


class RawLoadConfig(dg.Config):
    """Run config of the raw load (raw/transactions)."""

    per_line: bool = False
    """Parse every landing file on its own, line by line, instead of loading the window's plain CSV files in bulk (same rows; for diagnosis)."""


def _md(header: list[str], rows: list[list[object]]) -> str:
    return tabulate(rows, headers=header, tablefmt="github")


def _bounded_md(header: list[str], rows: list) -> str:
    """At most MAX_LISTED_FILES rows, then one line counting the rest (every row stays in the raw tables)."""
    shown = [list(r) for r in rows[:MAX_LISTED_FILES]]
    if len(rows) > MAX_LISTED_FILES:
        shown.append([f"... {len(rows) - MAX_LISTED_FILES} more", *([""] * (len(header) - 1))])
    return _md(header, shown)


def build_defs(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    limits = Limits(max_file_bytes=settings.max_file_bytes, max_columns=settings.max_columns)

    @dg.multi_asset(
        specs=RAW_SPECS,
        check_specs=[*RAW_CHECK_SPECS, *health_checks.check_specs(settings, RAW_TRANSACTIONS)],
        name="raw_transactions",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
    )
    def raw_transactions(context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource):
        start, end = partition_dates(context)
        try:
            found = survey(settings.landing_dir, start_date=settings.start_date)
        except LandingError as exc:
            raise dg.Failure(str(exc)) from None
        window = [f for f in found.files if start <= f.event_date <= end]
        scratch = settings.home / SCRATCH_DIR
        clear_scratch(scratch)
        with warehouse.connect() as con:
            con.execute(RAW_DDL)
            record_unplaced(con, found, load_id=context.run.run_id)
            forget_vanished(con, start, end, window)
            window_load = load_window(
                con,
                window,
                load_id=context.run.run_id,
                landing_dir=settings.landing_dir,
                limits=limits,
                scratch_dir=scratch,
                bulk=not config.per_line,
            )
            for failure in window_load.bulk_failures:
                context.log.warning(f"bulk load fell back to loading file by file: {failure}")
            loads = window_load.loads
            for f in loads:
                if f.rejected and not f.skipped:
                    context.log.warning(f"rejected landing file {f.name}: {f.rejected} ({f.detail})")
            lag = health.ingestion_lag(
                con, start, end, health_checks.load_times(context.instance, health.load_ids(con, start, end))
            )
            yield from _results(con, loads, start, end, health_checks.lag_metadata(lag))
            yield health_checks.missing_days_result(
                con, settings, RAW_TRANSACTIONS, sorted({f.event_date for f in found.files})
            )
            yield from health_checks.anomaly_results(con, settings, RAW_TRANSACTIONS, start, end, landing.utc_today())
        clear_scratch(scratch)

    return dg.Definitions(
        assets=[raw_transactions],
        asset_checks=[contract_checks(settings, "raw_transactions.yml", RAW_TRANSACTIONS)],
    )


def _results(con: duckdb.DuckDBPyConnection, loads: list[landing.FileLoad], start: dt.date, end: dt.date, lag: dict):
    """The window's materializations and checks, read back from the tables the load wrote."""
    yield _transactions_result(con, loads, start, end, lag)
    # Files that belong to no partition (event_date null) count against every run.
    rejected = con.execute(
        f"select coalesce(event_date::varchar, '-'), source_file, reason, detail from {RAW_REJECTED_FILES_TABLE}"
        " where event_date between ? and ? or event_date is null order by event_date nulls first, source_file",
        [start, end],
    ).fetchall()
    ignored = con.execute(f"select source_file, reason, detail from {RAW_IGNORED_FILES_TABLE} order by 1").fetchall()
    rejected_table = _md(["event_date", "file", "reason", "detail"], [list(r) for r in rejected])
    ignored_table = _md(["file", "reason", "detail"], [list(r) for r in ignored])
    # The materializations repeat in every partition's event: their tables are bounded; the check's are whole.
    yield dg.MaterializeResult(
        asset_key=RAW_REJECTED_FILES,
        metadata={
            "dagster/row_count": len(rejected),
            "rejected": dg.MetadataValue.md(_bounded_md(["event_date", "file", "reason", "detail"], rejected)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RAW_IGNORED_FILES,
        metadata={
            "dagster/row_count": len(ignored),
            "ignored": dg.MetadataValue.md(_bounded_md(["file", "reason", "detail"], ignored)),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=RAW_TRANSACTIONS,
        check_name=NO_REJECTED_FILES,
        passed=not rejected,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "rejected_files": len(rejected),
            "files": dg.MetadataValue.md(rejected_table),
            "ignored_files": len(ignored),
            "ignored": dg.MetadataValue.md(ignored_table),
        },
    )
    yield _schema_drift_result(con, start, end)
    yield from _not_loaded_results(con)


def _transactions_result(
    con: duckdb.DuckDBPyConnection,
    loads: list[landing.FileLoad],
    start: dt.date,
    end: dt.date,
    lag: dict | None = None,
) -> dg.MaterializeResult:
    rows, malformed = con.execute(
        f"select count(*), count(raw_line) from {RAW_TRANSACTIONS_TABLE} where event_date between ? and ?",
        [start, end],
    ).fetchall()[0]
    # Dagster copies this metadata into the event of every partition in the window, so the
    # table is bounded: the files that need a look first (rejected, malformed lines), then
    # the rest up to the limit.
    ranked = sorted(loads, key=lambda f: (not f.rejected, not f.malformed, f.skipped, f.name))
    outcomes = [
        [
            f.name,
            f.rows,
            f.malformed,
            f"rejected: {f.rejected}" if f.rejected else "unchanged" if f.skipped else "loaded",
        ]
        for f in ranked
    ]
    return dg.MaterializeResult(
        asset_key=RAW_TRANSACTIONS,
        metadata={
            "dagster/row_count": rows,
            "partitions": (end - start).days + 1,
            "files_loaded": sum(1 for f in loads if not f.skipped and not f.rejected),
            "files_unchanged": sum(1 for f in loads if f.skipped and not f.rejected),
            "files_loaded_in_bulk": sum(1 for f in loads if f.bulk),
            "files_loaded_per_line": sum(1 for f in loads if not f.bulk and not f.skipped and not f.rejected),
            "malformed_lines": malformed,
            "files": dg.MetadataValue.md(_bounded_md(["file", "rows", "malformed lines", "outcome"], outcomes)),
            **(lag or {}),
        },
    )


def _schema_drift_result(con: duckdb.DuckDBPyConnection, start: dt.date, end: dt.date) -> dg.AssetCheckResult:
    drift = con.execute(
        f"select distinct source_file, extra_columns from {RAW_TRANSACTIONS_TABLE}"
        " where event_date between ? and ? and extra_columns is not null order by 1",
        [start, end],
    ).fetchall()
    return dg.AssetCheckResult(
        asset_key=RAW_TRANSACTIONS,
        check_name=NO_SCHEMA_DRIFT,
        passed=not drift,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "files_with_extra_columns": len(drift),
            "files": dg.MetadataValue.md(_md(["file", "extra columns"], [list(r) for r in drift])),
        },
    )


def _not_loaded_results(con: duckdb.DuckDBPyConnection):
    """Rows in raw.transactions from a file recorded as rejected (same hash) or from an entry now ignored."""
    from_rejected, from_ignored = con.execute(
        f"""
        select
            count(*) filter (where exists (
                select 1 from {RAW_REJECTED_FILES_TABLE} as r
                where r.source_file = t.source_file and r.file_hash = t.file_hash
            )),
            count(*) filter (where t.source_file in (select source_file from {RAW_IGNORED_FILES_TABLE}))
        from {RAW_TRANSACTIONS_TABLE} as t
        """
    ).fetchone()
    for key, name, rows, severity in (
        (RAW_REJECTED_FILES, REJECTED_NOT_LOADED, from_rejected, dg.AssetCheckSeverity.ERROR),
        (RAW_IGNORED_FILES, IGNORED_NOT_LOADED, from_ignored, dg.AssetCheckSeverity.WARN),
    ):
        yield dg.AssetCheckResult(
            asset_key=key, check_name=name, passed=rows == 0, severity=severity, metadata={"raw_rows": rows}
        )
