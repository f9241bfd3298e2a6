"""Features layer: per-customer daily feature snapshots (dbt)."""


import dagster as dg
from dagster_dbt import DbtProject

from ballast.quality import contract_checks
from ballast.settings import Settings
from ballast.transform import dbt_layer_assets


CUSTOMER_DAILY_FEATURES = dg.AssetKey(["features", "customer_daily_features"])


def build_defs(settings: Settings, project: DbtProject, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=[dbt_layer_assets(settings, project, "features", partitions_def)],
        asset_checks=[contract_checks(settings, "customer_daily_features.yml", CUSTOMER_DAILY_FEATURES, blocking=True)],
    )
