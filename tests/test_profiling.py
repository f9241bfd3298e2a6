"""Drift statistics from whylogs profiles: no drift on the same distribution, clear drift on a shifted one."""

import numpy as np
import pandas as pd
import pytest

from ballast.profiling import WhylogsEngine, drift_share, psi


def _frame(n: int, seed: int, shift: float = 0.0, mix=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "amount": rng.lognormal(3.0 + shift, 0.5, n),
            "count": rng.poisson(4 + 4 * shift, n).astype("int32"),
            "channel": rng.choice(["web", "store", "mobile"], n, p=list(mix)),
        }
    )


def test_the_same_distribution_does_not_drift_and_a_shift_does() -> None:
    engine = WhylogsEngine()
    reference = engine.profile(_frame(20_000, 1))
    same = engine.compare(engine.profile(_frame(20_000, 2)), reference, ["amount", "count"], ["channel"])
    assert {r.column for r in same} == {"amount", "count", "channel"}
    assert all(r.psi < 0.02 for r in same) and drift_share(same) == 0.0
    shifted = engine.compare(
        engine.profile(_frame(20_000, 3, shift=0.5, mix=(0.2, 0.3, 0.5))), reference, ["amount", "count"], ["channel"]
    )
    by_column = {r.column: r for r in shifted}
    assert by_column["amount"].psi > 0.2 and by_column["amount"].p_value < 1e-6
    assert by_column["channel"].psi > 0.2 and by_column["channel"].p_value < 1e-6
    assert drift_share(shifted) == 1.0


def test_psi_of_known_shares() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    assert abs(psi([0.6, 0.4], [0.5, 0.5]) - (0.1 * np.log(1.2) - 0.1 * np.log(0.8))) < 1e-12


def test_summary_has_counts_nulls_mean_and_quantiles() -> None:
    engine = WhylogsEngine()
    frame = _frame(1000, 4)
    frame.loc[:9, "amount"] = np.nan
    summary = engine.summary(engine.profile(frame)).set_index("column")
    assert summary.loc["amount", "count"] == 1000 and summary.loc["amount", "nulls"] == 10
    assert abs(summary.loc["amount", "mean"] - frame["amount"].mean()) < 1e-9
    assert {"q25", "median", "q75"} <= set(summary.columns)


def _days(days: int, rows: int) -> pd.DataFrame:
    frames = []
    for i in range(days):
        day = _frame(rows, 10 + i, shift=0.1 * i)
        day.insert(0, "feature_date", pd.Timestamp("2025-03-01") + pd.Timedelta(days=i))
        day["steady"] = np.linspace(1.0, 2.0, rows) * (i + 1)
        frames.append(day)
    frame = pd.concat(frames, ignore_index=True)
    frame.loc[5, "amount"] = np.nan
    frame.loc[rows + 2, "amount"] = np.inf
    frame.loc[2 * rows + 1, "channel"] = None
    return frame


def _metrics(profile: bytes, exact: bool) -> pd.DataFrame:
    """Every metric of a profile; with `exact` False, without the quantile sketch's, which whylogs samples at random."""
    from whylogs.core import DatasetProfileView

    table = DatasetProfileView.deserialize(profile).to_pandas().sort_index().sort_index(axis=1)
    return (
        table
        if exact
        else table[[c for c in table.columns if not c.startswith(("distribution/q_", "distribution/median"))]]
    )


@pytest.mark.parametrize(
    ("rows", "exact"),
    # Under the sketch sizes every metric is exact; over them (cardinality's sketch leaves
    # its exact mode) all but the sampled quantiles must still be equal.
    [(60, True), (5000, False)],
)
def test_one_pass_over_the_window_gives_each_days_own_profile(rows: int, exact: bool) -> None:
    engine = WhylogsEngine()
    frame = _days(3, rows)
    profiles = engine.profile_by_day(frame, "feature_date")
    assert [d.isoformat() for d in profiles] == ["2025-03-01", "2025-03-02", "2025-03-03"]
    for day, part in frame.groupby(frame["feature_date"].dt.date):
        want = _metrics(engine.profile(part.drop(columns="feature_date")), exact)
        got = _metrics(profiles[day].profile, exact)
        assert list(got.index) == ["amount", "channel", "count", "steady"]
        assert exact or got["cardinality/est"].max() > 1000
        pd.testing.assert_frame_equal(got, want)
        assert profiles[day].counts == dict.fromkeys(["amount", "count", "channel", "steady"], len(part))
    assert engine.profile_by_day(frame.iloc[:0], "feature_date") == {}


def test_drift_of_each_day_against_one_reference_equals_comparing_day_by_day() -> None:
    engine = WhylogsEngine()
    reference = engine.profile(_frame(500, 1))
    days = {day: found.profile for day, found in engine.profile_by_day(_days(3, 60), "feature_date").items()}
    got = engine.compare_days(days, reference, ["amount", "count"], ["channel"])
    assert got == {day: engine.compare(blob, reference, ["amount", "count"], ["channel"]) for day, blob in days.items()}


def test_profiles_hold_the_metrics_of_whylogs_default_profile() -> None:
    # Profiles written before (and reference profiles in the registry) used whylogs' default
    # resolver: the one Ballast uses must give every metric the same value.
    import whylogs

    frame = _days(1, 60).drop(columns="feature_date")
    want = _metrics(whylogs.log(frame).view().serialize(), exact=True)
    got = _metrics(WhylogsEngine().profile(frame), exact=True)
    assert list(got.index) == ["amount", "channel", "count", "steady"]
    pd.testing.assert_frame_equal(got, want)
