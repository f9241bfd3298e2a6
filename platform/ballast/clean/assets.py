"""Clean layer: typed, validated, deduplicated transactions and their quarantine (dbt)."""


import dagster as dg
from dagster_dbt import DbtProject

from ballast.quality import contract_checks
from ballast.settings import Settings
from ballast.transform import dbt_layer_assets


CLEAN_TRANSACTIONS = dg.AssetKey(["clean", "transactions"])


def build_defs(settings: Settings, project: DbtProject, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    return dg.Definitions(
        assets=[dbt_layer_assets(settings, project, "clean", partitions_def)],
        asset_checks=[contract_checks(settings, "clean_transactions.yml", CLEAN_TRANSACTIONS, blocking=True)],
    )
