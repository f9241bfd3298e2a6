"""The Ballast code location: every layer's definitions merged, plus cross-layer policy."""

from typing import Any

import dagster as dg
from dagster_dbt import DbtProject

from ballast.audit import assets as audit_assets
from ballast.audit.warning_capture import WarningRecord, capture
from ballast.catalogue import with_catalogue
from ballast.clean import assets as clean_assets
from ballast.common.automation import schedule_status, sensor_status
from ballast.common.history_sync import set_history_sync
from ballast.common.partitions import daily_partitions
from ballast.features import assets as features_assets
from ballast.features.assets import FeatureStoreResource
from ballast.lineage.columns import ColumnGraph
from ballast.lineage.export import OpenLineageExport, export_sensor
from ballast.lineage.policy import lineage_policy_check
from ballast.model import assets as model_assets
from ballast.monitoring import assets as monitoring_assets
from ballast.monitoring import freshness
from ballast.monitoring import sensors as monitoring_sensors
from ballast.monitoring.recovery import dead_run_sensor
from ballast.monitoring.sensors import AlertSinks
from ballast.raw import assets as raw_assets
from ballast.raw.sensors import landing_schedule, landing_sensor
from ballast.raw.tables import RAW_LAYER
from ballast.resources import WarehouseResource, dbt_cli, dbt_project, ensure_dbt_manifest
from ballast.settings import Settings

REFRESH_JOB = "refresh_platform_job"
AUTOMATION_SENSOR = "contracts_passed_automation"
# The executor of every job of the code location, the UI's asset materializations included
# (`execute_in_process`, which `ballast run` uses, always runs in its own process).
EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}

# Cross-layer policy: like AutomationCondition.eager() (refresh what is missing or whose
# inputs changed) over every partition, not only the latest. A failed blocking contract
# withholds its asset's days (ballast.common.gates), so what is below waits on missing
# inputs; the last term keeps that for checks declared blocking (the promotion gates).
DOWNSTREAM_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.any_deps_updated()).since_last_handled()
    & ~dg.AutomationCondition.any_deps_missing()
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed()
).with_label("inputs updated and their contracts passed")


def _with_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    # Raw assets wait for files; an asset with a policy of its own keeps it.
    if spec.group_name == RAW_LAYER or spec.automation_condition is not None:
        return spec
    return spec.replace_attributes(automation_condition=DOWNSTREAM_AUTOMATION)


def build_defs(settings: Settings) -> dg.Definitions:
    """What in-process runs execute: the code location without the freshness checks and their sensor.

    `execute_in_process` with an asset selection runs every check on the selected assets,
    whatever its job selects; freshness judges the wall clock, so its sensor runs it.
    """
    return load_defs(settings, freshness_checks=False)[0]


def load_defs(settings: Settings, freshness_checks: bool = True) -> tuple[dg.Definitions, tuple[WarningRecord, ...]]:
    """The code location and the deprecation, Beta and Preview warnings raised while building it.

    The warnings feed the debt scorecard's dependency freshness; nothing is written at load.
    """
    # The run workers and sensors of `dagster dev` write the history from this code location's processes.
    set_history_sync(settings.dagster_home, settings.history_sync)
    built: list[dg.Definitions] = []
    with capture("load") as captured:
        defs = _build_defs(
            settings, lambda: built[0].get_repository_def(), lambda: tuple(captured.records), freshness_checks
        )
        built.append(defs)
        # Resolving the repository (merging, validating) raises warnings of its own.
        defs.get_repository_def()
    return defs, tuple(captured.records)


def _build_defs(
    settings: Settings,
    repository: audit_assets.Repository,
    load_warnings: audit_assets.LoadWarnings,
    freshness_checks: bool,
) -> dg.Definitions:
    project = dbt_project(settings)
    ensure_dbt_manifest(project, settings)
    partitions_def = daily_partitions(settings)
    # Off until switched on in the UI, even under `ballast dev --automation`: the landing
    # sensor's refresh runs carry new files through every layer; this would add runs per asset.
    automation = dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.STOPPED,
        description="Refreshes assets whose inputs changed, once their upstream blocking contracts pass.",
    )
    layers = dg.Definitions.merge(
        raw_assets.build_defs(settings, partitions_def),
        clean_assets.build_defs(settings, project, partitions_def),
        features_assets.build_defs(settings, project, partitions_def),
        model_assets.build_defs(settings, project),
        monitoring_assets.build_defs(settings, partitions_def, repository),
        audit_assets.build_defs(settings, project.manifest_path, repository, load_warnings),
    )
    # Freshness is judged against the wall clock, by its sensor: a refresh run leaves it out.
    monitoring = [freshness.build_checks(settings, layers.assets or [])] if freshness_checks else []
    refresh = dg.define_asset_job(
        REFRESH_JOB,
        selection=dg.AssetSelection.all() - dg.AssetSelection.checks(*monitoring),
        description="Materialize every layer, raw to model, for a range of daily partitions.",
    )
    return dg.Definitions(
        # Code references: each asset's Python function (dbt models add their .sql: resources.dbt_translator).
        assets=dg.with_source_code_references(
            dg.map_asset_specs(
                lambda spec: with_catalogue(
                    freshness.with_freshness_policy(_with_automation(spec), settings), settings
                ),
                layers.assets or [],
            )
        ),
        # The column lineage of every layer is known here, before any run: the policy checks it.
        asset_checks=[
            *(layers.asset_checks or []),
            lineage_policy_check(ColumnGraph.from_defs(layers), settings),
            *monitoring,
        ],
        jobs=[refresh, monitoring_sensors.retrain_job()],
        sensors=[
            automation,
            dead_run_sensor(settings),
            *monitoring_sensors.build_sensors(settings),
            export_sensor(settings),
            landing_sensor(settings, REFRESH_JOB, sensor_status(settings)),
            *(freshness.freshness_sensor(settings, checks) for checks in monitoring),
        ],
        schedules=[landing_schedule(settings, REFRESH_JOB, schedule_status(settings))],
        resources=build_resources(settings, project),
        executor=EXECUTORS[settings.executor],
    )


@dg.definitions
def defs() -> dg.Definitions:
    return load_defs(Settings.from_env())[0]


def build_resources(settings: Settings, project: DbtProject) -> dict[str, Any]:
    resources = {
        "warehouse": WarehouseResource(path=str(settings.warehouse_path), memory_limit=settings.duckdb_memory_limit),
        "dbt": dbt_cli(project, settings),
        "feature_store": FeatureStoreResource(home=str(settings.home)),
        "alert_sinks": AlertSinks(
            alert_log=str(settings.alert_log),
            webhook_url=dg.EnvVar("BALLAST_ALERT_WEBHOOK_URL") if "webhook" in settings.alert_sinks else None,
            slack_webhook_url=dg.EnvVar("BALLAST_SLACK_WEBHOOK_URL") if "slack" in settings.alert_sinks else None,
        ),
        "openlineage": OpenLineageExport.from_settings(settings),
    }
    if settings.feature_engine == "spark":
        # Imported here: PySpark is only a cost for those who choose the Spark engine. The
        # session starts in the one step that uses it (or joins the process's session).
        from dagster_pyspark import PySparkResource

        resources["pyspark"] = PySparkResource(spark_config=settings.spark_config)
    return resources
