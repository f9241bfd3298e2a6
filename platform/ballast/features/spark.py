"""The Spark feature engine: the dbt model, transpiled, run by PySpark over the clean layer's Parquet.

dbt compiles `customer_daily_features` for a window in DuckDB's dialect; sqlglot
transpiles that to Spark SQL, reading the clean layer from a Spark view over the lake
instead of the warehouse. A feature changes in one place, the dbt model, for both
engines, and a parity test holds the two to the same rows.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import duckdb
import sqlglot

from ballast.clean.tables import CLEAN_TRANSACTIONS_TABLE
from ballast.common import lake
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE

CLEAN_SCHEMA, _, CLEAN_NAME = CLEAN_TRANSACTIONS_TABLE.partition(".")
# The clean table as dbt-duckdb compiles it: "database"."schema"."table".
CLEAN_RELATION = re.compile(rf'"[^"]+"\."{CLEAN_SCHEMA}"\."{CLEAN_NAME}"')
CLEAN_VIEW = "clean_transactions"
FEATURES_SCHEMA, _, FEATURES_NAME = CUSTOMER_DAILY_FEATURES_TABLE.partition(".")


class SparkEngineError(RuntimeError):
    """The Spark engine cannot build the features; the message says what is missing."""


def to_spark(compiled_sql: str) -> str:
    """Spark SQL for a compiled `customer_daily_features`, reading clean transactions from the view CLEAN_VIEW."""
    sql, replaced = CLEAN_RELATION.subn(CLEAN_VIEW, compiled_sql)
    if not replaced:
        raise SparkEngineError(
            f"the compiled model does not read {CLEAN_TRANSACTIONS_TABLE}; was it compiled by dbt-duckdb?"
        )
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def output_dir(lake_dir: Path) -> Path:
    """Spark's feature table in the lake, one feature_date= folder per day, read by the warehouse as a view.

    Apart from lake/features/, which holds the Feast export that every engine writes.
    """
    return lake_dir / "spark" / FEATURES_NAME


def build(spark, compiled_sql: str, lake_dir: Path, first: dt.date, last: dt.date) -> list[str]:
    """Compute the feature days [first, last] with Spark and replace those days' folders; returns the columns in order."""
    clean_dir = lake.table_dir(lake_dir, CLEAN_TRANSACTIONS_TABLE)
    if not any(clean_dir.glob("event_date=*")):
        raise SparkEngineError(
            f"no clean transactions in the lake at {clean_dir}; materialize clean/transactions_parquet first"
        )
    spark.read.option("basePath", str(clean_dir)).parquet(str(clean_dir)).createOrReplaceTempView(CLEAN_VIEW)
    frame = spark.sql(to_spark(compiled_sql))
    root = output_dir(lake_dir)
    staging = lake.staging_dir(root)
    try:
        frame.write.mode("overwrite").partitionBy("feature_date").parquet(str(staging))
        lake.swap_days(staging, root, "feature_date", first, last)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return frame.columns


def expose(con: duckdb.DuckDBPyConnection, lake_dir: Path, columns: list[str]) -> bool:
    """Make features.customer_daily_features a warehouse view over Spark's Parquet; True if it replaced a table.

    The rest of the graph (the Feast export, contracts, labels, profiles) reads the view
    exactly as it reads the table the DuckDB engine builds.
    """
    pattern = str(output_dir(lake_dir) / "*" / "*.parquet").replace("'", "''")
    kind = con.execute(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ?",
        [FEATURES_SCHEMA, FEATURES_NAME],
    ).fetchall()
    replaced = bool(kind) and kind[0][0] == "BASE TABLE"
    con.execute(f"create schema if not exists {FEATURES_SCHEMA}")
    if replaced:
        con.execute(f"drop table {CUSTOMER_DAILY_FEATURES_TABLE}")
    con.execute(
        f"""
        create or replace view {CUSTOMER_DAILY_FEATURES_TABLE} as
        select {", ".join(columns)}
        from read_parquet('{pattern}', hive_partitioning = true, hive_types = {{'feature_date': DATE}})
        """
    )
    return replaced
