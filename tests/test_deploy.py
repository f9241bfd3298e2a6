"""The production configurations in deploy/ load and switch what they say, without any server."""

from pathlib import Path

import dagster as dg
import dotenv
import pytest
import yaml
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._serdes.config_class import class_from_code_pointer

from ballast.definitions import build_defs
from ballast.settings import REPO_ROOT, Settings

DEPLOY = REPO_ROOT / "deploy"


def test_the_production_instance_is_valid_dagster_config_on_postgres_with_docker_runs() -> None:
    config, _ = dagster_instance_config(str(DEPLOY))
    assert set(config["storage"]) == {"postgres"}
    assert config["storage"]["postgres"]["postgres_db"]["password"] == {"env": "DAGSTER_PG_PASSWORD"}
    launcher = config["run_launcher"]
    launcher_class = class_from_code_pointer(launcher["module"], launcher["class"])
    assert launcher_class.__name__ == "DockerRunLauncher"
    assert validate_config(launcher_class.config_type(), launcher["config"]).success
    # The storage class that `storage: postgres` loads is installed.
    assert class_from_code_pointer("dagster_postgres", "DagsterPostgresStorage")


def test_a_mistake_in_the_production_instance_is_refused(tmp_path: Path) -> None:
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    config["storage"]["postgres"]["postgres_db"]["hostnme"] = config["storage"]["postgres"]["postgres_db"].pop(
        "hostname"
    )
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(DagsterInvalidConfigError, match="hostnme"):
        dagster_instance_config(str(tmp_path))


@pytest.fixture
def production(tmp_path: Path) -> tuple[dict, dg.Definitions]:
    env = dict(dotenv.dotenv_values(DEPLOY / "production.env"))
    assert env["BALLAST_HOME"] == "/mnt/ballast"
    env["BALLAST_HOME"] = str(tmp_path)  # the shared mount does not exist here
    return env, build_defs(Settings.from_env(env))


def test_production_settings_put_features_on_a_spark_cluster(production) -> None:
    _env, defs = production
    spark = defs.resources["pyspark"]
    assert type(spark).__name__ == "PySparkResource"
    assert spark.spark_config["spark.master"] == "spark://spark-master:7077"
    assert spark.spark_config["spark.executor.memory"] == "8g"
    # Ballast's own Spark defaults stay under the cluster's properties.
    assert spark.spark_config["spark.sql.session.timeZone"] == "UTC"
    graph = defs.resolve_asset_graph()
    features = graph.get(dg.AssetKey(["features", "customer_daily_features"]))
    assert "spark" in features.kinds
    assert dg.AssetKey(["clean", "transactions_parquet"]) in graph.get_all_asset_keys()


def test_production_secrets_come_from_the_environment_only(production) -> None:
    env, defs = production
    sinks = defs.resources["alert_sinks"]
    assert sinks.slack_webhook_url == dg.EnvVar("BALLAST_SLACK_WEBHOOK_URL")
    assert not any("URL" in key and key != "BALLAST_UI_URL" for key in env)
    # Every Ballast setting of the deployment reaches the run containers.
    launched = set(yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["run_launcher"]["config"]["env_vars"])
    assert {key for key in env if key.startswith("BALLAST_") and key != "BALLAST_UI_URL"} <= launched


def test_the_default_engine_needs_no_spark(tmp_path: Path) -> None:
    defs = build_defs(Settings.from_env({"BALLAST_HOME": str(tmp_path)}))
    assert "pyspark" not in defs.resources
    assert dg.AssetKey(["clean", "transactions_parquet"]) not in defs.resolve_asset_graph().get_all_asset_keys()
