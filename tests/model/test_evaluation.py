"""Evaluation metrics and promotion gates on hand-made holdouts."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ballast.model.evaluation import BEATS_BASELINE, Gate, Thresholds, evaluate, fairness_gap, gates, with_baseline


def _holdout(n: int = 400, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    scores = np.clip(np.where(y, 0.7, 0.3) + rng.normal(0, 0.15, n), 0, 1)
    holdout = pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(n)],
            "churned": y,
            "home_country": np.where(np.arange(n) % 2, "US", "GB"),
        }
    )
    return scores, holdout


def test_metrics_calibration_and_segments() -> None:
    scores, holdout = _holdout()
    result = evaluate(scores, holdout, "home_country", Thresholds())
    assert 0.9 < result["roc_auc"] <= 1.0 and 0 < result["brier"] < 0.25
    assert sum(b["rows"] for b in result["calibration"]) == len(holdout)
    assert {s["segment"] for s in result["segments"]} == {"US", "GB"}
    assert all(s["customers"] == 200 for s in result["segments"])
    observed = {s["segment"]: s["positive_rate"] for s in result["segments"]}
    for segment, rate in observed.items():
        mask = holdout["home_country"] == segment
        assert rate == (scores[mask] >= 0.5).mean()


def test_gates_first_model_challenger_and_fairness() -> None:
    scores, holdout = _holdout()
    thresholds = Thresholds(min_segment_customers=100)
    candidate = evaluate(scores, holdout, "home_country", thresholds)
    first = {g.name: g for g in gates(candidate, None, thresholds)}
    assert first["min_quality"].passed and first["challenger"].passed and "no champion" in first["challenger"].note
    stronger = dict(candidate, roc_auc=candidate["roc_auc"] / 0.97)
    assert not {g.name: g for g in gates(candidate, stronger, thresholds)}["challenger"].passed
    assert {g.name: g for g in gates(candidate, candidate, thresholds)}["challenger"].passed

    biased = scores.copy()
    biased[holdout["home_country"].to_numpy() == "US"] = 0.9
    unfair = evaluate(biased, holdout, "home_country", thresholds)
    gap, segments = fairness_gap(unfair, thresholds)
    assert gap > 0.10 and sorted(segments) == ["GB", "US"]
    assert not {g.name: g for g in gates(unfair, None, thresholds)}["fairness"].passed
    # Segments below the size floor are not judged.
    small = Thresholds(min_segment_customers=1000)
    assert {g.name: g for g in gates(unfair, None, small)}["fairness"].passed


def _recency_holdout() -> pd.DataFrame:
    """Twelve holdout rows: recency mostly longer for churners, one tie across classes, two rows without a purchase."""
    return pd.DataFrame(
        {
            "customer_id": [f"C{i}" for i in range(12)],
            "churned": [False, False, False, True, False, True, True, False, True, True, False, True],
            "days_since_last_txn": pd.array([0, 2, 3, 3, 5, 9, 14, 20, 30, 45, None, None], dtype="Int32"),
        }
    )


def test_the_baseline_auc_is_the_roc_auc_of_recency_on_the_same_rows() -> None:
    holdout = _recency_holdout()
    y = holdout["churned"].astype(int)
    found = with_baseline({"roc_auc": 0.9}, holdout)
    # Customers without a purchase rank above every known recency: any larger number gives the same AUC.
    expected = roc_auc_score(y, holdout["days_since_last_txn"].astype("float64").fillna(10_000))
    assert found["baseline_roc_auc"] == pytest.approx(expected)
    assert found["baseline_margin"] == pytest.approx(0.9 - expected)
    assert found["baseline_rows_without_recency"] == 2
    known = holdout.dropna()
    assert with_baseline({"roc_auc": 0.9}, known)["baseline_roc_auc"] == pytest.approx(
        roc_auc_score(known["churned"].astype(int), known["days_since_last_txn"].astype(int))
    )
    # The same rows in another order give the same baseline: the score does not depend on row order.
    shuffled = holdout.sample(frac=1.0, random_state=3)
    assert with_baseline({"roc_auc": 0.9}, shuffled)["baseline_roc_auc"] == found["baseline_roc_auc"]


def _baseline_gate(candidate: dict, margin: float) -> Gate:
    return {g.name: g for g in gates(candidate, None, Thresholds(min_baseline_margin=margin))}[BEATS_BASELINE]


def test_beats_baseline_requires_a_margin_above_the_setting() -> None:
    scores, holdout = _holdout()
    # Recency that carries some of the signal: churners tend to have bought longer ago.
    recency = np.where(holdout["churned"], 20, 10) + np.random.default_rng(1).integers(0, 25, len(holdout))
    holdout = holdout.assign(days_since_last_txn=recency)
    candidate = with_baseline(evaluate(scores, holdout, "home_country", Thresholds()), holdout)
    margin = candidate["baseline_margin"]
    assert 0.01 < margin < 0.5
    assert margin == candidate["roc_auc"] - candidate["baseline_roc_auc"]
    passed = _baseline_gate(candidate, 0.01)
    assert passed.passed and passed.value == margin and passed.threshold == 0.01
    failed = _baseline_gate(candidate, margin + 0.001)
    assert not failed.passed
    for number in (candidate["roc_auc"], candidate["baseline_roc_auc"], margin):
        assert f"{abs(number):.4f}" in failed.note
    # The margin must exceed the setting, not merely reach it.
    assert not _baseline_gate(candidate, margin).passed
    # A candidate that ranks customers exactly as recency does has no margin and fails at the default setting.
    copycat = with_baseline(evaluate(recency / recency.max(), holdout, "home_country", Thresholds()), holdout)
    assert copycat["baseline_margin"] == pytest.approx(0.0)
    assert not _baseline_gate(copycat, Thresholds().min_baseline_margin).passed


def test_an_evaluation_without_a_baseline_fails_the_gate() -> None:
    scores, holdout = _holdout()
    gate = _baseline_gate(evaluate(scores, holdout, "home_country", Thresholds()), -1.0)
    assert not gate.passed and gate.value is None and "no recency baseline" in gate.note
