"""Metadata keys that every layer may set on its assets and the audit layer reads, and the table metadata of an asset."""

from collections.abc import Sequence
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
