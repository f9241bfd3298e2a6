"""Raw layer: landing files loaded as-is into the warehouse, one daily partition per event date."""

import datetime as dt
from pathlib import Path

import dagster as dg
from tabulate import tabulate

from ballast.lib import code_version, landing
from ballast.quality import contract_checks
from ballast.lib.landing import RAW_DDL, LandingError, Limits, files_by_date, load_file
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings
from ballast.transform import partition_dates

CODE_VERSION = code_version.of_sources(Path(__file__), landing)
RAW_TRANSACTIONS = dg.AssetKey(["raw", "transactions"])
RAW_REJECTED_FILES = dg.AssetKey(["raw", "rejected_files"])
NO_REJECTED_FILES = "no_rejected_files"
NO_SCHEMA_DRIFT = "no_schema_drift"


def _md(header: list[str], rows: list[list[object]]) -> str:
    return tabulate(rows, headers=header, tablefmt="github")


def build_defs(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    limits = Limits(max_file_bytes=settings.max_file_bytes, max_columns=settings.max_columns)

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                RAW_TRANSACTIONS,
                description="Landing files loaded as-is, one daily partition per event date, with the source file, hash, line and load id of every row.",
                group_name="raw",
                kinds={"duckdb"},
                code_version=CODE_VERSION,
            ),
            dg.AssetSpec(
                RAW_REJECTED_FILES,
                description="Landing files that could not be loaded as a whole, with the reason (empty, unreadable, not UTF-8, missing columns, ...).",
                group_name="raw",
                kinds={"duckdb"},
                code_version=CODE_VERSION,
            ),
        ],
        check_specs=[
            dg.AssetCheckSpec(
                NO_REJECTED_FILES,
                asset=RAW_TRANSACTIONS,
                description="Every landing file of the partitions was readable and loaded.",
            ),
            dg.AssetCheckSpec(
                NO_SCHEMA_DRIFT,
                asset=RAW_TRANSACTIONS,
                description="No landing file of the partitions has columns beyond the input contract.",
            ),
        ],
        name="raw_transactions",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
    )
    def raw_transactions(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        start, end = partition_dates(context)
        try:
            by_date = files_by_date(settings.landing_dir)
        except LandingError as exc:
            raise dg.Failure(str(exc)) from None
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        with warehouse.connect() as con:
            con.execute(RAW_DDL)
            loads = [
                load_file(con, f, load_id=context.run.run_id, landing_dir=settings.landing_dir, limits=limits)
                for day in days
                for f in by_date.get(day, [])
            ]
            rows, malformed = con.execute(
                "select count(*), count(raw_line) from raw.transactions where event_date between ? and ?",
                [start, end],
            ).fetchall()[0]
            rejected = con.execute(
                "select event_date, source_file, reason, detail from raw.rejected_files"
                " where event_date between ? and ? order by event_date, source_file",
                [start, end],
            ).fetchall()
            drift = con.execute(
                "select distinct source_file, extra_columns from raw.transactions"
                " where event_date between ? and ? and extra_columns is not null order by 1",
                [start, end],
            ).fetchall()
        for f in loads:
            if f.rejected and not f.skipped:
                context.log.warning(f"rejected landing file {f.name}: {f.rejected} ({f.detail})")
        files_table = _md(
            ["file", "rows", "malformed lines", "outcome"],
            [
                [f.name, f.rows, f.malformed, f"rejected: {f.rejected}" if f.rejected else "unchanged" if f.skipped else "loaded"]
                for f in loads
            ],
        )
        yield dg.MaterializeResult(
            asset_key=RAW_TRANSACTIONS,
            metadata={
                "dagster/row_count": rows,
                "partitions": len(days),
                "files_loaded": sum(1 for f in loads if not f.skipped and not f.rejected),
                "files_unchanged": sum(1 for f in loads if f.skipped and not f.rejected),
                "malformed_lines": malformed,
                "files": dg.MetadataValue.md(files_table),
            },
        )
        rejected_table = _md(["event_date", "file", "reason", "detail"], [list(r) for r in rejected])
        yield dg.MaterializeResult(
            asset_key=RAW_REJECTED_FILES,
            metadata={"dagster/row_count": len(rejected), "rejected": dg.MetadataValue.md(rejected_table)},
        )
        yield dg.AssetCheckResult(
            asset_key=RAW_TRANSACTIONS,
            check_name=NO_REJECTED_FILES,
            passed=not rejected,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rejected_files": len(rejected), "files": dg.MetadataValue.md(rejected_table)},
        )
        yield dg.AssetCheckResult(
            asset_key=RAW_TRANSACTIONS,
            check_name=NO_SCHEMA_DRIFT,
            passed=not drift,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "files_with_extra_columns": len(drift),
                "files": dg.MetadataValue.md(_md(["file", "extra columns"], [list(r) for r in drift])),
            },
        )

    return dg.Definitions(
        assets=[raw_transactions],
        asset_checks=[contract_checks(settings, "raw_transactions.yml", RAW_TRANSACTIONS, blocking=False)],
    )
