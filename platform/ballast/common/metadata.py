"""Metadata keys that every layer may set on its assets and the audit and lineage layers read, and the table metadata of an asset."""

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import dagster as dg

from ballast.common.columns import Column
from ballast.settings import WAREHOUSE_CATALOG

# An asset that touches files or external systems and has no retry policy says why here
# (e.g. a deterministic local step: a retry would repeat the same failure).
NO_RETRY_REASON = "ballast/no_retry_reason"
# Dagster's standard table metadata, which its UI, dagster-dbt and the lineage export read
# (spelled out here: Dagster's TableMetadataSet is not public API).
TABLE_NAME = "dagster/table_name"
COLUMN_SCHEMA = "dagster/column_schema"
# The code that makes an asset's columns, as a path from the repository root (a dbt model's
# .sql file, with the ephemeral models inlined into it); column lineage names it at each hop.
TRANSFORMATION = "ballast/transformation"

# Dagster's standard column lineage (dg.TableColumnLineage): each column's upstream (asset, column) pairs.
COLUMN_LINEAGE = "dagster/column_lineage"
# What made each column of raw/transactions: the landing column of the same name, or the
# loader (no landing column). Landing files are not assets, so this hop is not column lineage.
LANDING_COLUMNS = "ballast/landing_columns"


def plain_value(entry):
    """A metadata entry's plain value, whether the spec or event holds it as given or wrapped in a MetadataValue."""
    return entry.value if isinstance(entry, dg.MetadataValue) else entry


def warehouse_table_name(table: str) -> str:
    """The fully qualified name of the warehouse table `layer.name`, as dagster-dbt names the dbt models' tables."""
    return f"{WAREHOUSE_CATALOG}.{table}"


def lake_table_name(folder: Path) -> str:
    """The name of a lake table: the URI of its folder of Parquet files (file:// here, s3:// on object storage)."""
    return folder.absolute().as_uri()


def column_schema(columns: Sequence[Column]) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name, c.type, c.description, constraints=dg.TableColumnConstraints(nullable=not c.not_null)
            )
            for c in columns
        ]
    )


def table_metadata(table_name: str, columns: Sequence[Column]) -> dict:
    """An asset's table name and column schema, for the metadata of its definition."""
    return {TABLE_NAME: table_name, COLUMN_SCHEMA: column_schema(columns)}


def column_lineage(deps: Mapping[str, Iterable[tuple[dg.AssetKey, str]]]) -> dg.MetadataValue:
    """Dagster's column lineage from {column: [(upstream asset, upstream column), ...]}."""
    return dg.MetadataValue.column_lineage(
        dg.TableColumnLineage(
            deps_by_column={
                column: [dg.TableColumnDep(asset_key=key, column_name=name) for key, name in upstream]
                for column, upstream in deps.items()
            }
        )
    )
