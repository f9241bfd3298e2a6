"""monitoring/quality_history against the real instance: its counts are the instance's check executions, and
a check made to fail, pass and fail again gives the open failure and the time to recovery the instance implies."""

import datetime as dt
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from ballast.cli.report import build_report, format_report
from ballast.common.metadata import INLINE_MARKDOWN_CHARS, file_url
from ballast.monitoring.check_history import (
    QUALITY_HISTORY_TABLE,
    QUALITY_OPEN_FAILURES_TABLE,
    QUALITY_RECOVERIES_TABLE,
)
from ballast.monitoring.quality_history import QUALITY_HISTORY, STALE_FAILURE_CHECK, quality_history_asset
from ballast.resources import WarehouseResource
from ballast.runs import instance
from ballast.settings import Settings
from tests.conftest import Platform, make_settings, query

BALLAST = str(Path(sys.executable).parent / "ballast")
EVALUATION = dg.DagsterEventType.ASSET_CHECK_EVALUATION
# Step keys sort after the history's (monitoring__quality_history): without its priority it would run first.
TOY = dg.AssetKey(["toy", "checked"])
TOY_DAILY = dg.AssetKey(["toy", "daily"])
TOY_CHECK = dg.AssetCheckKey(TOY, "toy_ok")
DAILY_CHECK = dg.AssetCheckKey(TOY_DAILY, "daily_ok")


def evaluations_by_run(dagster_instance: dg.DagsterInstance) -> list:
    """Every check evaluation in the instance, read run by run (not the history's path: no check keys, no executions)."""
    found = []
    for run in dagster_instance.get_run_records():
        cursor = None
        while True:
            page = dagster_instance.get_records_for_run(
                run.dagster_run.run_id, cursor=cursor, of_type={EVALUATION}, limit=1000
            )
            found += page.records
            if not page.has_more:
                break
            cursor = page.cursor
    return found


def _evaluation(record) -> dg.AssetCheckEvaluation:
    return record.event_log_entry.dagster_event.event_specific_data


def _toy_defs(verdicts: Path, settings: Settings) -> dg.Definitions:
    """An asset whose ERROR check and a daily asset whose per-partition WARN check pass or fail as `verdicts` says."""

    def verdict(name: str) -> bool:
        return (verdicts / name).read_text() == "pass"

    @dg.asset(key=TOY, check_specs=[dg.AssetCheckSpec(TOY_CHECK.name, asset=TOY)])
    def checked():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(check_name=TOY_CHECK.name, passed=verdict("toy"))

    partitions = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(
        key=TOY_DAILY,
        partitions_def=partitions,
        check_specs=[dg.AssetCheckSpec(DAILY_CHECK.name, asset=TOY_DAILY, partitions_def=partitions)],
    )
    def daily(context: dg.AssetExecutionContext):
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name=DAILY_CHECK.name,
            passed=verdict(context.partition_key),
            severity=dg.AssetCheckSeverity.WARN,
        )

    built: list[dg.Definitions] = []
    defs = dg.Definitions(
        assets=[checked, daily, quality_history_asset(settings, lambda: built[0].get_repository_def())],
        resources={"warehouse": WarehouseResource(path=str(settings.warehouse_path))},
    )
    built.append(defs)
    return defs


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory):
    """toy_ok fails twice, passes, fails; daily_ok fails then passes on a, passes then fails on b; the last run
    materializes the history with the toy assets (its own run's evaluations count)."""
    settings = make_settings(tmp_path_factory.mktemp("quality_home"))
    settings.ensure_dirs()
    verdicts = settings.home / "verdicts"
    verdicts.mkdir()
    defs = _toy_defs(verdicts, settings)
    job = defs.resolve_implicit_global_asset_job_def()
    dagster_instance = instance(settings)
    steps = [
        ({"toy": "fail", "a": "fail"}, [TOY, TOY_DAILY], "a"),
        ({"toy": "fail", "b": "pass"}, [TOY, TOY_DAILY], "b"),
        ({"toy": "pass", "a": "pass"}, [TOY, TOY_DAILY], "a"),
        ({"toy": "fail", "b": "fail"}, [TOY, TOY_DAILY, QUALITY_HISTORY], "b"),
    ]
    results = []
    for verdict, selection, partition in steps:
        for name, value in verdict.items():
            (verdicts / name).write_text(value)
        results.append(
            job.execute_in_process(instance=dagster_instance, asset_selection=selection, partition_key=partition)
        )
    return settings, dagster_instance, results


