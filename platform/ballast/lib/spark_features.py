"""The Spark engine's feature SQL, generated from the dbt model (no hand-written second definition).

dbt compiles `customer_daily_features` for a window in DuckDB's dialect; sqlglot
transpiles that to Spark SQL, reading the clean layer from a Spark view instead of the
warehouse. A feature changes in one place, the dbt model, for both engines.
"""

from __future__ import annotations

import re

import sqlglot

CLEAN_RELATION = re.compile(r'"[^"]+"\."clean"\."transactions"')


def to_spark(compiled_sql: str, clean_view: str = "clean_transactions") -> str:
    """Spark SQL for a compiled `customer_daily_features`, reading clean transactions from `clean_view`."""
    sql, replaced = CLEAN_RELATION.subn(clean_view, compiled_sql)
    if not replaced:
        raise ValueError("the compiled model does not read clean.transactions; was it compiled by dbt-duckdb?")
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]
