"""Parity of the two feature engines on the session's data: DuckDB (dbt) and Spark (the same model, transpiled)."""

import duckdb
import pytest

from ballast.lib.churn import FEATURES
from ballast.lib.spark_features import to_spark
from tests.conftest import Platform


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]").appName("ballast-parity")
        .config("spark.ui.enabled", "false").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def test_spark_computes_the_same_features_as_duckdb(platform: Platform, spark, tmp_path) -> None:
    compiled = next((platform.settings.dbt_runs_dir / "features" / "compiled").rglob("customer_daily_features.sql"))
    con = duckdb.connect(str(platform.settings.warehouse_path), read_only=True)
    try:
        con.execute(f"copy (select * from clean.transactions) to '{tmp_path / 'clean.parquet'}' (format parquet)")
        expected = con.execute("select * from features.customer_daily_features order by customer_id, feature_date").df()
    finally:
        con.close()
    spark.read.parquet(str(tmp_path / "clean.parquet")).createOrReplaceTempView("clean_transactions")
    got = spark.sql(to_spark(compiled.read_text())).toPandas().sort_values(["customer_id", "feature_date"])
    got = got.reset_index(drop=True)
    assert len(got) == len(expected) > 0
    assert (got["customer_id"] == expected["customer_id"]).all()
    assert (got["feature_date"].astype(str) == expected["feature_date"].dt.date.astype(str)).all()
    for column in FEATURES:
        left, right = got[column], expected[column]
        if column == "home_country":
            assert ((left == right) | (left.isna() & right.isna())).all(), column
        else:
            assert ((left.astype(float) - right.astype(float)).abs() <= 1e-9).all(), column
