"""Raw layer: landing files loaded as-is into the warehouse, one daily partition per event date."""


import datetime as dt

import dagster as dg

from ballast.lib.landing import RAW_DDL, LandingError, files_by_date, load_file
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings
from ballast.transform import partition_dates

RAW_TRANSACTIONS = dg.AssetKey(["raw", "transactions"])


def build_defs(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    @dg.asset(
        key=RAW_TRANSACTIONS,
        group_name="raw",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
    )
    def transactions(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Landing files loaded as-is, one daily partition per event date, with the source file, hash, line and load id of every row."""
        start, end = partition_dates(context)
        try:
            by_date = files_by_date(settings.landing_dir)
        except LandingError as exc:
            raise dg.Failure(str(exc)) from None
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        loads = []
        with warehouse.connect() as con:
            con.execute(RAW_DDL)
            for day in days:
                for landing_file in by_date.get(day, []):
                    try:
                        loads.append(load_file(con, landing_file, load_id=context.run.run_id))
                    except LandingError as exc:
                        raise dg.Failure(str(exc)) from None
            rows_by_day = dict(
                con.execute(
                    "select event_date, count(*) from raw.transactions"
                    " where event_date between ? and ? group by event_date",
                    [start, end],
                ).fetchall()
            )
        loaded = [f for f in loads if not f.skipped]
        table = "\n".join(
            ["| file | rows | |", "|---|---:|---|"]
            + [f"| {f.name} | {f.rows} | {'unchanged, skipped' if f.skipped else 'loaded'} |" for f in loads]
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": sum(rows_by_day.values()),
                "partitions": len(days),
                "files_loaded": len(loaded),
                "files_unchanged": len(loads) - len(loaded),
                "rows_loaded": sum(f.rows for f in loaded),
                "files": dg.MetadataValue.md(table),
            }
        )

    return dg.Definitions(assets=[transactions])
