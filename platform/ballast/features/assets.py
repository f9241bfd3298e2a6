"""Features layer: per-customer daily feature snapshots (dbt)."""


import dagster as dg
from dagster_dbt import DbtProject

from ballast.settings import Settings
from ballast.transform import dbt_layer_assets


def build_defs(settings: Settings, project: DbtProject, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(assets=[dbt_layer_assets(settings, project, "features", partitions_def)])
