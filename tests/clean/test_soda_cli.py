"""`soda contract verify` from the command line on the warehouse, as the README shows."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ballast.settings import CONTRACTS_DIR
from tests.conftest import Platform

SODA = str(Path(sys.executable).parent / "soda")


@pytest.mark.parametrize("contract", ["raw_transactions.yml", "clean_transactions.yml", "customer_daily_features.yml"])
def test_soda_cli_verifies_each_contract(platform: Platform, contract: str) -> None:
    env = {**os.environ, "SODA_CORE_TELEMETRY_ENABLED": "false"}
    proc = subprocess.run(
        [
            SODA,
            "contract",
            "verify",
            "-c",
            str(CONTRACTS_DIR / contract),
            "-ds",
            str(platform.settings.soda_data_source),
            "--set",
            f"start_date={platform.start}",
            "--set",
            f"end_date={platform.end}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "FAILED" not in proc.stdout
