"""Metadata keys that every layer may set on its assets and the audit and lineage layers read, and the table metadata of an asset."""

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from urllib.parse import quote

import dagster as dg

from ballast.common.columns import Column
from ballast.settings import WAREHOUSE_CATALOG, Settings

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


# Floats a person reads in the UI: this many significant digits, never fewer than MIN_DECIMALS
# decimals (an hour count keeps its hundredths, an epoch time its whole seconds).
SIGNIFICANT_DIGITS = 4
MIN_DECIMALS = 2
# The markdown of an image under this many characters shows inline on the asset page; longer, behind a click.
INLINE_MARKDOWN_CHARS = 1000


def readable_float(value: float) -> float:
    """`value` rounded for reading: 0.9611951003712583 -> 0.9612, 0.0123456 -> 0.01235, 15260.318 -> 15260.32."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = math.floor(math.log10(abs(value)))
    return round(float(value), max(MIN_DECIMALS, SIGNIFICANT_DIGITS - 1 - magnitude))


def _absent(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def readable(metadata: Mapping[str, object]) -> dict:
    """Materialization or check metadata as a person reads it: floats rounded, entries without a value left out.

    A key whose value is None or empty text would show `null` or a blank in the UI; where
    absence means something, the caller says so in words (e.g. champion_version "none").
    JSON values stay exact: they are for scripts.
    """
    shown: dict = {}
    for key, entry in metadata.items():
        value = entry.value if isinstance(entry, dg.MetadataValue) else entry
        if _absent(value):
            continue
        if isinstance(value, float) and isinstance(entry, float | dg.FloatMetadataValue):
            entry = readable_float(value)
        shown[key] = entry
    return shown


def served_folders(settings: Settings) -> dict[str, Path]:
    """The folders `ballast dev`'s file server serves, by the first part of their URL path."""
    return {
        "drift": settings.monitoring_dir / "drift",
        "plots": settings.plots_dir,
        "dbt-docs": settings.dbt_docs_dir,
    }


def file_url(settings: Settings, path: Path) -> str:
    """The address of `path`, a file in a served folder, on `ballast dev`'s file server."""
    for prefix, folder in served_folders(settings).items():
        if path.is_relative_to(folder):
            return f"{settings.files_base_url}/{prefix}/{quote(path.relative_to(folder).as_posix())}"
    raise ValueError(f"{path} is not in a folder `ballast dev` serves")


def image_markdown(title: str, url: str) -> dg.MetadataValue:
    """An image the asset page shows inline (short markdown), opening full size on a click."""
    return dg.MetadataValue.md(f"[![{title}]({url})]({url})")


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
