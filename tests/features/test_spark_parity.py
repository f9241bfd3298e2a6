"""Parity of the two feature engines on the same generated data: DuckDB (dbt) and Spark (the same model, transpiled)."""

import shutil

import dagster as dg
import pytest

from ballast.features import feast_repo, spark
from ballast.model.training import FEATURES
from ballast.runs import instance, refresh
from tests.conftest import Platform, make_settings, query
from tests.test_column_schemas import declared_and_actual

SPARK_STEPS = [
    "clean/transactions_parquet",
    "features/customer_daily_features",
    "features/customer_daily_features_parquet",
]
KEYS = ["customer_id", "feature_date"]


@pytest.fixture(scope="module")
def spark_home(platform: Platform, spark, tmp_path_factory):
    """A copy of the session platform's warehouse and landing files, whose features the Spark engine rebuilds."""
    home = tmp_path_factory.mktemp("spark_home")
    for name in ("warehouse.duckdb", "landing"):
        source = platform.settings.home / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, home / name)
    settings = make_settings(
        home, feature_engine="spark", spark_master="local[2]", spark_conf=(("spark.ui.enabled", "false"),)
    )
    dagster_instance = instance(settings)
    result = refresh(
        settings,
        platform.start,
        platform.end,
        dagster_instance=dagster_instance,
        selection=dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(k) for k in SPARK_STEPS)),
        log_level="WARNING",
    )
    yield settings, result
    dagster_instance.dispose()


def features(settings, table: str = "features.customer_daily_features"):
    return query(settings, f"select * from {table} order by customer_id, feature_date", as_frame=True)


def test_the_spark_engine_runs_the_feature_layer_in_dagster(spark_home) -> None:
    settings, result = spark_home
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == set(SPARK_STEPS)
    # The blocking Soda contract reads Spark's features through the warehouse view, unchanged.
    contract = [
        c
        for c in result.get_asset_check_evaluations()
        if c.asset_key.to_user_string() == "features/customer_daily_features"
    ]
    assert contract and all(c.passed for c in contract)
    kind = query(
        settings, "select table_type from information_schema.tables where table_name = 'customer_daily_features'"
    )
    assert kind == [("VIEW",)]
    metadata = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "features/customer_daily_features"
    )
    assert metadata["engine"].value == "spark" and metadata["spark_master"].value == "local[2]"


def test_spark_computes_the_same_features_as_duckdb(platform: Platform, spark_home) -> None:
    settings, _ = spark_home
    expected, got = features(platform.settings), features(settings)
    assert len(got) == len(expected) > 100_000
    assert list(got.columns) == list(expected.columns)
    assert dict(got.dtypes) == dict(expected.dtypes)
    assert (got[KEYS] == expected[KEYS]).all().all()
    assert (got["feature_timestamp"] == expected["feature_timestamp"]).all()
    for column in FEATURES:
        left, right = got[column], expected[column]
        if column == "home_country":
            assert ((left == right) | (left.isna() & right.isna())).all(), column
        else:
            assert ((left.astype(float) - right.astype(float)).abs() <= 1e-9).all(), column


def test_feast_reads_the_same_export_from_either_engine(platform: Platform, spark_home) -> None:
    settings, _ = spark_home
    columns = ", ".join(c for c in features(platform.settings).columns)
    read = "select {columns} from read_parquet('{root}/*/*.parquet', hive_partitioning = true) order by customer_id, feature_date"
    frames = [
        query(s, read.format(columns=columns, root=feast_repo.feature_dir(s.lake_dir)), as_frame=True)
        for s in (platform.settings, settings)
    ]
    assert len(frames[0]) == len(frames[1]) > 0
    numeric = [c for c in FEATURES if c != "home_country"]
    assert ((frames[0][numeric].astype(float) - frames[1][numeric].astype(float)).abs() <= 1e-9).all().all()
    assert (frames[0][KEYS].astype(str) == frames[1][KEYS].astype(str)).all().all()


def test_the_spark_engine_s_tables_have_their_declared_columns(spark_home) -> None:
    """Spark's feature view and the clean layer's Parquet export hold the columns their assets declare."""
    settings, _ = spark_home
    declared_columns, table_columns = declared_and_actual(settings)
    assert {"clean/transactions_parquet", "features/customer_daily_features"} <= set(table_columns)
    assert declared_columns == table_columns


def test_to_spark_refuses_sql_that_does_not_read_the_clean_layer() -> None:
    with pytest.raises(spark.SparkEngineError, match=r"clean\.transactions"):
        spark.to_spark("select 1")
