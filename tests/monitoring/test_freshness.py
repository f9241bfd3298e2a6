"""Freshness: a late partition fails its check and passes once materialized, through a real instance and sensor."""

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from ballast.clean.tables import CLEAN_LAYER
from ballast.common.partitions import daily_partitions
from ballast.definitions import REFRESH_JOB, build_defs, load_defs
from ballast.features.tables import FEATURES_LAYER
from ballast.monitoring import freshness
from ballast.raw.tables import RAW_LAYER
from ballast.settings import Settings
from tests.conftest import make_settings

# A time zone far from UTC, so a deadline taken as UTC (or a day taken as local) shows.
ZONE = "Pacific/Kiritimati"
EVENTS = dg.AssetKey([RAW_LAYER, "events"])


def _deadline_minutes_ago(minutes: int) -> tuple[str, dt.datetime]:
    """A daily cron (in ZONE) whose latest tick was `minutes` ago, and that tick."""
    tick = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes)).replace(second=0, microsecond=0)
    local = tick.astimezone(ZoneInfo(ZONE))
    return f"{local.minute} {local.hour} * * *", tick


def _events(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(key=EVENTS, partitions_def=daily_partitions(settings), group_name=RAW_LAYER)
    def events() -> None:
        """A daily partitioned raw asset standing in for a layer's table."""

    return events


def _late_settings(home: Path, start_days_before: int) -> tuple[Settings, dt.date]:
    """Settings whose deadline passed 3 minutes ago, and the day that deadline makes due."""
    cron, tick = _deadline_minutes_ago(3)
    settings = Settings(
        home=home,
        landing_dir=home / "landing",
        start_date=tick.date() - dt.timedelta(days=start_days_before),
        freshness_deadline_cron=cron,
        freshness_timezone=ZONE,
    )
    return settings, tick.date() - dt.timedelta(days=1)


@pytest.fixture
def late(tmp_path: Path):
    """A partitioned raw asset, its freshness checks and sensor on a deadline passed 3 minutes ago, and an instance."""
    settings, due = _late_settings(tmp_path, start_days_before=5)
    asset = _events(settings)
    checks = freshness.build_checks(settings, [asset])
    sensor = freshness.freshness_sensor(settings, checks)
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        yield asset, checks, sensor, instance, due


def _evaluate(asset, checks, instance) -> dg.AssetCheckEvaluation:
    result = dg.materialize([asset, checks], instance=instance, selection=dg.AssetSelection.checks(checks))
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_a_late_partition_fails_freshness_and_passes_once_materialized(late) -> None:
    asset, checks, _, instance, due = late
    # Every day but the last completed one arrived; today's partition too.
    for day in (due - dt.timedelta(days=2), due - dt.timedelta(days=1), due + dt.timedelta(days=1)):
        dg.materialize([asset], instance=instance, partition_key=day.isoformat())

    failed = _evaluate(asset, checks, instance)
    assert not failed.passed
    assert failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.metadata[freshness.EXPECTED_PARTITION_KEY].value == due.isoformat()
    assert f"partition {due}" in failed.description
    assert failed.metadata[freshness.OVERDUE_KEY].value >= 3 * 60

    dg.materialize([asset], instance=instance, partition_key=due.isoformat())
    passed = _evaluate(asset, checks, instance)
    assert passed.passed, passed.description
    assert passed.metadata[freshness.EXPECTED_PARTITION_KEY].value == due.isoformat()
    next_tick = passed.metadata[freshness.FRESH_UNTIL_KEY].value
    assert next_tick - passed.metadata[freshness.DEADLINE_KEY].value == pytest.approx(86400)


def test_the_sensor_runs_the_checks_at_a_deadline_and_again_only_after_the_late_partition_lands(late) -> None:
    asset, checks, sensor, instance, due = late
    first = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(first, dg.RunRequest)
    assert set(first.asset_check_keys) == set(checks.check_keys)

    assert not _evaluate(asset, checks, instance).passed
    # Failed and nothing new: evaluating again could not change the answer.
    assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)

    dg.materialize([asset], instance=instance, partition_key=due.isoformat())
    again = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(again, dg.RunRequest)
    assert again.run_key != first.run_key
    assert _evaluate(asset, checks, instance).passed
    # Fresh for this deadline: nothing to do until the next one.
    assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)


