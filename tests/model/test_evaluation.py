"""Evaluation metrics and promotion gates on hand-made holdouts."""

import numpy as np
import pandas as pd

from ballast.model.evaluation import Thresholds, evaluate, fairness_gap, gates


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
