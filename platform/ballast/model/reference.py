"""The reference for drift: profiles of the end of a model's training window, kept beside the model (no Dagster here)."""

import pandas as pd

from ballast import profiling
from ballast.common.atomic import write_atomic
from ballast.model import registry, training
from ballast.settings import Settings

REFERENCE_FEATURES = "reference_features.whylogs"
REFERENCE_SCORES = "reference_scores.whylogs"
SCORE = "churn_score"


def write_reference(settings: Settings, version: registry.ModelVersion, train_rows: pd.DataFrame) -> dict:
    """Profiles of the end of a model's training window (features and its own scores), stored beside the model.

    Only the last `reference_days` of training snapshots: the earliest days of the data
    have their longest feature windows still filling up, which no later day resembles.
    """
    engine = profiling.WhylogsEngine()
    newest = train_rows[training.SNAPSHOT].max()
    train_rows = train_rows[train_rows[training.SNAPSHOT] > newest - pd.Timedelta(days=settings.reference_days)]
    write_atomic(version.path / REFERENCE_FEATURES, engine.profile(train_rows[list(training.FEATURES)]))
    scores = training.score(registry.load(version), train_rows)
    write_atomic(version.path / REFERENCE_SCORES, engine.profile(pd.DataFrame({SCORE: scores})))
    return {
        "engine": engine.name,
        "rows": len(train_rows),
        "window": [str(train_rows[training.SNAPSHOT].min().date()), str(train_rows[training.SNAPSHOT].max().date())],
        "files": [REFERENCE_FEATURES, REFERENCE_SCORES],
    }
