"""Monitoring sensors: retraining on ERROR drift (once per episode), alerts for every failed check and every failed run."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg

from ballast.common.automation import sensor_status
from ballast.model.keys import CHAMPION_KEY, EVALUATION_KEY, MODEL_KEY, TRAINING_SET_KEY
from ballast.monitoring.alerts import (
    SUMMARY_CHARS,
    Alert,
    JsonlSink,
    Outbox,
    RunFailureAlert,
    SlackSink,
    WebhookSink,
    error_line,
)
from ballast.monitoring.assets import DRIFT_REPORT, FEATURE_PSI_CHECK
from ballast.monitoring.check_executions import evaluated, executions_after
from ballast.monitoring.freshness import EXPECTED_PARTITION_KEY
from ballast.settings import Settings

RETRAIN_JOB = "retrain_churn_model_job"
RETRAIN_SENSOR = "drift_error_retraining_sensor"
ALERT_SENSOR = "check_failure_alert_sensor"
RUN_ALERT_SENSOR = "run_failure_alert_sensor"
PAGE = 100
DRIFT_ERROR = dg.AssetCheckKey(DRIFT_REPORT, FEATURE_PSI_CHECK)


class AlertSinks(dg.ConfigurableResource):
    """Where check-failure and run-failure alerts go. Webhook addresses are secrets: set them with dagster.EnvVar."""

    alert_log: str
    webhook_url: str | None = None
    slack_webhook_url: str | None = None

    def sinks(self) -> list:
        found = [JsonlSink(Path(self.alert_log))]
        if self.webhook_url:
            found.append(WebhookSink(self.webhook_url))
        if self.slack_webhook_url:
            found.append(SlackSink(self.slack_webhook_url))
        return found


def retrain_job():
    return dg.define_asset_job(
        RETRAIN_JOB,
        selection=dg.AssetSelection.assets(TRAINING_SET_KEY, MODEL_KEY, EVALUATION_KEY, CHAMPION_KEY),
        description="Retrain the churn model: training set, candidate, evaluation, promotion gates, champion.",
    )


def retraining_decision(
    record, cursor: dict, now: dt.datetime, cooldown: dt.timedelta
) -> tuple[dg.RunRequest | None, str, dict]:
    """What the retraining sensor does with the latest feature_psi evaluation (pure: no instance access)."""
    if record is None or record.event is None:
        return None, "the drift check has not run yet", cursor
    if record.id == cursor.get("seen"):
        return None, "no new drift evaluation", cursor
    evaluation = record.event.dagster_event.event_specific_data
    if evaluation.passed:
        closed = cursor.get("episode")
        return (
            None,
            "drift within thresholds" + (" (episode closed)" if closed else ""),
            {**cursor, "seen": record.id, "episode": None},
        )
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    champion = metadata.get("champion_version", "none")
    episode = cursor.get("episode")
    if episode and episode["champion"] == champion:
        return (
            None,
            f"drift episode from {episode['start']} already handled (run key {episode['run_key']})",
            {**cursor, "seen": record.id},
        )
    last = cursor.get("last_request_at")
    if last and now - dt.datetime.fromisoformat(last) < cooldown:
        # Leave the evaluation unseen: it is reconsidered once the cooldown is over.
        return None, f"ERROR drift, but the last retraining was requested at {last} (cooldown {cooldown})", cursor
    start = metadata.get("first_partition_over") or "unknown"
    run_key = f"retrain:{champion}:{start}"
    request = dg.RunRequest(
        run_key=run_key,
        job_name=RETRAIN_JOB,
        tags={"ballast/trigger": "drift", "ballast/drift_episode": start, "ballast/champion": champion},
    )
    episode = {"champion": champion, "start": start, "run_key": run_key}
    return (
        request,
        f"ERROR drift from {start} on champion {champion}",
        {**cursor, "seen": record.id, "episode": episode, "last_request_at": now.isoformat()},
    )


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    return [retraining_sensor(settings), alert_sensor(settings), run_failure_alert_sensor(settings)]


def retraining_sensor(settings: Settings) -> dg.SensorDefinition:
    cooldown = dt.timedelta(hours=settings.retrain_cooldown_hours)

    @dg.sensor(
        name=RETRAIN_SENSOR,
        job_name=RETRAIN_JOB,
        minimum_interval_seconds=60,
        default_status=sensor_status(settings),
        description=f"Requests one {RETRAIN_JOB} run per drift episode when the drift report's {FEATURE_PSI_CHECK}"
        f" check fails (ERROR), at most one every BALLAST_RETRAIN_COOLDOWN_HOURS ({settings.retrain_cooldown_hours:g} h).",
    )
    def drift_error_retraining_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        # The latest execution may be one still running (or skipped): judge the latest evaluation.
        history = context.instance.event_log_storage.get_asset_check_execution_history(DRIFT_ERROR, limit=PAGE)
        record = next((r for r in history if evaluated(r)), None)
        failed_run = _failed_retraining(context, cursor)
        request, reason, cursor = retraining_decision(record, cursor, dt.datetime.now(dt.UTC), cooldown)
        context.update_cursor(json.dumps(cursor))
        if failed_run:
            context.log.warning(f"retraining run {failed_run} failed; re-execute it from the Dagster UI to retry")
        if request is None:
            return dg.SkipReason(reason)
        context.log.info(reason)
        return request

    return drift_error_retraining_sensor


def alert_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=ALERT_SENSOR,
        minimum_interval_seconds=30,
        default_status=sensor_status(settings),
        description="Sends every failed asset check (asset, check, partition, severity, summary, link) once to the"
        f" alert log and to BALLAST_ALERT_SINKS ({', '.join(settings.alert_sinks) or 'none'}); each tick also"
        " retries the deliveries of either alert sensor that failed.",
    )
    def check_failure_alert_sensor(context: dg.SensorEvaluationContext, alert_sinks: AlertSinks):
        after = int(context.cursor) if context.cursor else 0
        # Check executions share one id sequence across checks: a single integer cursor.
        storage = context.instance.event_log_storage
        executions = [
            r
            for key in context.repository_def.asset_graph.asset_check_keys
            for r in executions_after(storage, key, after)
        ]
        records = sorted((r for r in executions if evaluated(r)), key=lambda r: r.id)
        # A check of a run still in progress keeps its id when it reports: hold the cursor
        # before it (the outbox drops the repeats). Checks planned in finished runs were skipped.
        finished: dict[str, bool] = {}
        live = [r.id for r in executions if not evaluated(r) and not _run_finished(context, r.run_id, finished)]
        alerts = [a for a in (_alert(r, settings) for r in records) if a is not None]
        sent, failed = Outbox(settings.alert_outbox).deliver(alerts, alert_sinks.sinks())
        if live:
            context.update_cursor(str(min(live) - 1))
        elif records:
            context.update_cursor(str(records[-1].id))
        for line in failed:
            context.log.warning(f"alert delivery failed, retried next tick: {line}")
        return dg.SkipReason(
            f"{len(alerts)} new failed check(s); {len(sent)} delivered, {len(failed)} waiting for a retry"
        )

    return check_failure_alert_sensor


def run_failure_alert_sensor(settings: Settings) -> dg.SensorDefinition:
    # Every run of the instance, not only those launched from this code location: a
    # `ballast run` executes in process, so its runs carry no code location and a sensor
    # that watches only its own location's jobs never sees them.
    @dg.run_failure_sensor(
        name=RUN_ALERT_SENSOR,
        minimum_interval_seconds=30,
        monitor_all_code_locations=True,
        default_status=sensor_status(settings),
        description="Sends every failed run (job, run id, failed steps, an error line per step, link) once, as an"
        f" ERROR, to the alert log and to BALLAST_ALERT_SINKS ({', '.join(settings.alert_sinks) or 'none'}).",
    )
    def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_sinks: AlertSinks) -> None:
        alert = run_failure_alert(context, settings.ui_url)
        sent, failed = Outbox(settings.alert_outbox).deliver([alert], alert_sinks.sinks())
        for line in failed:
            context.log.warning(f"alert delivery failed, retried next tick: {line}")
        context.log.info(f"run {alert.run_id} failed: {len(sent)} delivered, {len(failed)} waiting for a retry")
        # None, not a SkipReason: the sensor then goes on to the next failed run in the same tick.

    return run_failure_alert_sensor


def run_failure_alert(context: dg.RunFailureSensorContext, ui_url: str) -> RunFailureAlert:
    """The alert for a failed run: its failed steps (from the instance's event log) and one error line each."""
    run = context.dagster_run
    failures = [e for e in context.get_step_failure_events() if e.step_key]
    steps = tuple(dict.fromkeys(e.step_key for e in failures))
    lines = [error_line(e.step_key, *_error(e.event_specific_data.error)) for e in failures]
    if not lines:
        # The run failed outside its steps (a resource, the run worker, run monitoring).
        lines = [error_line("run", "", context.failure_event.message or "failed")]
    summary = "\n".join(dict.fromkeys(lines))
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1] + "…"
    return RunFailureAlert(
        job=run.job_name, run_id=run.run_id, steps=steps, summary=summary, url=f"{ui_url}/runs/{run.run_id}"
    )


