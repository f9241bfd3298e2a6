"""Settings of the scale path (Spark's properties, DuckDB's memory limit), the anomaly thresholds, the freshness deadline and the owners."""

import dataclasses
import datetime as dt
import re
from pathlib import Path

import dagster as dg
import pytest

from ballast.cli import main as cli
from ballast.resources import WarehouseResource, write_dbt_profile
from ballast.settings import START_DATE_FILE, Settings, SettingsError


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


def test_the_freshness_deadline_comes_from_the_environment(tmp_path: Path) -> None:
    default = Settings.from_env({"BALLAST_HOME": str(tmp_path)})
    assert (default.freshness_deadline_cron, default.freshness_timezone) == ("0 9 * * *", "UTC")
    chosen = Settings.from_env(
        {
            "BALLAST_HOME": str(tmp_path),
            "BALLAST_FRESHNESS_DEADLINE_CRON": " 30  7 * * 1-5 ",
            "BALLAST_FRESHNESS_TIMEZONE": " Europe/Berlin",
        }
    )
    assert (chosen.freshness_deadline_cron, chosen.freshness_timezone) == ("30 7 * * 1-5", "Europe/Berlin")


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


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BALLAST_FRESHNESS_DEADLINE_CRON": "0 9 * *"}, "BALLAST_FRESHNESS_DEADLINE_CRON='0 9 \\* \\*'.*five fields"),
        ({"BALLAST_FRESHNESS_DEADLINE_CRON": "at nine"}, "BALLAST_FRESHNESS_DEADLINE_CRON='at nine'.*five fields"),
        ({"BALLAST_FRESHNESS_DEADLINE_CRON": "0 25 * * *"}, "BALLAST_FRESHNESS_DEADLINE_CRON='0 25.*five fields"),
        ({"BALLAST_FRESHNESS_DEADLINE_CRON": ""}, "BALLAST_FRESHNESS_DEADLINE_CRON=''"),
        ({"BALLAST_FRESHNESS_DEADLINE_CRON": "*/15 * * * *"}, "more than once a day"),
        ({"BALLAST_FRESHNESS_DEADLINE_CRON": "0 9,17 * * *"}, "more than once a day"),
        ({"BALLAST_FRESHNESS_TIMEZONE": "Mars/Olympus"}, "BALLAST_FRESHNESS_TIMEZONE='Mars/Olympus' is not a known"),
        ({"BALLAST_FRESHNESS_TIMEZONE": "../../etc/passwd"}, "BALLAST_FRESHNESS_TIMEZONE=.*not a known time zone"),
        ({"BALLAST_FRESHNESS_TIMEZONE": ""}, "BALLAST_FRESHNESS_TIMEZONE='' is not a known"),
    ],
)
def test_a_bad_freshness_deadline_is_refused_by_name(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), **env})


def test_a_bad_freshness_deadline_ends_the_cli_in_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("BALLAST_HOME", str(tmp_path))
    monkeypatch.setenv("BALLAST_FRESHNESS_DEADLINE_CRON", "every morning")
    code = cli.main(["run"])
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert err.startswith("ballast: error: ") and err.count("\n") == 1, err
    assert "BALLAST_FRESHNESS_DEADLINE_CRON='every morning'" in err


def test_owners_come_from_the_environment(tmp_path: Path) -> None:
    assert Settings.from_env({"BALLAST_HOME": str(tmp_path)}).owners == ("team:data-platform",)
    chosen = Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_OWNERS": " team:ml , jane.doe@example.com,"})
    assert chosen.owners == ("team:ml", "jane.doe@example.com")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "BALLAST_OWNERS lists no owner"),
        (" , ", "BALLAST_OWNERS lists no owner"),
        ("team:ml,data-platform", "BALLAST_OWNERS has 'data-platform'; each entry must be an e-mail address"),
        ("team:", "BALLAST_OWNERS has 'team:';"),
        ("jane@localhost,ml team", "BALLAST_OWNERS has 'jane@localhost', 'ml team';"),
    ],
)
def test_an_owner_dagster_refuses_is_refused_by_name(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_OWNERS": value})
    # Dagster itself refuses each entry named: the setting holds no rule of its own.
    for bad in re.findall(r"'([^']*)'", message):
        with pytest.raises(dg.DagsterInvalidDefinitionError):
            dg.AssetSpec("a", owners=[bad])


def test_the_homes_recorded_start_date_is_the_default_and_the_variable_wins(tmp_path: Path) -> None:
    assert Settings.from_env({"BALLAST_HOME": str(tmp_path)}).start_date == dt.date(2025, 1, 1)
    dataclasses.replace(
        Settings.from_env({"BALLAST_HOME": str(tmp_path)}), start_date=dt.date(2026, 3, 4)
    ).record_start_date()
    assert (tmp_path / START_DATE_FILE).read_text() == "2026-03-04\n"
    later = Settings.from_env({"BALLAST_HOME": str(tmp_path)})
    assert (later.start_date, later.start_date_origin) == (dt.date(2026, 3, 4), START_DATE_FILE)
    explicit = Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_START_DATE": "2025-02-01"})
    assert (explicit.start_date, explicit.start_date_origin) == (dt.date(2025, 2, 1), "BALLAST_START_DATE")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("soon\n", "holds 'soon', not a date"),
        ("2999-01-01\n", "holds 2999-01-01, a day in the future"),
        (None, "cannot be read"),
    ],
)
def test_a_broken_recorded_start_date_is_named(tmp_path: Path, content: str | None, message: str) -> None:
    recorded = tmp_path / START_DATE_FILE
    if content is None:
        recorded.mkdir()
    else:
        recorded.write_text(content)
    with pytest.raises(SettingsError, match=f"^{re.escape(str(recorded))} {message}"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path)})
    # The variable overrides the file, so a home with a broken one stays usable.
    Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_START_DATE": "2025-01-01"})


def test_the_file_server_address_comes_from_the_environment(tmp_path: Path) -> None:
    default = Settings.from_env({"BALLAST_HOME": str(tmp_path)})
    assert default.files_base_url == "http://127.0.0.1:3001"
    assert Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_FILES_PORT": "3104"}).files_base_url == (
        "http://127.0.0.1:3104"
    )
    behind_a_proxy = Settings.from_env(
        {"BALLAST_HOME": str(tmp_path), "BALLAST_FILES_PORT": "3104", "BALLAST_FILES_URL": "https://reports.example/"}
    )
    assert (behind_a_proxy.files_base_url, behind_a_proxy.files_port) == ("https://reports.example", 3104)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BALLAST_FILES_PORT": "0"}, "BALLAST_FILES_PORT='0' must be at least 1"),
        ({"BALLAST_FILES_PORT": "70000"}, "BALLAST_FILES_PORT=70000 must be a TCP port between 1 and 65535"),
        ({"BALLAST_FILES_PORT": "http"}, "BALLAST_FILES_PORT='http' is not a whole number"),
        ({"BALLAST_FILES_URL": "127.0.0.1:3001"}, "BALLAST_FILES_URL='127.0.0.1:3001' must start with http://"),
    ],
)
def test_a_bad_file_server_address_is_refused_by_name(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), **env})
