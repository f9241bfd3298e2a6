"""Resources built from settings: the DuckDB warehouse and the dbt project and CLI."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject

from ballast.lib.alerts import JsonlSink, SlackSink, WebhookSink
from ballast.settings import DBT_PROJECT_DIR, Settings

DBT_EXECUTABLE = str(Path(sys.executable).parent / "dbt")


# Every DuckDB session Ballast opens (its own and dbt's) computes in UTC, whatever the
# machine's time zone: `current_date`, casts to TIMESTAMPTZ and date parts follow it.
DUCKDB_TIME_ZONE = "UTC"


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file; a connection is opened per use and closed right after."""

    path: str
    memory_limit: str = "2GB"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only, config={"memory_limit": self.memory_limit})
        try:
            # Set after connecting: as a connect option it needs ICU loaded before it autoloads.
            con.execute(f"set TimeZone = '{DUCKDB_TIME_ZONE}'")
            yield con
        finally:
            con.close()


class FeatureStoreResource(dg.ConfigurableResource):
    """The Feast repo in feature_repo/, opened with this Ballast home's paths."""

    home: str

    def open(self):
        """A Feast FeatureStore (imported here: Feast takes seconds to import)."""
        from ballast.lib import feature_store

        return feature_store.open_store(Path(self.home))

    def definitions(self) -> list:
        from ballast.lib import feature_store

        return feature_store.definitions(Path(self.home))


class AlertSinks(dg.ConfigurableResource):
    """Where check-failure alerts go. Webhook addresses are secrets: set them with dagster.EnvVar."""

    alert_log: str
    webhook_url: str | None = None
    slack_webhook_url: str | None = None

    def sinks(self) -> list:
        found = [JsonlSink(Path(self.alert_log))]
        if self.webhook_url:
            found.append(WebhookSink(self.webhook_url))
        if self.slack_webhook_url:
            found.append(SlackSink(self.slack_webhook_url))
        return found


def write_dbt_profile(settings: Settings) -> Path:
    """Write the dbt profile that points dbt-duckdb at this Ballast home's warehouse."""
    profile = {
        "ballast": {
            "target": "local",
            "outputs": {
                "local": {
                    "type": "duckdb",
                    "path": str(settings.warehouse_path),
                    "schema": "main",
                    "threads": 1,
                    "settings": {"memory_limit": settings.duckdb_memory_limit, "TimeZone": DUCKDB_TIME_ZONE},
                }
            },
        }
    }
    settings.dbt_profiles_dir.mkdir(parents=True, exist_ok=True)
    path = settings.dbt_profiles_dir / "profiles.yml"
    text = yaml.safe_dump(profile, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def dbt_project(settings: Settings) -> DbtProject:
    write_dbt_profile(settings)
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=settings.dbt_profiles_dir)


def dbt_cli(project: DbtProject, settings: Settings) -> DbtCliResource:
    # The dbt next to this interpreter, so that an un-activated virtualenv works too.
    return DbtCliResource(
        project_dir=project, profiles_dir=str(settings.dbt_profiles_dir), dbt_executable=DBT_EXECUTABLE
    )


def ensure_dbt_manifest(project: DbtProject, settings: Settings) -> None:
    """Run `dbt parse` when the manifest is missing or older than any dbt source file."""
    manifest = project.manifest_path
    if manifest.exists():
        built = manifest.stat().st_mtime
        sources = (p for p in project.project_dir.rglob("*") if p.suffix in (".sql", ".yml") and "target" not in p.parts)
        if all(p.stat().st_mtime <= built for p in sources):
            return
    dbt_cli(project, settings).cli(["parse", "--quiet"], target_path=project.target_path).wait()


class LayerTranslator(DagsterDbtTranslator):
    """Asset key = [layer, model]: the dbt folder's schema is the layer and the group."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)


def dbt_translator() -> LayerTranslator:
    return LayerTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def build_resources(settings: Settings, project: DbtProject) -> dict[str, Any]:
    resources = {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path), memory_limit=settings.duckdb_memory_limit),
        "dbt": dbt_cli(project, settings),
        "feature_store": FeatureStoreResource(home=str(settings.home)),
        "alert_sinks": AlertSinks(
            alert_log=str(settings.monitoring_dir / "alerts" / "alerts.jsonl"),
            webhook_url=dg.EnvVar("BALLAST_ALERT_WEBHOOK_URL") if "webhook" in settings.alert_sinks else None,
            slack_webhook_url=dg.EnvVar("BALLAST_SLACK_WEBHOOK_URL") if "slack" in settings.alert_sinks else None,
        ),
    }
    if settings.feature_engine == "spark":
        # Imported here: PySpark is only a cost for those who choose the Spark engine. The
        # session starts in the one step that uses it (or joins the process's session).
        from dagster_pyspark import PySparkResource

        resources["pyspark"] = PySparkResource(spark_config=settings.spark_config)
    return resources
