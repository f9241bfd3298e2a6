"""Freshness: the last completed day of every partitioned raw, clean and features asset, materialized by a deadline.

Dagster's `build_time_partition_freshness_checks` expects the partition that contains the
deadline tick. Ballast's daily partitions include today's (end_offset=1, so a file dated
today loads now), so at 09:00 it would expect today, a day still in progress. This check
expects the last day completed by the deadline, reads the instance through its public
API, and reports with the metadata keys of Dagster's freshness checks. A sensor runs it
when a deadline passes and after a late partition arrives; the freshness policy on the
same assets lets Dagster's asset health show whether they were refreshed in time.
"""

import datetime as dt
import zoneinfo
from collections.abc import Iterable, Sequence

import dagster as dg

from ballast.clean.tables import CLEAN_LAYER
from ballast.common.automation import sensor_status
from ballast.features.tables import FEATURES_LAYER
from ballast.monitoring.check_executions import evaluated
from ballast.raw.tables import RAW_LAYER
from ballast.settings import FRESHNESS_LOOKBACK, Settings

FRESHNESS_CHECK = "partition_freshness"
FRESHNESS_SENSOR = "freshness_deadline_sensor"
FRESHNESS_LAYERS = (RAW_LAYER, CLEAN_LAYER, FEATURES_LAYER)
# Metadata keys of Dagster's own freshness checks, so the UI reads these results alike.
DEADLINE_KEY = "dagster/latest_cron_tick_timestamp"
FRESH_UNTIL_KEY = "dagster/fresh_until_timestamp"
OVERDUE_KEY = "dagster/overdue_seconds"
LAST_UPDATED_KEY = "dagster/last_updated_timestamp"
PARAMS_KEY = "dagster/freshness_params"
EXPECTED_PARTITION_KEY = "expected_partition"
# A deadline cron fires at most once a day (settings); a Feb 29 cron, once in four years.
_TICK_HISTORY = dt.timedelta(days=9 * 366)


def deadline_ticks(cron: str, timezone: str, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """The latest deadline that has passed and the next one, as of `now`: the wall clock or a moment before it."""
    # Dagster reads a start and end as wall-clock times in the definition's time zone.
    now = (now or dt.datetime.now(dt.UTC)).astimezone(zoneinfo.ZoneInfo(timezone))
    # A cron-partitioned definition is Dagster's public calendar of cron ticks in a time zone;
    # ending it at `now` makes its last window the one the latest tick closed.
    ticks = dg.TimeWindowPartitionsDefinition(
        cron_schedule=cron, start=now - _TICK_HISTORY, end=now, fmt="%Y-%m-%dT%H:%M", timezone=timezone
    )
    window = ticks.get_last_partition_window()
    if window is None or window.end > now:
        raise ValueError(f"no tick of {cron!r} ({timezone}) in the {_TICK_HISTORY.days} days before {now}")
    following = ticks.get_next_partition_window(window.end, respect_bounds=False)
    return window.end, following.end if following else window.end + FRESHNESS_LOOKBACK


def last_completed_day(deadline: dt.datetime) -> dt.date:
    """The partition due at `deadline`: the last day that ended before it (partition days are UTC days)."""
    return deadline.astimezone(dt.UTC).date() - dt.timedelta(days=1)


def monitored_keys(assets: Iterable[dg.AssetsDefinition | dg.AssetSpec]) -> list[dg.AssetKey]:
    """The partitioned assets of the raw, clean and features layers, whose last completed day is checked."""
    specs = [s for a in assets for s in (a.specs if isinstance(a, dg.AssetsDefinition) else [a])]
    return sorted(
        (s.key for s in specs if s.group_name in FRESHNESS_LAYERS and s.partitions_def is not None),
        key=lambda k: k.to_user_string(),
    )


def freshness_policy(settings: Settings) -> dg.FreshnessPolicy:
    """Fresh when materialized in the day before each deadline; Dagster's freshness daemon evaluates it."""
    return dg.FreshnessPolicy.cron(settings.freshness_deadline_cron, FRESHNESS_LOOKBACK, settings.freshness_timezone)


def with_freshness_policy(spec: dg.AssetSpec, settings: Settings) -> dg.AssetSpec:
    # An asset with a policy of its own keeps it.
    if spec.group_name not in FRESHNESS_LAYERS or spec.partitions_def is None or spec.freshness_policy is not None:
        return spec
    return spec.replace_attributes(freshness_policy=freshness_policy(settings))


def freshness_checks(
    keys: Sequence[dg.AssetKey], cron: str, timezone: str, start_date: dt.date
) -> dg.AssetChecksDefinition:
    """One check per asset: the day completed by the latest deadline of `cron` in `timezone` is materialized."""
    params = {"deadline_cron": cron, "timezone": timezone}

    @dg.multi_asset_check(
        name="partition_freshness_checks",
        specs=[
            dg.AssetCheckSpec(
                FRESHNESS_CHECK,
                asset=key,
                description=f"The last day completed by each deadline ({cron}, {timezone}) is materialized.",
                metadata={PARAMS_KEY: params},
            )
            for key in keys
        ],
        can_subset=True,
    )
    def partition_freshness_checks(context: dg.AssetCheckExecutionContext):
        deadline, next_deadline = deadline_ticks(cron, timezone)
        day = last_completed_day(deadline)
        for check_key in sorted(context.selected_asset_check_keys, key=lambda k: k.to_user_string()):
            yield _evaluate(context.instance, check_key.asset_key, day, deadline, next_deadline, start_date, params)

    return partition_freshness_checks


def _evaluate(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    day: dt.date,
    deadline: dt.datetime,
    next_deadline: dt.datetime,
    start_date: dt.date,
    params: dict,
) -> dg.AssetCheckResult:
    metadata: dict = {
        PARAMS_KEY: dg.MetadataValue.json(params),
        DEADLINE_KEY: dg.MetadataValue.timestamp(deadline),
        EXPECTED_PARTITION_KEY: day.isoformat(),
    }
    when = f"{deadline:%Y-%m-%d %H:%M} {deadline.tzname()}"
    if day < start_date:
        metadata[FRESH_UNTIL_KEY] = dg.MetadataValue.timestamp(next_deadline)
        return _result(key, True, f"No partition is due yet: the first day, {start_date}, ends after {when}.", metadata)
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day.isoformat()]), limit=1
    ).records
    if found:
        metadata[FRESH_UNTIL_KEY] = dg.MetadataValue.timestamp(next_deadline)
        metadata[LAST_UPDATED_KEY] = dg.MetadataValue.timestamp(found[0].timestamp)
        return _result(key, True, f"Fresh: partition {day}, due by {when}, is materialized.", metadata)
    latest = instance.get_latest_materialization_event(key)
    metadata[OVERDUE_KEY] = dg.MetadataValue.float(round(dt.datetime.now(dt.UTC).timestamp() - deadline.timestamp(), 1))
    if latest is not None:
        metadata[LAST_UPDATED_KEY] = dg.MetadataValue.timestamp(latest.timestamp)
    return _result(key, False, f"Overdue: partition {day} was due by {when} and is not materialized.", metadata)