def _times(dagster_instance: dg.DagsterInstance, key: dg.AssetCheckKey) -> list[tuple[dt.datetime, bool, str | None]]:
    """(time, passed, partition) of each evaluation of `key`, oldest first, as naive UTC like the tables."""
    found = [
        (record.timestamp, _evaluation(record))
        for record in evaluations_by_run(dagster_instance)
        if _evaluation(record).asset_check_key == key
    ]
    return [
        (dt.datetime.fromtimestamp(t, dt.UTC).replace(tzinfo=None), e.passed, e.partition) for t, e in sorted(found)
    ]


def test_open_failures_and_recoveries_follow_the_sequence(sequence) -> None:
    settings, dagster_instance, results = sequence
    assert all(r.success for r in results)
    toy = _times(dagster_instance, TOY_CHECK)
    daily = _times(dagster_instance, DAILY_CHECK)
    assert [p for _, p, _ in toy] == [False, False, True, False]
    assert [(p, k) for _, p, k in daily] == [(False, "a"), (True, "b"), (True, "a"), (False, "b")]
    recoveries = query(
        settings,
        f"select check_name, partition_key, failed_at, recovered_at, failed_evaluations, severity, recovery_hours"
        f" from {QUALITY_RECOVERIES_TABLE} order by check_name",
    )
    hours = [(daily[2][0] - daily[0][0]).total_seconds() / 3600, (toy[2][0] - toy[0][0]).total_seconds() / 3600]
    assert [r[:6] for r in recoveries] == [
        ("daily_ok", "a", daily[0][0], daily[2][0], 1, "WARN"),
        ("toy_ok", None, toy[0][0], toy[2][0], 2, "ERROR"),
    ]
    assert [r[6] for r in recoveries] == pytest.approx(hours)
    open_failures = query(
        settings,
        f"select check_name, partition_key, severity, failing_since, last_failed_at, failed_evaluations, last_run_id"
        f" from {QUALITY_OPEN_FAILURES_TABLE} order by check_name",
    )
    last_run = results[-1].run_id
    assert open_failures == [
        ("daily_ok", "b", "WARN", daily[3][0], daily[3][0], 1, last_run),
        ("toy_ok", None, "ERROR", toy[3][0], toy[3][0], 1, last_run),
    ]


def test_the_history_counts_its_own_run_s_evaluations(sequence) -> None:
    """The history runs after the other steps of its run: the last run's failures are in it."""
    results = sequence[2]
    [materialization] = results[-1].asset_materializations_for_node("monitoring__quality_history")
    assert materialization.metadata["evaluations"].value == 8
    assert materialization.metadata["open_failures"].value == 2
    assert materialization.metadata["recoveries"].value == 2
    assert "data:image/png;base64," in materialization.metadata["pass_rate_over_time_embedded"].value
    # The plot inline on the asset page: a short markdown image of a PNG file `ballast dev` serves.
    inline = materialization.metadata["pass_rate_over_time"].value
    [plot] = list(sequence[0].plots_dir.glob("quality_history_*.png"))
    assert len(inline) < INLINE_MARKDOWN_CHARS and file_url(sequence[0], plot) in inline
    assert plot.read_bytes().startswith(b"\x89PNG")
    [stale] = [e for e in results[-1].get_asset_check_evaluations() if e.check_name == STALE_FAILURE_CHECK]
    assert stale.passed


def _ballast_report(home: Path, *args: str) -> str:
    env = {**os.environ, "BALLAST_HOME": str(home)}
    return subprocess.run(
        [BALLAST, "report", *args], capture_output=True, text=True, env=env, timeout=300, check=True
    ).stdout


