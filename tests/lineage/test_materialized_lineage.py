"""Column lineage is materialization metadata too (where Dagster's own lineage views read it), equal to the definition's."""

from ballast.common.metadata import COLUMN_LINEAGE
from ballast.definitions import build_defs
from ballast.lineage.export import asset_specs


def _deps(value) -> dict:
    lineage = getattr(value, "value", value)
    return {
        column: sorted((d.asset_key.to_user_string(), d.column_name) for d in deps)
        for column, deps in lineage.deps_by_column.items()
    }


def test_every_materialization_carries_the_column_lineage_of_its_definition(platform) -> None:
    specs = asset_specs(build_defs(platform.settings).get_repository_def())
    checked = set()
    for event in platform.result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        declared = specs[materialization.asset_key].metadata.get(COLUMN_LINEAGE)
        if declared is None:
            continue
        assert COLUMN_LINEAGE in materialization.metadata, materialization.asset_key
        assert _deps(materialization.metadata[COLUMN_LINEAGE]) == _deps(declared), materialization.asset_key
        checked.add(materialization.asset_key.to_user_string())
    # The dbt models and the Python tables that declare lineage, on the DuckDB engine.
    assert checked == {
        "clean/transactions",
        "clean/transactions_quarantine",
        "features/customer_daily_features",
        "features/customer_daily_features_parquet",
        "model/churn_labels",
        "model/training_set",
        "model/churn_scores",
    }
