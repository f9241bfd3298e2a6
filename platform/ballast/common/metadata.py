"""Metadata keys that every layer may set on its assets and the audit layer reads."""

# An asset that touches files or external systems and has no retry policy says why here
# (e.g. a deterministic local step: a retry would repeat the same failure).
NO_RETRY_REASON = "ballast/no_retry_reason"

# The code that makes an asset's columns, as a path from the repository root (a dbt model's
# .sql file, with the ephemeral models inlined into it); column lineage names it at each hop.
TRANSFORMATION = "ballast/transformation"

# Dagster's standard column lineage (dg.TableColumnLineage): each column's upstream (asset, column) pairs.
COLUMN_LINEAGE = "dagster/column_lineage"
