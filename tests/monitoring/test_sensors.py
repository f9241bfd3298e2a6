"""The retraining decision, tick by tick: one run per episode, a cooldown, episodes that close."""

import datetime as dt
from types import SimpleNamespace

import dagster as dg

from ballast.monitoring.assets import DRIFT_REPORT, FEATURE_PSI_CHECK
from ballast.monitoring.sensors import retraining_decision

NOW = dt.datetime(2026, 1, 10, 12, tzinfo=dt.UTC)
COOLDOWN = dt.timedelta(hours=24)


def _record(record_id: int, passed: bool, champion: str = "v0001", first: str = "2025-06-01"):
    evaluation = dg.AssetCheckEvaluation(
        asset_key=DRIFT_REPORT,
        check_name=FEATURE_PSI_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"champion_version": champion, "first_partition_over": "" if passed else first},
    )
    return SimpleNamespace(
        id=record_id, event=SimpleNamespace(dagster_event=SimpleNamespace(event_specific_data=evaluation))
    )


def test_one_request_per_episode_and_a_new_one_after_it_closes() -> None:
    request, _, cursor = retraining_decision(_record(1, False), {}, NOW, COOLDOWN)
    assert request.run_key == "retrain:v0001:2025-06-01"
    # Drift continues on later partitions: same champion, same episode, no new run.
    again, reason, cursor = retraining_decision(_record(2, False, first="2025-06-02"), cursor, NOW, COOLDOWN)
    assert again is None and "already handled" in reason
    # Drift goes away, then comes back two days later: a new episode.
    none, reason, cursor = retraining_decision(_record(3, True), cursor, NOW, COOLDOWN)
    assert none is None and "episode closed" in reason and cursor["episode"] is None
    later = NOW + dt.timedelta(days=2)
    request, _, cursor = retraining_decision(_record(4, False, first="2025-06-20"), cursor, later, COOLDOWN)
    assert request.run_key == "retrain:v0001:2025-06-20"


def test_the_cooldown_delays_a_new_episode_without_losing_it() -> None:
    _, _, cursor = retraining_decision(_record(1, False), {}, NOW, COOLDOWN)
    # Retraining promoted v0002 and its own drift check fails an hour later: wait for the cooldown.
    soon = NOW + dt.timedelta(hours=1)
    request, reason, held = retraining_decision(_record(2, False, champion="v0002"), cursor, soon, COOLDOWN)
    assert request is None and "cooldown" in reason and held.get("seen") == 1
    after = NOW + dt.timedelta(hours=25)
    request, _, _ = retraining_decision(_record(2, False, champion="v0002"), held, after, COOLDOWN)
    assert request.run_key == "retrain:v0002:2025-06-01"


def test_nothing_without_a_new_evaluation() -> None:
    request, reason, _ = retraining_decision(None, {}, NOW, COOLDOWN)
    assert request is None and reason == "the drift check has not run yet"
    _, _, cursor = retraining_decision(_record(5, False), {}, NOW, COOLDOWN)
    request, reason, _ = retraining_decision(_record(5, False), cursor, NOW, COOLDOWN)
    assert request is None and reason == "no new drift evaluation"
