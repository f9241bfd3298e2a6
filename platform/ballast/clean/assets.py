"""Clean layer: typed, validated, deduplicated transactions and their quarantine (dbt)."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtProject

from ballast.clean.quarantine import quarantine_shares, shares_markdown
from ballast.clean.tables import CLEAN_LAYER, CLEAN_TRANSACTIONS_TABLE
from ballast.common import code_version, lake
from ballast.common.columns import Column
from ballast.common.gates import gate_spec
from ballast.common.metadata import (
    COLUMN_LINEAGE,
    NO_RETRY_REASON,
    column_lineage,
    lake_table_name,
    readable,
    table_metadata,
)
from ballast.common.naming import table_key
from ballast.common.partitions import partition_dates, run_window, single_run_asset
from ballast.quality import blocking_contract
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings
from ballast.transform import dbt_layer_assets, dbt_model_columns

CLEAN_TRANSACTIONS = table_key(CLEAN_TRANSACTIONS_TABLE)
CLEAN_TRANSACTIONS_PARQUET = dg.AssetKey([CLEAN_LAYER, "transactions_parquet"])
QUARANTINE_SHARE_CHECK = "quarantine_share_within_limit"
WORST_DAYS_SHOWN = 5


def build_defs(settings: Settings, project: DbtProject, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    # Both withhold clean/transactions when they fail: the features wait for a clean window.
    gates = [
        blocking_contract(settings, "clean_transactions.yml", CLEAN_TRANSACTIONS),
        QuarantineShareGate(settings.max_quarantine_share),
    ]
    assets: list = [dbt_layer_assets(settings, project, CLEAN_LAYER, partitions_def, gates=gates)]
    if settings.feature_engine == "spark":
        assets.append(
            transactions_parquet(settings, partitions_def, dbt_model_columns(project, CLEAN_TRANSACTIONS_TABLE))
        )
    return dg.Definitions(assets=assets)


@dataclass(frozen=True)
class QuarantineShareGate:
    """Every partition day of the run has at most the configured share of its raw rows quarantined.

    A gate (ballast.common.gates), verified in the clean layer's dbt step.
    """

    limit: float
    asset_key: dg.AssetKey = CLEAN_TRANSACTIONS

    @property
    def specs(self) -> tuple[dg.AssetCheckSpec, ...]:
        description = (
            f"Every partition day of the run has at most {self.limit:.1%} of its raw rows quarantined "
            "(BALLAST_MAX_QUARANTINE_SHARE); a broken delivery stops here instead of thinning the features."
        )
        return (gate_spec(QUARANTINE_SHARE_CHECK, self.asset_key, description),)

    def verify(self, run_tags: dict[str, str], warehouse: WarehouseResource) -> list[dg.AssetCheckResult]:
        limit = self.limit
        first, last = run_window(run_tags)
        with warehouse.connect(read_only=True) as con:
            days = quarantine_shares(con, first, last)
        over = days[days["share"] > limit]
        shown = over if len(over) else days.head(WORST_DAYS_SHOWN)
        metadata: dict = {
            "window": f"{first} to {last}",
            "max_quarantine_share": limit,
            "days_checked": len(days),
            "days_over_limit": len(over),
            "worst_share": float(days["share"].max()) if len(days) else 0.0,
            # The failing days, worst first; when none fails, the worst few for context.
            "days": dg.MetadataValue.md(shares_markdown(shown)),
        }
        failing = ", ".join(over["event_date"].dt.strftime("%Y-%m-%d"))
        return [
            dg.AssetCheckResult(
                asset_key=self.asset_key,
                check_name=QUARANTINE_SHARE_CHECK,
                passed=over.empty,
                severity=dg.AssetCheckSeverity.ERROR,
                description=f"quarantined share above {limit:.1%} on {failing}" if failing else None,
                metadata=readable(metadata),
            )
        ]


def transactions_parquet(
    settings: Settings, partitions_def: dg.PartitionsDefinition, clean_columns: Sequence[Column]
) -> dg.AssetsDefinition:
    """Only with the Spark feature engine, which reads the clean layer from the lake."""
    path = lake.table_dir(settings.lake_dir, CLEAN_TRANSACTIONS_TABLE)
    table = table_metadata(lake_table_name(path), lake.lake_columns(clean_columns, "event_date"))
    lineage = column_lineage({c.name: [(CLEAN_TRANSACTIONS, c.name)] for c in clean_columns})

    @single_run_asset(
        CLEAN_TRANSACTIONS_PARQUET,
        deps=[CLEAN_TRANSACTIONS],
        partitions_def=partitions_def,
        group_name=CLEAN_LAYER,
        pool=WAREHOUSE_POOL,
        code_version=code_version.of_sources(Path(__file__), lake),
        kinds={"duckdb", "parquet"},
        metadata={NO_RETRY_REASON: lake.NO_RETRY, COLUMN_LINEAGE: lineage, **table},
    )
    def transactions_parquet(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Parquet export of clean/transactions in the lake, one folder per event date: the Spark engine's input."""
        first, last = partition_dates(context)
        with warehouse.connect(read_only=True) as con:
            rows = lake.replace_days(
                con,
                f"select * from {CLEAN_TRANSACTIONS_TABLE} where event_date between $first and $last"
                " order by event_date, customer_id",
                {"first": first, "last": last},
                path,
                "event_date",
                first,
                last,
            )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "window": f"{first} to {last}",
                "path": dg.MetadataValue.path(str(path)),
                COLUMN_LINEAGE: lineage,
            }
        )

    return transactions_parquet
