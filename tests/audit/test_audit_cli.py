"""`ballast audit` as a user runs it: the scorecard without a run, and its exit status under --fail-under."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ballast.cli.main import main

BALLAST = str(Path(sys.executable).parent / "ballast")


def _audit(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "BALLAST_HOME": str(home)}
    return subprocess.run([BALLAST, "audit", *args], capture_output=True, text=True, env=env, timeout=600)


def test_fail_under_gates_the_exit_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    # In this process (the definitions are loaded once per process: that is most of the cost), then as a user runs it.
    monkeypatch.setenv("BALLAST_HOME", str(tmp_path))
    assert main(["audit", "--json", "--fail-under", "0"]) == 0
    card = json.loads(capsys.readouterr().out)
    index = card["overall"]["debt_index"]
    assert 0 <= index < 0.99
    assert card["gate"] == {"fail_under": 0.0, "passed": True, "failures": []}
    assert {a["asset"] for a in card["assets"]} >= {"audit/debt_scorecard", "raw/transactions"}
    assert not (tmp_path / "warehouse.duckdb").exists()  # nothing ran

    failing = _audit(tmp_path, "--fail-under", "0.99")
    assert failing.returncode == 1
    # The last line (a stale dbt manifest is re-parsed first, and dbt may say so on stderr).
    assert failing.stderr.strip().splitlines()[-1] == (
        f"ballast: error: the debt gate failed: overall debt index {index:.3f} is below --fail-under 0.99"
    )
    assert "Debt scorecard:" in failing.stdout and "Traceback" not in failing.stderr


def test_a_bad_threshold_is_a_usage_error(tmp_path: Path) -> None:
    result = _audit(tmp_path, "--fail-under", "1.5")
    assert result.returncode == 2
    assert "'1.5' must be between 0 and 1" in result.stderr
