"""Settings of the scale path (the Spark engine's properties, DuckDB's memory limit) and the raw anomaly thresholds."""

from pathlib import Path

import pytest

from ballast.resources import WarehouseResource, write_dbt_profile
from ballast.settings import Settings, SettingsError


def test_spark_properties_come_from_the_environment_over_ballasts_defaults(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "BALLAST_HOME": str(tmp_path),
            "BALLAST_FEATURE_ENGINE": "Spark",
            "BALLAST_SPARK_MASTER": "spark://spark-master:7077",
            "BALLAST_SPARK_CONF": '{"spark.executor.memory": "8g", "spark.sql.session.timeZone": "UTC"}',
        }
    )
    assert settings.feature_engine == "spark"
    assert settings.spark_config["spark.master"] == "spark://spark-master:7077"
    assert settings.spark_config["spark.executor.memory"] == "8g"
    assert settings.spark_config["spark.sql.timestampType"] == "TIMESTAMP_NTZ"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("executor.memory=8g", "is not JSON"),
        ('["spark.a"]', "JSON object"),
        ('{"executor.memory": "8g"}', '"spark.\\*"'),
    ],
)
def test_a_bad_spark_conf_is_refused_by_name(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"BALLAST_SPARK_CONF.*{message}"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_SPARK_CONF": value})


def test_duckdb_memory_limit_reaches_dbt_and_the_assets_connections(tmp_path: Path) -> None:
    settings = Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_DUCKDB_MEMORY_LIMIT": "512MB"})
    assert "memory_limit: 512MB" in write_dbt_profile(settings).read_text()
    warehouse = WarehouseResource(path=str(tmp_path / "w.duckdb"), memory_limit=settings.duckdb_memory_limit)
    with warehouse.connect() as con:
        limit = con.execute("select current_setting('memory_limit')").fetchone()[0]
    # DuckDB reads 512MB as 512·10⁶ bytes and shows it in MiB (the default, 2GB, would be 1.8 GiB).
    assert limit == "488.2 MiB"


def test_anomaly_thresholds_come_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "BALLAST_HOME": str(tmp_path),
            "BALLAST_ANOMALY_Z": "4.5",
            "BALLAST_ANOMALY_WINDOW_DAYS": "56",
            "BALLAST_ANOMALY_MIN_HISTORY_DAYS": "21",
        }
    )
    assert (settings.anomaly_z, settings.anomaly_window_days, settings.anomaly_min_history_days) == (4.5, 56, 21)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BALLAST_ANOMALY_Z": "0"}, "BALLAST_ANOMALY_Z=0.0 must be a finite number above 0"),
        ({"BALLAST_ANOMALY_Z": "nan"}, "BALLAST_ANOMALY_Z=nan must be a finite number above 0"),
        ({"BALLAST_ANOMALY_Z": "high"}, "BALLAST_ANOMALY_Z='high' is not a number"),
        ({"BALLAST_ANOMALY_WINDOW_DAYS": "0"}, "BALLAST_ANOMALY_WINDOW_DAYS='0' must be at least 1"),
        ({"BALLAST_ANOMALY_WINDOW_DAYS": "400"}, "BALLAST_ANOMALY_WINDOW_DAYS=400 must be between 1 and 366"),
        ({"BALLAST_ANOMALY_MIN_HISTORY_DAYS": "4w"}, "BALLAST_ANOMALY_MIN_HISTORY_DAYS='4w' is not a whole number"),
        (
            {"BALLAST_ANOMALY_WINDOW_DAYS": "7", "BALLAST_ANOMALY_MIN_HISTORY_DAYS": "14"},
            r"BALLAST_ANOMALY_MIN_HISTORY_DAYS=14 must be between 1 and BALLAST_ANOMALY_WINDOW_DAYS \(7\)",
        ),
    ],
)
def test_a_bad_anomaly_threshold_is_refused_by_name(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), **env})
