"""The install leaves nothing to do at start-up: dependencies arrive with their bytecode compiled."""

import importlib
import importlib.util
from pathlib import Path

import pytest


@pytest.mark.parametrize("module", ["dagster", "dagster_dbt", "dbt.cli.main", "feast", "whylogs", "duckdb"])
def test_dependencies_are_installed_with_compiled_bytecode(module: str) -> None:
    # Where PYTHONDONTWRITEBYTECODE is set, a module without a .pyc is compiled from source by
    # every process that imports it (make setup's `uv sync --compile-bytecode` prevents that).
    source = importlib.util.find_spec(module).origin
    compiled = Path(importlib.util.cache_from_source(source))
    assert compiled.is_file(), f"{module}: no compiled bytecode at {compiled}"
