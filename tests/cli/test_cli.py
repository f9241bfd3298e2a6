"""The `ballast` command as a user runs it: errors, generate, run and report."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.conftest import Platform

BALLAST = str(Path(sys.executable).parent / "ballast")


def _ballast(*args: str, home: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    if home is not None:
        full_env["BALLAST_HOME"] = str(home)
    return subprocess.run([BALLAST, *args], capture_output=True, text=True, env=full_env, timeout=600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["generate", "--out", "x", "--customers", "5", "--days", "2", "--start", "2025-13-01"],
            "'2025-13-01' is not a date",
        ),
        (
            ["generate", "--out", "x", "--customers", "five", "--days", "2", "--start", "2025-01-01"],
            "'five' is not a whole number",
        ),
        (["demo", "--bogus"], "unrecognized arguments: --bogus"),
        (["generate", "--out", "x"], "the following arguments are required: --customers, --days, --start"),
        (["launch"], "invalid choice: 'launch'"),
        (["run", "--landing", "/no/such/folder"], "folder '/no/such/folder' does not exist"),
        (["report", "--format", "xml"], "unrecognized arguments: --format xml"),
    ],
)
def test_bad_input_is_one_clear_line(args: list[str], message: str, tmp_path: Path) -> None:
    proc = _ballast(*args, home=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


def test_bad_setting_is_one_clear_line(tmp_path: Path) -> None:
    proc = _ballast("report", home=tmp_path, BALLAST_START_DATE="soon")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "ballast: error: BALLAST_START_DATE='soon' is not a date (expected YYYY-MM-DD)"


@pytest.mark.full  # `ballast run` loads every layer before it finds the problem (about 15 s)
def test_run_without_landing_files_says_so(tmp_path: Path) -> None:
    (tmp_path / "landing").mkdir()
    proc = _ballast("run", home=tmp_path)
    assert proc.returncode == 1 and "no landing files" in proc.stderr and "Traceback" not in proc.stderr


def test_report_json_has_layers_quarantine_and_model(platform: Platform) -> None:
    proc = _ballast("report", "--json", home=platform.settings.home)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["layers"]["raw/transactions"] == platform.manifest["rows"]
    assert report["layers"]["raw/transactions"] == (
        report["layers"]["clean/transactions"] + report["layers"]["clean/transactions_quarantine"]
    )
    assert sum(report["quarantine"].values()) == report["layers"]["clean/transactions_quarantine"]
    assert report["quarantine"]["malformed_line"] == platform.manifest["faults"]["malformed_line"]
    assert report["rejected_files"] == [] and report["layers"]["raw/rejected_files"] == 0
    champion = report["model"]["champion"]
    assert champion["version"] == "v0001" and champion["metrics"]["roc_auc"] > 0.65
    assert [g["name"] for g in champion["gates"]] == ["min_quality", "beats_baseline", "challenger", "fairness"]
    assert all(g["passed"] for g in champion["gates"]) and report["model"]["versions"] == 1
    metrics = champion["metrics"]
    assert metrics["baseline_margin"] == metrics["roc_auc"] - metrics["baseline_roc_auc"] > 0.01
    latest = report["model"]["latest_candidate"]
    assert latest["promoted"] and latest["baseline_margin"] == metrics["baseline_margin"]
    text = _ballast("report", home=platform.settings.home).stdout
    assert (
        f"holdout ROC AUC {metrics['roc_auc']:.3f}  recency baseline {metrics['baseline_roc_auc']:.3f}"
        f" (margin {metrics['baseline_margin']:+.3f})"
    ) in text
    # No drift in this data: the latest partition is judged and within the thresholds.
    assert report["drift"]["partition"] == platform.end.isoformat() and report["drift"]["champion"] == "v0001"
    assert report["drift"]["max_psi"] <= 0.2 and report["alerts"] == {}


@pytest.mark.full
def test_generate_then_run_on_the_users_own_folder(tmp_path: Path) -> None:
    landing = tmp_path / "my_files"
    gen = _ballast(
        "generate",
        "--out",
        str(landing),
        "--customers",
        "250",
        "--days",
        "50",
        "--start",
        "2025-03-01",
        "--seed",
        "2",
        "--format",
        "parquet",
    )
    assert gen.returncode == 0, gen.stderr
    assert len(list(landing.glob("transactions_*.parquet"))) == 50
    assert "generating" in gen.stderr  # the progress bar
    home = tmp_path / "home"
    run = _ballast("run", "--landing", str(landing), home=home, BALLAST_START_DATE="2025-03-01")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # A new home: every file is new, every day refreshed, in one run.
    assert "run: 50 new files; refreshing 2025-03-01 to 2025-04-19 and 50 feature days and" in run.stdout
    assert "in 1 run\n" in run.stdout
    assert "Rows per layer:" in run.stdout and "make dev" in run.stdout
    report = json.loads(_ballast("report", "--json", home=home, BALLAST_START_DATE="2025-03-01").stdout)
    assert report["layers"]["clean/transactions"] == report["layers"]["raw/transactions"] > 0
    # 250 customers over 50 days make a weak first model: the quality gate stops it, it barely
    # beats the recency baseline, and the run says which gates and why.
    latest = report["model"]["latest_candidate"]
    assert not latest["promoted"] and report["model"]["champion"] is None
    assert [g["name"] for g in latest["gates"] if not g["passed"]] == ["min_quality", "beats_baseline"]
    assert latest["baseline_margin"] <= 0.01
    assert f"Candidate {latest['version']} was not promoted (min_quality: " in run.stdout


@pytest.mark.full  # `ballast run` loads every layer before it finds the problem (about 15 s)
def test_files_before_the_start_date_are_reported(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "transactions_2024-12-31.csv").write_text("transaction_id\n")
    proc = _ballast("run", home=tmp_path, BALLAST_START_DATE="2025-01-01")
    assert proc.returncode == 1
    assert "every landing file is dated before BALLAST_START_DATE=2025-01-01" in proc.stderr


def test_unknown_feature_engine_is_refused(tmp_path: Path) -> None:
    proc = _ballast("report", home=tmp_path, BALLAST_FEATURE_ENGINE="pandas")
    assert proc.returncode == 1 and "BALLAST_FEATURE_ENGINE='pandas' is not one of duckdb" in proc.stderr


def _ballast_on_a_terminal(*args: str, home: Path, **env: str) -> tuple[int, str]:
    """Run the command with stderr on a pseudo-terminal of 120 columns; its exit code and what the terminal got."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    full_env = {**os.environ, **env, "BALLAST_HOME": str(home)}
    proc = subprocess.Popen([BALLAST, *args], stdout=subprocess.DEVNULL, stderr=follower, env=full_env)
    os.close(follower)
    received = b""
    # Read until the child closes the terminal (EIO on Linux), then collect its exit code.
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        received += chunk
    os.close(leader)
    return proc.wait(timeout=600), received.decode().replace("\r\n", "\n")


