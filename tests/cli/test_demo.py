"""`ballast demo` as a user runs it: data that ends yesterday, and every partition up to yesterday materialized."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from ballast.common.partitions import daily_partitions
from ballast.definitions import load_defs
from ballast.monitoring import freshness
from ballast.raw.health_checks import MISSING_DAYS
from ballast.raw.tables import RAW_LAYER
from ballast.runs import instance
from ballast.settings import START_DATE_FILE, Settings

BALLAST = str(Path(sys.executable).parent / "ballast")
# Small enough for a quick whole-graph run, long enough for labels (30 days ahead) and a model.
CUSTOMERS, DAYS = "300", 60


def _demo(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`ballast demo` on `home`, with no Ballast setting from this process's environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BALLAST_")}
    return subprocess.run(
        [BALLAST, "demo", "--customers", CUSTOMERS, *args],
        capture_output=True,
        text=True,
        env={**clean, "BALLAST_HOME": str(home), **env},
        timeout=900,
    )


def _yesterday() -> dt.date:
    return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)


@pytest.mark.full  # two whole-graph runs on a small demo (about 40-90 s each)
def test_the_demo_ends_yesterday_and_later_processes_see_every_partition_materialized(tmp_path: Path) -> None:
    before = _yesterday()
    first = before - dt.timedelta(days=DAYS - 1)
    proc = _demo(tmp_path, "--days", str(DAYS))
    assert proc.returncode == 0, proc.stderr
    if _yesterday() != before:
        pytest.skip("the UTC day changed during the demo")

    manifest = json.loads((tmp_path / "landing" / "_manifest.json").read_text())
    days = [first + dt.timedelta(days=i) for i in range(DAYS)]
    assert manifest["files"] == [f"transactions_{d}.csv" for d in days]

    # A process started later on the home (`ballast dev`, `dagster dev`) reads only BALLAST_HOME.
    settings = Settings.from_env({"BALLAST_HOME": str(tmp_path)})
    assert (settings.start_date, settings.start_date_origin) == (first, START_DATE_FILE)
    keys = daily_partitions(settings).get_partition_keys()
    # Today's partition exists (a file dated today loads now) and is the only one without data.
    assert keys == [d.isoformat() for d in days] + [(before + dt.timedelta(days=1)).isoformat()]

    defs = load_defs(settings)[0]
    specs = [s for s in defs.resolve_all_asset_specs() if s.partitions_def is not None]
    dagster_instance = instance(settings)
    try:
        assert len(specs) >= 10
        for spec in specs:
            assert dagster_instance.get_materialized_partitions(spec.key) == set(keys[:-1]), spec.key
        missing_days = dagster_instance.get_latest_asset_check_evaluation_record(
            dg.AssetCheckKey(dg.AssetKey([RAW_LAYER, "transactions"]), MISSING_DAYS)
        )
        assert missing_days.event.dagster_event.event_specific_data.passed
        checks = freshness.build_checks(settings, specs)
        result = dg.materialize([*specs, checks], instance=dagster_instance, selection=dg.AssetSelection.checks(checks))
        evaluations = result.get_asset_check_evaluations()
        assert {e.asset_key for e in evaluations} == set(freshness.monitored_keys(specs))
        assert all(e.passed for e in evaluations), [e.description for e in evaluations if not e.passed]
    finally:
        dagster_instance.dispose()

    # An explicit start date wins over the recorded one: the data runs from it to yesterday, and the home records it.
    later = first + dt.timedelta(days=10)
    again = _demo(tmp_path, BALLAST_START_DATE=later.isoformat())
    assert again.returncode == 0, again.stderr
    assert f"the start date is set ({later}, from BALLAST_START_DATE): generating it to {before}" in again.stdout
    files = json.loads((tmp_path / "landing" / "_manifest.json").read_text())["files"]
    assert files[0] == f"transactions_{later}.csv" and files[-1] == f"transactions_{before}.csv"
    assert Settings.from_env({"BALLAST_HOME": str(tmp_path)}).start_date == later


def test_the_demo_refuses_days_or_a_start_without_a_complete_day_when_the_start_date_is_set(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--days", "5", BALLAST_START_DATE="2025-01-01")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (
        "ballast: error: --days cannot be used when the start date is set (2025-01-01, from BALLAST_START_DATE):"
        " the demo's data runs from it to yesterday; drop --days, or unset BALLAST_START_DATE"
    )
    recorded = tmp_path / START_DATE_FILE
    recorded.write_text("2025-01-01\n")
    proc = _demo(tmp_path, "--days", "5")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"(2025-01-01, from {recorded}, recorded by an earlier demo)" in proc.stderr
    assert proc.stderr.strip().endswith("drop --days, or use a new BALLAST_HOME")
    today = _yesterday() + dt.timedelta(days=1)
    recorded.write_text(f"{today}\n")
    proc = _demo(tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"the start date {today} (from {tmp_path / START_DATE_FILE}, recorded by an earlier demo)" in proc.stderr
    assert "leaves no complete day before today" in proc.stderr
    assert not (tmp_path / "landing" / "_manifest.json").exists()
