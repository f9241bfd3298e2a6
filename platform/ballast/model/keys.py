"""Asset keys of the model layer and the columns of its tables built in Python, named here once.

For the layer, monitoring, the CLI and the tests.
"""

import dagster as dg

from ballast.common.columns import Column

LABELS_KEY = dg.AssetKey(["model", "churn_labels"])
TRAINING_SET_KEY = dg.AssetKey(["model", "training_set"])
MODEL_KEY = dg.AssetKey(["model", "churn_model"])
EVALUATION_KEY = dg.AssetKey(["model", "churn_evaluation"])
CHAMPION_KEY = dg.AssetKey(["model", "champion"])
SCORES_KEY = dg.AssetKey(["model", "churn_scores"])

# Their warehouse tables: schema = layer, table = asset name.
LABELS_TABLE = ".".join(LABELS_KEY.path)
TRAINING_SET_TABLE = ".".join(TRAINING_SET_KEY.path)
SCORES_TABLE = ".".join(SCORES_KEY.path)

# Their columns besides the features (the training set's features take their types and
# descriptions from features/customer_daily_features: ballast.model.training_set).
TRAINING_SET_ENTITY_COLUMNS = (
    Column("customer_id", "VARCHAR", "The labelled customer, as in model.churn_labels."),
    Column(
        "snapshot_time",
        "TIMESTAMP",
        "End of the snapshot day (its next midnight, UTC): Feast joined the features knowable at this time.",
    ),
    Column("snapshot_date", "DATE", "The snapshot day D the label and the features describe."),
    Column("churned", "BOOLEAN", "The label: no transaction in the label window after D (model.churn_labels)."),
)
SCORES_COLUMNS = (
    Column("customer_id", "VARCHAR", "The scored customer, active on the latest feature day."),
    Column("feature_date", "DATE", "The latest feature day, whose features the champion scored."),
    Column("churn_score", "DOUBLE", "The champion's churn propensity for the customer, between 0 and 1."),
    Column("model_version", "VARCHAR", "The registry version of the champion that computed the score."),
)