@pytest.mark.full
def test_too_little_data_to_train_is_one_clear_line(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    gen = _ballast("generate", "--out", str(landing), "--customers", "50", "--days", "5", "--start", "2025-01-01")
    assert gen.returncode == 0, gen.stderr
    # On a terminal: a progress bar, closed on a line of its own before the error lines.
    code, stderr = _ballast_on_a_terminal("run", home=tmp_path, BALLAST_START_DATE="2025-01-01")
    assert code == 1 and "Traceback" not in stderr
    bar, _, rest = stderr.partition("\n")
    frames = [f for f in bar.split("\r") if f]
    assert len(frames) > 2 and all(
        re.fullmatch(r"run: +\d+%\|.*\| \d+/\d+ steps \[\d\d:\d\d.*\]", f) for f in frames
    ), bar
    counts = [int(re.search(r"(\d+)/\d+ steps", f)[1]) for f in frames]
    assert counts == sorted(counts) and 0 < counts[-1] < int(re.search(r"/(\d+) steps", frames[-1])[1])
    assert "model/churn_model" in bar and frames[-1].endswith(", 1 failed]")
    assert rest.strip().splitlines() == [
        "ballast: error: step model__churn_model failed: cannot train churn_model: the training set has"
        " 0 snapshot date(s); a time-based holdout needs 2 or more (a snapshot gets a label only once"
        " 30 days of later data have arrived)",
        f"ballast: error: the run failed (1 failed step(s)); full log: {tmp_path / 'logs' / 'last_run.log'}",
    ]
    assert (tmp_path / "logs" / "last_run.log").stat().st_size > 0


def test_a_run_names_each_check_that_failed_without_stopping_it(capsys) -> None:
    import dagster as dg

    from ballast.cli import main as cli

    @dg.asset(
        check_specs=[
            dg.AssetCheckSpec("no_missing_days", asset="loaded"),
            dg.AssetCheckSpec("row_count_in_expected_range", asset="loaded"),
            dg.AssetCheckSpec("rows_parse", asset="loaded", blocking=True),
        ]
    )
    def loaded():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="no_missing_days",
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description="2 day(s) have no landing file: 2025-01-20..2025-01-21\nmore context",
        )
        yield dg.AssetCheckResult(check_name="row_count_in_expected_range", passed=True)
        # A blocking check stops the run; the error line names it, not a warning.
        yield dg.AssetCheckResult(check_name="rows_parse", passed=False)

    result = dg.materialize([loaded], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert len([e for e in result.get_asset_check_evaluations() if not e.passed]) == 2
    capsys.readouterr()  # Dagster's own log lines
    cli._warn_failed_checks([result])
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "ballast: warning: check loaded:no_missing_days failed (ERROR):"
        " 2 day(s) have no landing file: 2025-01-20..2025-01-21"
    ]


