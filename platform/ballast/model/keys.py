"""Asset keys of the model layer, named here once for the layer, monitoring, the CLI and the tests."""

import dagster as dg

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
