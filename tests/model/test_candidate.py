"""The promotion gates' check descriptions state the thresholds a deployment is configured with."""

from pathlib import Path

from ballast.model.candidate import promotion_gates_check
from ballast.model.evaluation import BEATS_BASELINE, CHALLENGER, FAIRNESS, MIN_QUALITY
from tests.conftest import make_settings


def test_gate_descriptions_show_the_configured_thresholds(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        min_auc=0.75,
        champion_ratio=0.95,
        max_fairness_gap=0.2,
        min_segment_customers=80,
        min_baseline_margin=0.03,
    )
    specs = {spec.name: spec for spec in promotion_gates_check(settings).check_specs}
    assert list(specs) == [MIN_QUALITY, BEATS_BASELINE, CHALLENGER, FAIRNESS]
    assert all(spec.blocking for spec in specs.values())
    assert "BALLAST_MIN_AUC (0.75)" in specs[MIN_QUALITY].description
    assert "BALLAST_MIN_BASELINE_MARGIN (0.03)" in specs[BEATS_BASELINE].description
    assert "days_since_last_txn" in specs[BEATS_BASELINE].description
    assert "BALLAST_CHAMPION_RATIO (0.95)" in specs[CHALLENGER].description
    assert "(80) customers" in specs[FAIRNESS].description
    assert "BALLAST_MAX_FAIRNESS_GAP (0.2)" in specs[FAIRNESS].description
