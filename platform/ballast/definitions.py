"""The Ballast code location: every layer's definitions merged, plus cross-layer policy."""


import dagster as dg

from ballast.clean import assets as clean_assets
from ballast.features import assets as features_assets
from ballast.model import assets as model_assets
from ballast.raw import assets as raw_assets
from ballast.resources import build_resources, dbt_project, ensure_dbt_manifest
from ballast.settings import Settings

REFRESH_JOB = "refresh_platform_job"


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat())


def build_defs(settings: Settings) -> dg.Definitions:
    project = dbt_project(settings)
    ensure_dbt_manifest(project, settings)
    partitions_def = daily_partitions(settings)
    refresh = dg.define_asset_job(
        REFRESH_JOB,
        selection=dg.AssetSelection.all(),
        description="Materialize every layer, raw to model, for a range of daily partitions.",
        partitions_def=partitions_def,
    )
    return dg.Definitions.merge(
        raw_assets.build_defs(settings, partitions_def),
        clean_assets.build_defs(settings, project, partitions_def),
        features_assets.build_defs(settings, project, partitions_def),
        model_assets.build_defs(settings),
        dg.Definitions(jobs=[refresh], resources=build_resources(settings, project)),
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_defs(Settings.from_env())
