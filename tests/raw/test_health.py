"""The raw layer's health through the real instance: missing days named, volume and null-share jumps warned, ingestion lag.

One small generated home (40 days, about 200 rows a day) is broken on purpose: four days
have no file, one file is rejected, one day arrives five times over and one day's file
lacks the optional channel column. The raw asset is materialized for real (Dagster,
DuckDB, the instance's run history) over the whole window, then over its last days alone.
"""

import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.cli.report import build_report, format_report
from ballast.raw.assets import RAW_IGNORED_FILES, RAW_REJECTED_FILES, RAW_TRANSACTIONS
from ballast.raw.health_checks import (
    LAG_MAX_HOURS,
    LAG_MAX_PARTITION,
    LAG_MEDIAN_HOURS,
    LAG_PARTITIONS,
    MISSING_DAYS,
    NULL_SHARE_ANOMALY,
    ROW_COUNT_ANOMALY,
)
from ballast.runs import instance, refresh
from ballast.settings import Settings
from tests.conftest import START, make_settings, query

DAYS = 40
END = START + dt.timedelta(days=DAYS - 1)
MISSING = [10, 11, 12, 20]
REJECTED_DAY = 25
JUMP_DAY = 34
NO_CHANNEL_DAY = 37
JUMP = 5
# The second run's window: days after every break, so nothing in it is anomalous.
CALM_FROM = 38
RAW_ONLY = dg.AssetSelection.assets(RAW_TRANSACTIONS, RAW_REJECTED_FILES, RAW_IGNORED_FILES)
pytestmark = pytest.mark.full  # the raw asset materialized twice through the instance (about 30 s)


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


def _file(settings: Settings, n: int) -> Path:
    return settings.landing_dir / f"transactions_{day(n)}.csv"


def _rewrite(settings: Settings, n: int, select: str) -> None:
    """Rewrite day n's file through DuckDB: `select` reads the original as `day_file`."""
    path = _file(settings, n)
    con = duckdb.connect()
    try:
        con.execute(f"create table day_file as select * from read_csv('{path}', all_varchar = true)")
        con.execute(f"copy ({select}) to '{path}' (header)")
    finally:
        con.close()


