"""The columns of a table built in Python, declared once: for the SQL that creates it and its asset's column schema.

No Dagster here (the loader and the CLI read these); `ballast.common.metadata.table_metadata`
turns a declaration into the asset's `dagster/column_schema`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple


class Column(NamedTuple):
    """One column: its name, its DuckDB type as `describe` spells it, and a sentence on what it holds."""

    name: str
    type: str
    description: str
    not_null: bool = False


def create_table_sql(table: str, columns: Sequence[Column]) -> str:
    """`create table if not exists` for the declared columns, in their order."""
    body = ",\n    ".join(f"{c.name} {c.type}{' not null' if c.not_null else ''}" for c in columns)
    return f"create table if not exists {table} (\n    {body}\n)"


def select_as_declared(columns: Sequence[Column], source: str) -> str:
    """A select of `source` giving exactly the declared columns, in order, each cast to its declared type.

    For tables built from a data frame, whose types would otherwise follow pandas' dtypes
    (text as object, a date Feast hands back as a zone-aware timestamp, an integer as a float
    when a value is missing). The caller declares the type its values already have, so a
    cast changes their spelling, never their value.
    """
    return f"select {', '.join(f'cast({c.name} as {c.type}) as {c.name}' for c in columns)} from {source}"


def names(columns: Sequence[Column]) -> tuple[str, ...]:
    return tuple(c.name for c in columns)