@pytest.mark.parametrize("blocked", [True, False])
def test_a_run_a_blocking_check_stopped_fails_and_says_what_the_ui_shows(blocked: bool, tmp_path: Path, capsys) -> None:
    import dagster as dg

    from ballast.cli import main as cli
    from ballast.common.gates import judge
    from tests.conftest import make_settings

    @dg.multi_asset(
        specs=[dg.AssetSpec("loaded", skippable=True)],
        check_specs=[dg.AssetCheckSpec("rows_parse", asset="loaded")],
    )
    def loaded():
        if not blocked:
            raise ValueError("the landing folder is unreadable")
        # A gate as the dbt steps run it: the failed check withholds the asset.
        withheld, results = judge(
            dg.AssetKey("loaded"),
            [
                dg.AssetCheckResult(
                    asset_key="loaded", check_name="rows_parse", passed=False, description="3 rows do not parse"
                )
            ],
        )
        assert withheld
        yield from results

    @dg.asset(deps=[loaded], check_specs=[dg.AssetCheckSpec("has_rows", asset="features")])
    def features():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(check_name="has_rows", passed=True)

    result = dg.materialize([loaded, features], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    # Dagster sees a blocked run succeed (features skipped); ballast run still fails it, naming the check.
    assert result.success is blocked
    capsys.readouterr()  # Dagster's own log lines
    with pytest.raises(cli.UserError, match="stopped by 1 blocking check" if blocked else "1 failed step"):
        cli._check_result(result, tmp_path / "last_run.log", make_settings(tmp_path))
    captured = capsys.readouterr()
    assert (cli.BLOCKED_NOTE in captured.out.splitlines()) is blocked
    named = "ballast: error: blocking check loaded:rows_parse failed (3 rows do not parse)"
    assert (named in captured.err.splitlines()) is blocked
    # Not repeated as a warning: it is the error.
    cli._warn_failed_checks([result])
    assert capsys.readouterr().err == ""