def test_the_day_due_is_the_last_utc_day_completed_at_the_deadline() -> None:
    # 09:00 in Berlin is 08:00 UTC: yesterday (UTC) is due; 23:30 in Tokyo is 14:30 UTC the day before.
    now = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
    berlin, following = freshness.deadline_ticks("0 9 * * *", "Europe/Berlin", now)
    assert berlin == dt.datetime(2026, 3, 10, 8, 0, tzinfo=dt.UTC)
    assert following - berlin == dt.timedelta(days=1)
    assert freshness.last_completed_day(berlin) == dt.date(2026, 3, 9)
    tokyo, _ = freshness.deadline_ticks("30 23 * * *", "Asia/Tokyo", now)
    assert tokyo == dt.datetime(2026, 3, 9, 14, 30, tzinfo=dt.UTC)
    assert freshness.last_completed_day(tokyo) == dt.date(2026, 3, 8)
    # 14 hours ahead of UTC: 19:00 there on the 10th is 05:00 UTC on the 10th.
    kiritimati, _ = freshness.deadline_ticks("0 19 * * *", "Pacific/Kiritimati", now)
    assert kiritimati == dt.datetime(2026, 3, 10, 5, 0, tzinfo=dt.UTC)
    assert freshness.last_completed_day(kiritimati) == dt.date(2026, 3, 9)
    # Weekdays only: on a Monday afternoon the latest deadline is Monday's, Sunday the day due.
    monday, _ = freshness.deadline_ticks("0 9 * * 1-5", "UTC", dt.datetime(2026, 3, 9, 12, 0, tzinfo=dt.UTC))
    assert freshness.last_completed_day(monday) == dt.date(2026, 3, 8)


def test_before_the_first_partition_is_due_the_check_passes(tmp_path: Path) -> None:
    settings, _ = _late_settings(tmp_path, start_days_before=0)
    asset = _events(settings)
    checks = freshness.build_checks(settings, [asset])
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        evaluation = _evaluate(asset, checks, instance)
    assert evaluation.passed
    assert "No partition is due yet" in evaluation.description


@pytest.fixture(scope="module")
def defs(tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    """The code location `dagster dev` serves."""
    return load_defs(make_settings(tmp_path_factory.mktemp("freshness_home")))[0]


def test_every_partitioned_raw_clean_and_features_asset_has_a_freshness_check_and_policy(defs) -> None:
    graph = defs.resolve_asset_graph()
    layers = (RAW_LAYER, CLEAN_LAYER, FEATURES_LAYER)
    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).is_partitioned and k.path[0] in layers}
    assert dg.AssetKey([RAW_LAYER, "transactions"]) in partitioned
    assert dg.AssetKey([FEATURES_LAYER, "customer_daily_features"]) in partitioned
    checked = {k.asset_key for k in graph.asset_check_keys if k.name == freshness.FRESHNESS_CHECK}
    assert checked == partitioned
    for key in partitioned:
        policy = graph.get(key).freshness_policy
        assert isinstance(policy, dg.FreshnessPolicy), key
        assert policy.deadline_cron == "0 9 * * *" and policy.timezone == "UTC"
    others = set(graph.get_all_asset_keys()) - partitioned
    assert all(graph.get(k).freshness_policy is None for k in others)


def test_the_freshness_sensor_is_stopped_and_refresh_runs_leave_the_checks_out(defs) -> None:
    sensor = defs.resolve_sensor_def(freshness.FRESHNESS_SENSOR)
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert "BALLAST_FRESHNESS_DEADLINE_CRON" in sensor.description
    refresh = defs.resolve_job_def(REFRESH_JOB)
    in_refresh = {k.name for k in refresh.asset_layer.asset_graph.asset_check_keys}
    assert freshness.FRESHNESS_CHECK not in in_refresh
    assert in_refresh, "the refresh job still runs the layers' other checks"


def test_in_process_runs_build_the_definitions_without_the_freshness_checks(defs, tmp_path: Path) -> None:
    # execute_in_process with an asset selection would run every check on the selected assets.
    run_defs = build_defs(make_settings(tmp_path))
    run_graph = run_defs.resolve_asset_graph()
    assert not [k for k in run_graph.asset_check_keys if k.name == freshness.FRESHNESS_CHECK]
    assert freshness.FRESHNESS_SENSOR not in {s.name for s in run_defs.sensors or []}
    # The same assets, policies included, and every other check.
    graph = defs.resolve_asset_graph()
    assert set(run_graph.get_all_asset_keys()) == set(graph.get_all_asset_keys())
    assert {k for k in graph.asset_check_keys if k.name != freshness.FRESHNESS_CHECK} == set(run_graph.asset_check_keys)
    key = dg.AssetKey([CLEAN_LAYER, "transactions"])
    assert run_graph.get(key).freshness_policy == graph.get(key).freshness_policy