WRAPPERS = (
    "DagsterExecutionStepExecutionError",
    "DagsterUserCodeExecutionError",
    "RetryRequested",
    "RetryRequestedFromPolicy",
)


def _error(error) -> tuple[str, str]:
    """The error class and message a person acts on: Dagster's wrapper around a step's exception names only the step."""
    if error is None:
        return "", "failed"
    # Also the wrapper of a step that used up its retries ("Exceeded max_retries"): its cause is what failed.
    while error.cause is not None and error.cls_name in WRAPPERS:
        error = error.cause
    # The message starts with the exception's qualified name (traceback's format); keep the short one.
    cls_name = error.cls_name or ""
    message = error.message.split(f"{cls_name}: ", 1)[-1] if cls_name else error.message
    return cls_name, message


def _run_finished(context: dg.SensorEvaluationContext, run_id: str, cache: dict[str, bool]) -> bool:
    if run_id not in cache:
        run = context.instance.get_run_by_id(run_id)
        cache[run_id] = run is None or run.is_finished
    return cache[run_id]


def _failed_retraining(context: dg.SensorEvaluationContext, cursor: dict) -> str | None:
    episode = cursor.get("episode")
    if not episode:
        return None
    runs = context.instance.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": episode["run_key"]}), limit=1)
    if runs and runs[0].status == dg.DagsterRunStatus.FAILURE:
        return runs[0].run_id
    return None


def _alert(record, settings: Settings) -> Alert | None:
    evaluation = record.event.dagster_event.event_specific_data
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
        return None
    metadata = {k: v.value for k, v in evaluation.metadata.items()}
    partition = str(
        metadata.get("window")
        or metadata.get("feature_date")
        or metadata.get(EXPECTED_PARTITION_KEY)
        or record.event.dagster_event.partition
        or "all"
    )
    shown = ", ".join(f"{k}={v}" for k, v in list(metadata.items())[:6] if not isinstance(v, (dict, list)))
    asset = evaluation.asset_key.to_user_string()
    return Alert(
        asset=asset,
        check=evaluation.check_name,
        partition=partition,
        severity=evaluation.severity.value,
        summary=(evaluation.description or shown)[:500] if evaluation.description else shown[:500],
        url=f"{settings.ui_url}/assets/{asset}?view=checks",
        run_id=record.run_id,
    )
