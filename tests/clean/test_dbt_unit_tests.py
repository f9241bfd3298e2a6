"""dbt's unit tests (reject-reason precedence, feature windows) run by the real dbt CLI on an empty warehouse."""

import json
import os
import subprocess

import duckdb
import pytest

from ballast.raw.landing import RAW_DDL
from ballast.resources import DBT_EXECUTABLE, write_dbt_profile
from ballast.settings import DBT_PROJECT_DIR, Settings
from tests.conftest import make_settings

# Every unit test in dbt_project/models/**.yml: one that stops running (a renamed model,
# a broken selector) fails this test instead of silently passing.
UNIT_TESTS = {
    "transactions_validated::reject_reason_is_the_first_rule_broken",
    "transactions_validated::duplicates_are_judged_after_the_row_rules",
    "customer_daily_features::windows_count_and_sum_up_to_their_edges",
}


def _dbt(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            DBT_EXECUTABLE,
            *args,
            "--no-use-colors",
            "--profiles-dir",
            str(settings.dbt_profiles_dir),
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(settings.dbt_runs_dir / "unit"),
            "--log-path",
            str(settings.dbt_runs_dir / "unit"),
        ],
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def unit_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    # Unit tests read their inputs' column types from the warehouse: the raw table and the
    # clean models must exist, empty is enough.
    settings = make_settings(tmp_path_factory.mktemp("unit_home"))
    settings.ensure_dirs()
    write_dbt_profile(settings)
    con = duckdb.connect(str(settings.warehouse_path))
    con.execute(RAW_DDL)
    con.close()
    empty = _dbt(settings, "run", "--empty", "--select", "path:models/clean")
    assert empty.returncode == 0, empty.stdout[-3000:]
    run = _dbt(settings, "test", "--select", "test_type:unit")
    return run, json.loads((settings.dbt_runs_dir / "unit" / "run_results.json").read_text())


def test_dbt_unit_tests_pass_and_all_of_them_run(unit_run) -> None:
    run, results = unit_run
    assert run.returncode == 0, run.stdout[-5000:]
    ran = {r["unique_id"].split(".", 2)[2].replace(".", "::"): r["status"] for r in results["results"]}
    assert ran == dict.fromkeys(UNIT_TESTS, "pass")
