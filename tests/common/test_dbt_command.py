"""The dbt command of the dbt steps: `--version` from the package metadata, everything else to dbt."""

import subprocess
import sys
from importlib import metadata

from ballast.resources import DBT_EXECUTABLE


def test_version_is_answered_without_starting_dbt_or_the_network() -> None:
    probe = (
        "import sys; sys.argv = ['ballast-dbt', '--version'];"
        " from ballast.common.dbt_command import main; main();"
        " print(sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert f"installed: {metadata.version('dbt-core')}" in out
    assert out.strip().endswith("[]"), out  # dbt itself was never imported, so never asked PyPI


def test_every_other_command_is_dbt_itself() -> None:
    result = subprocess.run([DBT_EXECUTABLE, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "An ELT tool for managing your SQL transformations" in result.stdout
