"""Churn model training and evaluation on a point-in-time training set (no Dagster here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from ballast.features.feast_repo import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES

__all__ = ["CATEGORICAL_FEATURES", "FEATURES", "NUMERIC_FEATURES"]

MODEL_NAME = "churn_model"
LABEL = "churned"
SNAPSHOT = "snapshot_date"


class TrainingError(ValueError):
    """The training set cannot produce a model; the message says what is missing."""


@dataclass(frozen=True)
class TrainedModel:
    pipeline: Pipeline
    metrics: dict[str, float]
    train_dates: tuple[str, str]
    holdout_dates: tuple[str, str]


def time_split(frame: pd.DataFrame, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Holdout = the latest snapshot dates, so the model is judged on a future it never saw."""
    dates = np.sort(frame[SNAPSHOT].unique())
    if len(dates) < 2:
        raise TrainingError(f"the training set has {len(dates)} snapshot date(s); a time-based holdout needs 2 or more")
    n_holdout = min(len(dates) - 1, max(1, round(len(dates) * holdout_fraction)))
    first_holdout = dates[-n_holdout]
    return frame[frame[SNAPSHOT] < first_holdout], frame[frame[SNAPSHOT] >= first_holdout]


def _pipeline(seed: int) -> Pipeline:
    encode = ColumnTransformer(
        [
            ("numeric", "passthrough", list(NUMERIC_FEATURES)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL_FEATURES),
            ),
        ]
    )
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, random_state=seed)
    return Pipeline([("encode", encode), ("model", model)])


def evaluate(pipeline: Pipeline, holdout: pd.DataFrame) -> dict[str, float]:
    y = holdout[LABEL].astype(int).to_numpy()
    if len(np.unique(y)) < 2:
        raise TrainingError("the holdout has only one class; more days of data are needed to evaluate")
    p = pipeline.predict_proba(holdout[list(FEATURES)])[:, 1]
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "holdout_positive_rate": float(y.mean()),
        "holdout_rows": len(y),
    }


def train(frame: pd.DataFrame, holdout_fraction: float, seed: int = 0) -> TrainedModel:
    missing = [c for c in (*FEATURES, LABEL, SNAPSHOT) if c not in frame.columns]
    if missing:
        raise TrainingError(f"the training set lacks column(s): {', '.join(missing)}")
    train_rows, holdout = time_split(frame, holdout_fraction)
    if train_rows[LABEL].nunique() < 2:
        raise TrainingError("the training rows have only one class; more days of data are needed")
    pipeline = _pipeline(seed).fit(train_rows[list(FEATURES)], train_rows[LABEL].astype(int))
    metrics = evaluate(pipeline, holdout) | {"train_rows": len(train_rows)}
    return TrainedModel(
        pipeline=pipeline,
        metrics=metrics,
        train_dates=(str(train_rows[SNAPSHOT].min()), str(train_rows[SNAPSHOT].max())),
        holdout_dates=(str(holdout[SNAPSHOT].min()), str(holdout[SNAPSHOT].max())),
    )


def score(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    return pipeline.predict_proba(frame[list(FEATURES)])[:, 1]
