"""Clean layer: typed, validated, deduplicated transactions and their quarantine (dbt)."""

from pathlib import Path

import dagster as dg
from dagster_dbt import DbtProject

from ballast.lib import code_version, lake
from ballast.quality import contract_checks
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings
from ballast.transform import dbt_layer_assets, partition_dates

CLEAN_TRANSACTIONS = dg.AssetKey(["clean", "transactions"])
CLEAN_TRANSACTIONS_PARQUET = dg.AssetKey(["clean", "transactions_parquet"])


def build_defs(settings: Settings, project: DbtProject, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    assets: list = [dbt_layer_assets(settings, project, "clean", partitions_def)]
    if settings.feature_engine == "spark":
        assets.append(transactions_parquet(settings, partitions_def))
    return dg.Definitions(
        assets=assets,
        asset_checks=[contract_checks(settings, "clean_transactions.yml", CLEAN_TRANSACTIONS, blocking=True)],
    )


def transactions_parquet(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Only with the Spark feature engine, which reads the clean layer from the lake."""

    @dg.asset(
        key=CLEAN_TRANSACTIONS_PARQUET,
        deps=[CLEAN_TRANSACTIONS],
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="clean",
        pool=WAREHOUSE_POOL,
        code_version=code_version.of_sources(Path(__file__), lake),
        kinds={"duckdb", "parquet"},
    )
    def transactions_parquet(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Parquet export of clean/transactions in the lake, one folder per event date: the Spark engine's input."""
        first, last = partition_dates(context)
        with warehouse.connect(read_only=True) as con:
            rows = lake.export_clean_transactions(con, settings.lake_dir, first, last)
        path = lake.table_dir(settings.lake_dir, *lake.CLEAN_TRANSACTIONS)
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, "window": f"{first} to {last}", "path": dg.MetadataValue.path(str(path))}
        )

    return transactions_parquet
