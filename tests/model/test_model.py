"""The model layer: labels, the point-in-time training set, the trained model and its scores."""

import datetime as dt

import pytest
from sklearn.metrics import roc_auc_score

from ballast.common.metadata import readable_float
from ballast.features.feast_repo import RECENCY_FEATURE
from ballast.model import registry, training
from tests.conftest import Platform


def test_labels_follow_the_definition(platform: Platform) -> None:
    # Recompute the label from clean transactions for a sample of rows, independently of the asset's SQL.
    sample = platform.df(
        "select customer_id, snapshot_date, churned from model.churn_labels using sample 300 rows (reservoir, 5)"
    )
    txns = platform.df("select customer_id, event_date from clean.transactions")
    by_customer = txns.groupby("customer_id")["event_date"].apply(lambda s: sorted(s.dt.date))
    for row in sample.itertuples():
        d = row.snapshot_date.date()
        bought = any(d < e <= d + dt.timedelta(days=30) for e in by_customer[row.customer_id])
        assert row.churned == (not bought), row
    [(last_label, last_day)] = platform.query(
        "select max(snapshot_date), (select max(feature_date) from features.customer_daily_features) from model.churn_labels"
    )
    assert last_label == last_day - dt.timedelta(days=30)


def test_model_beats_auc_065_on_a_time_based_holdout(platform: Platform) -> None:
    version = registry.latest(platform.settings.registry_dir, training.MODEL_NAME)
    assert version is not None
    pipeline = registry.load(version)
    frame = platform.df("select * from model.training_set")
    train, holdout = training.time_split(frame, platform.settings.holdout_fraction)
    assert train["snapshot_date"].max() < holdout["snapshot_date"].min()
    auc = roc_auc_score(holdout["churned"].astype(int), training.score(pipeline, holdout))
    assert auc > 0.65
    assert abs(auc - version.metadata["metrics"]["roc_auc"]) < 1e-9


def test_scores_cover_the_latest_day_with_the_model_version(platform: Platform) -> None:
    [(rows, customers, day, versions, lo, hi)] = platform.query(
        "select count(*), count(distinct customer_id), max(feature_date), count(distinct model_version),"
        " min(churn_score), max(churn_score) from model.churn_scores"
    )
    [(active,)] = platform.query(
        "select count(*) from features.customer_daily_features where feature_date = ?", [platform.end]
    )
    assert rows == customers == active > 0
    assert day.isoformat() == platform.end.isoformat() and versions == 1 and 0 <= lo <= hi <= 1


def test_training_is_reproducible(platform: Platform) -> None:
    version = registry.latest(platform.settings.registry_dir, training.MODEL_NAME)
    frame = platform.df("select * from model.training_set order by snapshot_date, customer_id")
    again = training.train(frame, platform.settings.holdout_fraction)
    assert again.metrics == version.metadata["metrics"]


def test_the_evaluation_scores_the_recency_baseline_on_the_models_holdout(platform: Platform) -> None:
    version = registry.latest(platform.settings.registry_dir, training.MODEL_NAME)
    found = version.metadata["evaluation"]
    frame = platform.df("select * from model.training_set")
    _, holdout = training.time_split(frame, platform.settings.holdout_fraction)
    assert holdout[RECENCY_FEATURE].notna().all() and found["baseline_rows_without_recency"] == 0
    baseline = roc_auc_score(holdout["churned"].astype(int), holdout[RECENCY_FEATURE])
    assert found["baseline_roc_auc"] == pytest.approx(baseline, abs=1e-12)
    assert found["baseline_margin"] == pytest.approx(found["roc_auc"] - baseline, abs=1e-12)
    # The demo's data carries churn signal beyond recency: the model clears the default margin.
    assert found["baseline_margin"] > platform.settings.min_baseline_margin
    shown = platform.result.asset_materializations_for_node("model__churn_evaluation")[0].metadata
    # The registry keeps the exact figures; the UI shows them rounded for reading.
    assert shown["baseline_roc_auc"].value == readable_float(found["baseline_roc_auc"])
    assert shown["baseline_margin"].value == readable_float(found["baseline_margin"])
