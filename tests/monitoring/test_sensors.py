"""The monitoring sensors: the retraining decision tick by tick (one run per episode, a cooldown, episodes
that close), and both sensors on a real Dagster instance."""

import datetime as dt
import json
from pathlib import Path
from types import SimpleNamespace

import dagster as dg

from ballast.monitoring.assets import DRIFT_REPORT, FEATURE_PSI_CHECK
from ballast.monitoring.sensors import (
    ALERT_SENSOR,
    RETRAIN_JOB,
    RETRAIN_SENSOR,
    AlertSinks,
    build_sensors,
    retraining_decision,
)
from ballast.runs import instance
from tests.conftest import make_settings

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


class _DriftRun(dg.Config):
    crash: bool = False


def _defs(settings) -> dg.Definitions:
    @dg.asset(key=DRIFT_REPORT, check_specs=[dg.AssetCheckSpec(FEATURE_PSI_CHECK, asset=DRIFT_REPORT)])
    def drift_report(config: _DriftRun):
        """Stands in for the drift report: fails its feature_psi check, or crashes before the check reports."""
        if config.crash:
            raise dg.Failure("crashed before the check reported")
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name=FEATURE_PSI_CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description="PSI above 0.2",
            metadata={"champion_version": "v0001", "first_partition_over": "2025-06-01", "window": "2025-06"},
        )

    return dg.Definitions(
        assets=[drift_report],
        jobs=[dg.define_asset_job(RETRAIN_JOB, selection=[DRIFT_REPORT])],
        sensors=build_sensors(settings),
        resources={"alert_sinks": AlertSinks(alert_log=str(settings.alert_log))},
    )


def test_sensors_on_a_real_instance_skip_checks_that_never_reported_and_alert_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    defs = _defs(settings)
    job = defs.resolve_job_def(RETRAIN_JOB)
    retrain, alert = defs.resolve_sensor_def(RETRAIN_SENSOR), defs.resolve_sensor_def(ALERT_SENSOR)
    cursors: dict[str, str | None] = {RETRAIN_SENSOR: None, ALERT_SENSOR: None}
    dagster_instance = instance(settings)

    def tick(sensor: dg.SensorDefinition):
        context = dg.build_sensor_context(
            instance=dagster_instance, cursor=cursors[sensor.name], definitions=defs, resources=defs.resources
        )
        result = sensor.evaluate_tick(context)
        cursors[sensor.name] = result.cursor
        return result

    def run(crash: bool) -> None:
        config = {"ops": {"monitoring__drift_report": {"config": {"crash": crash}}}}
        job.execute_in_process(run_config=config, instance=dagster_instance, raise_on_error=False)

    try:
        run(crash=False)
        [request] = tick(retrain).run_requests
        assert request.run_key == "retrain:v0001:2025-06-01"
        assert tick(alert).skip_message == "1 new failed check(s); 1 delivered, 0 waiting for a retry"
        # A run that dies before the check reports leaves it planned, never evaluated.
        run(crash=True)
        assert tick(retrain).skip_message == "no new drift evaluation"
        assert tick(alert).skip_message == "0 new failed check(s); 0 delivered, 0 waiting for a retry"
        # The same check failing again on the same partition is not news.
        run(crash=False)
        assert tick(alert).skip_message == "1 new failed check(s); 0 delivered, 0 waiting for a retry"
    finally:
        dagster_instance.dispose()
    [line] = settings.alert_log.read_text().splitlines()
    assert json.loads(line)["key"] == "monitoring/drift_report:feature_psi@2025-06"
