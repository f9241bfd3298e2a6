"""Model evaluation and promotion gates on a holdout (no Dagster here).

A candidate and the current champion are scored on the same holdout, next to a naive
recency baseline; the gates compare them with thresholds from settings.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from ballast.features.feast_repo import RECENCY_FEATURE
from ballast.model.training import LABEL
from ballast.settings import Settings

CALIBRATION_BINS = 10
# The promotion gates, in the order they are reported.
MIN_QUALITY = "min_quality"
BEATS_BASELINE = "beats_baseline"
CHALLENGER = "challenger"
FAIRNESS = "fairness"
BASELINE_RULE = (
    f"churn score = {RECENCY_FEATURE} (the longer since the last purchase, the likelier the churn);"
    " no purchase on record scores one day above the holdout's longest recency"
)


@dataclass(frozen=True)
class Thresholds:
    """The gates' thresholds; by default the settings' defaults (a deployment's come from its Settings)."""

    min_auc: float = Settings.min_auc
    champion_ratio: float = Settings.champion_ratio
    max_fairness_gap: float = Settings.max_fairness_gap
    min_baseline_margin: float = Settings.min_baseline_margin
    min_segment_customers: int = Settings.min_segment_customers
    decision_threshold: float = 0.5


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    value: float | None
    threshold: float
    note: str

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(scores: np.ndarray, holdout: pd.DataFrame, segment: str, thresholds: Thresholds) -> dict:
    """Metrics of `scores` on `holdout`: ROC AUC, PR AUC, Brier, a calibration table and per-segment positive rates."""
    y = holdout[LABEL].astype(int).to_numpy()
    bins = np.minimum((scores * CALIBRATION_BINS).astype(int), CALIBRATION_BINS - 1)
    frame = pd.DataFrame({"bin": bins, "score": scores, "label": y})
    calibration = (
        frame.groupby("bin")
        .agg(rows=("label", "size"), mean_score=("score", "mean"), observed_rate=("label", "mean"))
        .reset_index()
    )
    positive = scores >= thresholds.decision_threshold
    by_segment = (
        pd.DataFrame(
            {
                "segment": holdout[segment].fillna("(none)").astype(str).to_numpy(),
                "customer_id": holdout["customer_id"].to_numpy(),
                "positive": positive,
            }
        )
        .groupby("segment")
        .agg(customers=("customer_id", "nunique"), rows=("positive", "size"), positive_rate=("positive", "mean"))
        .reset_index()
    )
    fpr, tpr = _thinned_roc(y, scores)
    return {
        "roc_auc": float(roc_auc_score(y, scores)),
        "pr_auc": float(average_precision_score(y, scores)),
        "brier": float(brier_score_loss(y, scores)),
        "holdout_rows": len(y),
        "holdout_positive_rate": float(y.mean()),
        "calibration": calibration.to_dict(orient="records"),
        "segments": by_segment.to_dict(orient="records"),
        "segment_column": segment,
        "roc_curve": {"fpr": fpr, "tpr": tpr},
    }


def _thinned_roc(y: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[float]]:
    # A thinned curve is enough to draw; the full one has a point per distinct score.
    fpr, tpr, _ = roc_curve(y, scores)
    step = max(1, len(fpr) // 200)
    return fpr[::step].tolist(), tpr[::step].tolist()


def recency_scores(holdout: pd.DataFrame) -> np.ndarray:
    """The naive baseline's churn score per holdout row: days since the last purchase.

    A row without a recency (no purchase on record) ranks above every known one, at the
    holdout's longest recency + 1, so it is scored the same way on every run.
    """
    recency = holdout[RECENCY_FEATURE].to_numpy(dtype="float64", na_value=np.nan)
    known = ~np.isnan(recency)
    never = recency[known].max() + 1.0 if known.any() else 0.0
    return np.where(known, recency, never)


def with_baseline(found: dict, holdout: pd.DataFrame) -> dict:
    """`found` (an evaluation on `holdout`) with the recency baseline's ROC AUC on the same rows and the margin over it."""
    y = holdout[LABEL].astype(int).to_numpy()
    scores = recency_scores(holdout)
    baseline_auc = float(roc_auc_score(y, scores))
    fpr, tpr = _thinned_roc(y, scores)
    return found | {
        "baseline_rule": BASELINE_RULE,
        "baseline_roc_auc": baseline_auc,
        "baseline_margin": found["roc_auc"] - baseline_auc,
        "baseline_rows_without_recency": int(holdout[RECENCY_FEATURE].isna().sum()),
        "baseline_roc_curve": {"fpr": fpr, "tpr": tpr},
    }


def fairness_gap(evaluation: dict, thresholds: Thresholds) -> tuple[float | None, list[str]]:
    """Largest difference in positive-prediction rate between segments large enough to judge, and those segments."""
    eligible = [s for s in evaluation["segments"] if s["customers"] >= thresholds.min_segment_customers]
    if len(eligible) < 2:
        return None, [s["segment"] for s in eligible]
    rates = [s["positive_rate"] for s in eligible]
    return float(max(rates) - min(rates)), [s["segment"] for s in eligible]


def beats_baseline(candidate: dict, thresholds: Thresholds) -> Gate:
    """The candidate's ROC AUC must exceed the recency baseline's on the same holdout by more than the margin."""
    limit = thresholds.min_baseline_margin
    if "baseline_margin" not in candidate:
        # An evaluation written before the baseline existed proves nothing: fail, and say how to fix it.
        return Gate(BEATS_BASELINE, False, None, limit, "the evaluation has no recency baseline; materialize it again")
    auc, baseline, margin = candidate["roc_auc"], candidate["baseline_roc_auc"], candidate["baseline_margin"]
    return Gate(
        BEATS_BASELINE,
        margin > limit,
        margin,
        limit,
        f"candidate AUC {auc:.4f} − recency baseline AUC {baseline:.4f} = margin {margin:+.4f}"
        f" ({'above' if margin > limit else 'not above'} the required {limit:g})",
    )


def gates(candidate: dict, champion: dict | None, thresholds: Thresholds) -> list[Gate]:
    """The promotion gates: minimum quality, beats the naive baseline, not too far below the champion, fairness."""
    auc = candidate["roc_auc"]
    results = [
        Gate(
            MIN_QUALITY,
            auc >= thresholds.min_auc,
            auc,
            thresholds.min_auc,
            f"holdout ROC AUC {auc:.4f} (minimum {thresholds.min_auc})",
        ),
        beats_baseline(candidate, thresholds),
    ]
    if champion is None:
        results.append(
            Gate(CHALLENGER, True, None, thresholds.champion_ratio, "no champion yet: the first model passes")
        )
    else:
        floor = thresholds.champion_ratio * champion["roc_auc"]
        results.append(
            Gate(
                CHALLENGER,
                auc >= floor,
                auc,
                floor,
                f"candidate AUC {auc:.4f} vs {thresholds.champion_ratio} × champion AUC {champion['roc_auc']:.4f} = {floor:.4f}",
            )
        )
    gap, segments = fairness_gap(candidate, thresholds)
    if gap is None:
        results.append(
            Gate(
                FAIRNESS,
                True,
                None,
                thresholds.max_fairness_gap,
                f"fewer than two segments with at least {thresholds.min_segment_customers} customers: nothing to compare",
            )
        )
    else:
        results.append(
            Gate(
                FAIRNESS,
                gap <= thresholds.max_fairness_gap,
                gap,
                thresholds.max_fairness_gap,
                f"largest positive-rate gap {gap:.4f} across {', '.join(segments)}",
            )
        )
    return results


def plot_png(candidate: dict, champion: dict | None, labels: tuple[str, str]) -> bytes:
    """ROC curves and calibration of candidate (and champion) as one PNG, for the UI."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (roc, cal) = plt.subplots(1, 2, figsize=(9, 4), dpi=80)
    for evaluation, label, style in ((candidate, labels[0], "-"), (champion, labels[1], "--")):
        if evaluation is None:
            continue
        roc.plot(
            evaluation["roc_curve"]["fpr"],
            evaluation["roc_curve"]["tpr"],
            style,
            label=f"{label} (AUC {evaluation['roc_auc']:.3f})",
        )
        table = evaluation["calibration"]
        cal.plot([b["mean_score"] for b in table], [b["observed_rate"] for b in table], style + "o", label=label)
    if "baseline_roc_curve" in candidate:
        curve = candidate["baseline_roc_curve"]
        roc.plot(curve["fpr"], curve["tpr"], "-.", label=f"recency baseline (AUC {candidate['baseline_roc_auc']:.3f})")
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set(title="ROC on the holdout", xlabel="false positive rate", ylabel="true positive rate")
    cal.plot([0, 1], [0, 1], ":", color="grey")
    cal.set(title="Calibration", xlabel="mean predicted churn", ylabel="observed churn rate")
    roc.legend(loc="lower right")
    cal.legend(loc="upper left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