def _result(key: dg.AssetKey, passed: bool, description: str, metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=FRESHNESS_CHECK,
        passed=passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata=metadata,
    )


def build_checks(settings: Settings, assets: Iterable[dg.AssetsDefinition]) -> dg.AssetChecksDefinition:
    """The freshness checks of the code location, on every partitioned raw, clean and features asset."""
    return freshness_checks(
        monitored_keys(assets), settings.freshness_deadline_cron, settings.freshness_timezone, settings.start_date
    )


def freshness_sensor(settings: Settings, checks: dg.AssetChecksDefinition) -> dg.SensorDefinition:
    """Runs the freshness checks when a deadline passes, and a failed one again once its asset is materialized."""
    check_keys = sorted(checks.check_keys, key=lambda k: k.to_user_string())
    cron, timezone = settings.freshness_deadline_cron, settings.freshness_timezone

    @dg.sensor(
        name=FRESHNESS_SENSOR,
        asset_selection=dg.AssetSelection.checks(checks),
        minimum_interval_seconds=60,
        # Off until switched on in the UI (or by `ballast dev --automation`), like every Ballast sensor.
        default_status=sensor_status(settings),
        description=f"Runs the {FRESHNESS_CHECK} checks of the raw, clean and features layers at each deadline"
        f" (BALLAST_FRESHNESS_DEADLINE_CRON {cron}, BALLAST_FRESHNESS_TIMEZONE {timezone}),"
        " and a failed one again once its asset is materialized.",
    )
    def freshness_deadline_sensor(context: dg.SensorEvaluationContext):
        deadline, _ = deadline_ticks(cron, timezone)
        due = {k: reason for k in check_keys if (reason := _reason_to_run(context.instance, k, deadline))}
        if not due:
            return dg.SkipReason(f"every freshness check is evaluated for the deadline of {deadline:%Y-%m-%d %H:%M %Z}")
        for key, reason in due.items():
            context.log.info(f"{key.to_user_string()}: {reason}")
        updated = [_latest_update(context.instance, k.asset_key) for k in due]
        # The same deadline, checks and asset updates make the same key: a request queued but not started is not repeated.
        run_key = f"{deadline.isoformat()}|{','.join(k.to_user_string() for k in due)}|{max(updated, default=0)}"
        return dg.RunRequest(run_key=run_key, asset_check_keys=list(due))

    return freshness_deadline_sensor


def _latest_update(instance: dg.DagsterInstance, key: dg.AssetKey) -> float:
    latest = instance.get_latest_materialization_event(key)
    return latest.timestamp if latest is not None else 0.0


def _reason_to_run(instance: dg.DagsterInstance, key: dg.AssetCheckKey, deadline: dt.datetime) -> str | None:
    """Why the check should run now, or None: running, evaluated for this deadline, or failed with no update since."""
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    if history and not evaluated(history[0]):
        run = instance.get_run_by_id(history[0].run_id)
        if run is not None and not run.is_finished:
            return None
    latest = next((r for r in history if evaluated(r)), None)
    if latest is None:
        return "never evaluated"
    evaluation = latest.event.dagster_event.event_specific_data
    evaluated_for = evaluation.metadata.get(DEADLINE_KEY)
    if evaluated_for is None or evaluated_for.value < deadline.timestamp():
        return f"the deadline of {deadline:%Y-%m-%d %H:%M %Z} passed since its last evaluation"
    if not evaluation.passed and _latest_update(instance, key.asset_key) > latest.event.timestamp:
        return "it failed, and the asset has been materialized since"
    return None
