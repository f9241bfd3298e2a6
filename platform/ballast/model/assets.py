"""Model layer: labels, the point-in-time training set, candidate, evaluation, promotion gates, champion and scores."""

import dagster as dg
from dagster_dbt import DbtProject

from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE
from ballast.model.candidate import churn_evaluation_asset, churn_model_asset, promotion_gates_check
from ballast.model.champion import champion_asset, churn_scores_asset
from ballast.model.training_set import labels_metadata, training_set_asset, training_set_columns
from ballast.settings import Settings
from ballast.transform import dbt_layer_assets, dbt_model_columns


def build_defs(settings: Settings, project: DbtProject) -> dg.Definitions:
    return dg.Definitions(
        assets=[
            # model/churn_labels: the dbt model models/model/churn_labels.sql, rebuilt whole.
            dbt_layer_assets(settings, project, "model", None, labels_metadata),
            training_set_asset(
                settings, training_set_columns(dbt_model_columns(project, CUSTOMER_DAILY_FEATURES_TABLE))
            ),
            churn_model_asset(settings),
            churn_evaluation_asset(settings),
            champion_asset(settings),
            churn_scores_asset(settings),
        ],
        asset_checks=[promotion_gates_check(settings)],
    )
