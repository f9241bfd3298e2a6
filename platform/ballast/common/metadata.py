"""Metadata keys that every layer may set on its assets and the audit and lineage layers read."""

from collections.abc import Iterable, Mapping

import dagster as dg

# An asset that touches files or external systems and has no retry policy says why here
# (e.g. a deterministic local step: a retry would repeat the same failure).
NO_RETRY_REASON = "ballast/no_retry_reason"

# The code that makes an asset's columns, as a path from the repository root (a dbt model's
# .sql file, with the ephemeral models inlined into it); column lineage names it at each hop.
TRANSFORMATION = "ballast/transformation"

# Dagster's standard column lineage (dg.TableColumnLineage): each column's upstream (asset, column) pairs.
COLUMN_LINEAGE = "dagster/column_lineage"
# What made each column of raw/transactions: the landing column of the same name, or the
# loader (no landing column). Landing files are not assets, so this hop is not column lineage.
LANDING_COLUMNS = "ballast/landing_columns"


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