def test_ballast_report_names_the_open_failures_and_the_times_to_recovery(sequence) -> None:
    settings, dagster_instance, _ = sequence
    toy = _times(dagster_instance, TOY_CHECK)
    quality = json.loads(_ballast_report(settings.home, "--json"))["quality"]
    assert (quality["evaluations"], quality["passed"]) == (8, 3)
    assert [(c["check"], c["passed"], c["executions"]) for c in quality["checks"]] == [
        ("toy/checked:toy_ok", 1, 4),
        ("toy/daily:daily_ok", 2, 4),
    ]
    text = _ballast_report(settings.home)
    hours = (toy[2][0] - toy[0][0]).total_seconds() / 3600
    assert "  toy/checked:toy_ok: 25.0% passed (1 of 4)" in text
    assert "  open failures: 2" in text
    assert "    toy/daily:daily_ok [b] WARN: failing for " in text
    assert f"    toy/checked:toy_ok: {hours:.1f} h, {hours:.1f} h over 1 episode(s)" in text


def _table_counts(settings) -> dict[tuple[str, str, dt.date], tuple[int, int, int, int]]:
    rows = query(
        settings,
        f"select asset_key, check_name, day, executions, passed, failed_warn, failed_error from {QUALITY_HISTORY_TABLE}",
    )
    return {tuple(r[:3]): tuple(r[3:]) for r in rows}


def _instance_counts(records) -> dict[tuple[str, str, dt.date], tuple[int, int, int, int]]:
    counts: Counter = Counter()
    for record in records:
        evaluation = _evaluation(record)
        day = dt.datetime.fromtimestamp(record.timestamp, dt.UTC).date()
        base = (evaluation.asset_key.to_user_string(), evaluation.check_name, day)
        counts[(*base, "executions")] += 1
        counts[(*base, "passed" if evaluation.passed else f"failed_{evaluation.severity.value.lower()}")] += 1
    days = {k[:3] for k in counts}
    return {d: tuple(counts[(*d, c)] for c in ("executions", "passed", "failed_warn", "failed_error")) for d in days}


def test_the_counts_are_the_sequence_s_executions(sequence) -> None:
    settings, dagster_instance, _ = sequence
    expected = _instance_counts(evaluations_by_run(dagster_instance))
    # The history's own check reports after the history is written.
    assert _table_counts(settings) == {k: v for k, v in expected.items() if k[1] != STALE_FAILURE_CHECK}
    assert sum(v[0] for v in _table_counts(settings).values()) == 8


def test_the_quality_history_counts_match_the_check_executions_in_the_instance(platform: Platform) -> None:
    dagster_instance = instance(platform.settings)
    built = dagster_instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=QUALITY_HISTORY), 100).records
    assert built, "the whole-graph run materializes the quality history"
    evaluations = evaluations_by_run(dagster_instance)
    # Every evaluation recorded before the history's latest materialization, and only those (by time: a run's
    # event records are numbered in a database of their own).
    before = [r for r in evaluations if r.timestamp < built[0].timestamp]
    expected = _instance_counts(before)
    assert len(expected) > 50 and sum(v[0] for v in expected.values()) == len(before)
    assert _table_counts(platform.settings) == expected
    # In the whole-graph run the history came after every other check of the graph, and counted them all.
    [in_run] = [r for r in built if r.run_id == platform.result.run_id]
    after = {
        _evaluation(r).check_name for r in evaluations if r.run_id == in_run.run_id and r.timestamp > in_run.timestamp
    }
    assert after == {STALE_FAILURE_CHECK}
    [materialization] = platform.result.asset_materializations_for_node("monitoring__quality_history")
    counted = sum(1 for r in evaluations if r.timestamp < in_run.timestamp)
    assert materialization.metadata["evaluations"].value == counted


def test_the_report_shows_pass_rates_open_failures_and_recovery(platform: Platform) -> None:
    report = build_report(platform.settings)
    quality = report["quality"]
    table = _table_counts(platform.settings)
    assert quality["evaluations"] == sum(v[0] for v in table.values())
    assert {c["check"] for c in quality["checks"]} == {f"{a}:{c}" for a, c, _ in table}
    open_checks = query(platform.settings, f"select asset_key || ':' || check_name from {QUALITY_OPEN_FAILURES_TABLE}")
    assert sorted(f["check"] for f in quality["open_failures"]) == sorted(r[0] for r in open_checks)
    text = format_report(report)
    assert f"Check quality since {quality['since']} (7 days): {quality['evaluations']:,} evaluations" in text
    assert f"open failures: {len(open_checks) or 'none'}" in text