@dataclass(frozen=True)
class Runs:
    settings: Settings
    whole: dg.ExecuteInProcessResult
    calm: dg.ExecuteInProcessResult
    started: float
    finished: float
    jump_rows: int

    def check(self, result: dg.ExecuteInProcessResult, name: str) -> dg.AssetCheckEvaluation:
        (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
        return evaluation


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    settings = make_settings(tmp_path_factory.mktemp("raw_health"))
    settings.ensure_dirs()
    generate(GenerateSpec(out=settings.landing_dir, customers=300, days=DAYS, start=START, seed=3, rows_per_day=200))
    for n in MISSING:
        _file(settings, n).unlink()
    _file(settings, REJECTED_DAY).write_bytes(b"")
    _rewrite(settings, JUMP_DAY, f"select day_file.* from day_file, range({JUMP})")
    _rewrite(settings, NO_CHANNEL_DAY, "select * exclude (channel) from day_file")
    dagster_instance = instance(settings)
    try:
        started = time.time()
        whole = refresh(
            settings, START, END, dagster_instance=dagster_instance, selection=RAW_ONLY, log_level="WARNING"
        )
        finished = time.time()
        calm = refresh(
            settings, day(CALM_FROM), END, dagster_instance=dagster_instance, selection=RAW_ONLY, log_level="WARNING"
        )
    finally:
        dagster_instance.dispose()
    assert whole.success and calm.success
    (jump_rows,) = query(settings, "select count(*) from raw.transactions where event_date = ?", [day(JUMP_DAY)])[0]
    return Runs(settings, whole, calm, started, finished, jump_rows)


def test_a_missing_day_is_named(runs: Runs) -> None:
    evaluation = runs.check(runs.whole, MISSING_DAYS)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    named = f"{day(10)}..{day(12)}, {day(20)}"
    assert evaluation.description == f"4 day(s) from {START} to {END} have no landing file: {named}"
    assert evaluation.metadata["missing_days"].value == len(MISSING)
    # The alert's partition is the gap itself: the same gap is announced once, not on every run.
    assert evaluation.metadata["window"].value == named
    # The rejected file's day is delivered (no_rejected_files names its file); nothing after the last file is missing.
    assert str(day(REJECTED_DAY)) not in evaluation.description
    assert evaluation.metadata["judged"].value == f"{START} to {END}"
    assert runs.check(runs.calm, MISSING_DAYS).metadata["window"].value == named


def test_a_five_fold_volume_jump_warns_with_its_expected_range(runs: Runs) -> None:
    evaluation = runs.check(runs.whole, ROW_COUNT_ANOMALY)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    (flagged,) = evaluation.metadata["flagged_values"].value
    assert flagged["day"] == str(day(JUMP_DAY)) and flagged["metric"] == "row_count"
    assert flagged["observed"] == runs.jump_rows
    normal = runs.jump_rows / JUMP
    assert flagged["low"] < normal < flagged["high"] < runs.jump_rows
    assert flagged["z"] > runs.settings.anomaly_z
    assert str(day(JUMP_DAY)) in evaluation.description
    assert evaluation.metadata["window"].value == str(day(JUMP_DAY))
    # Every other judged day (a normal one) stays in range: the check judged many and flagged one.
    assert evaluation.metadata["judged_days"].value >= 15


def test_normal_days_do_not_warn(runs: Runs) -> None:
    for name in (ROW_COUNT_ANOMALY, NULL_SHARE_ANOMALY):
        evaluation = runs.check(runs.calm, name)
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["judged_days"].value == DAYS - CALM_FROM + 1
        assert evaluation.metadata["window"].value == f"{day(CALM_FROM)} to {END}"


def test_a_null_share_jump_in_an_optional_column_warns(runs: Runs) -> None:
    evaluation = runs.check(runs.whole, NULL_SHARE_ANOMALY)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.WARN
    (flagged,) = evaluation.metadata["flagged_values"].value
    assert (flagged["day"], flagged["metric"], flagged["observed"]) == (str(day(NO_CHANNEL_DAY)), "channel", 1.0)
    # The history is never empty: the floor of the scale keeps the range narrow but not zero.
    assert flagged["low"] == 0.0 and 0.0 < flagged["high"] < 0.1


def test_ingestion_lag_is_measured_per_partition(runs: Runs) -> None:
    (materialization,) = [
        m for m in runs.whole.asset_materializations_for_node("raw_transactions") if m.asset_key == RAW_TRANSACTIONS
    ][:1]
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    delivered = DAYS - len(MISSING) - 1
    assert metadata[LAG_PARTITIONS] == delivered
    # The first day's latest event is late on that day (about 200 events spread over it), loaded by this run.
    hours = lambda instant: (instant - dt.datetime.combine(START, dt.time(), dt.UTC).timestamp()) / 3600  # noqa: E731
    assert metadata[LAG_MAX_PARTITION] == str(START)
    assert hours(runs.started) - 24 < metadata[LAG_MAX_HOURS] < hours(runs.finished) - 20
    # The median partition sits mid-window: about DAYS / 2 days less than the first.
    gap = metadata[LAG_MAX_HOURS] - metadata[LAG_MEDIAN_HOURS]
    assert (DAYS / 2 - 2) * 24 < gap < (DAYS / 2 + 2) * 24
    calm = [m for m in runs.calm.asset_materializations_for_node("raw_transactions") if m.asset_key == RAW_TRANSACTIONS]
    # The second run measures its own window, whose oldest day is the most late.
    assert calm[0].metadata[LAG_PARTITIONS].value == DAYS - CALM_FROM + 1
    assert calm[0].metadata[LAG_MAX_PARTITION].value == str(day(CALM_FROM))


def test_the_report_shows_the_latest_loads_ingestion_lag(runs: Runs) -> None:
    report = build_report(runs.settings)
    lag = report["ingestion_lag"]
    latest = [
        m for m in runs.calm.asset_materializations_for_node("raw_transactions") if m.asset_key == RAW_TRANSACTIONS
    ]
    assert lag["run_id"] == runs.calm.run_id
    assert lag[LAG_MEDIAN_HOURS] == latest[0].metadata[LAG_MEDIAN_HOURS].value
    assert f"max {lag[LAG_MAX_HOURS]:,.1f} h ({day(CALM_FROM)})" in format_report(report)
