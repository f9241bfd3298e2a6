"""Shared fixtures: one generated dataset and one full materialization per test session.

Everything runs for real (DuckDB, dbt, Dagster); state lives under pytest's tmp paths.
"""

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.cli.main import DEMO_CUSTOMERS, DEMO_DAYS, DEMO_SEED
from ballast.runs import instance, refresh
from ballast.settings import Settings

START = dt.date(2025, 1, 1)
FAULT_RATE = 0.05
# With 5 % of rows broken on purpose, some days exceed the default quarantine limit (5 %,
# meant for real deliveries) by chance, the worst at 7.4 %; the session's data must flow
# through every layer, so its limit sits well above that. test_quarantine_share.py tests the limit.
SESSION_MAX_QUARANTINE_SHARE = 0.25


@dataclass(frozen=True)
class Platform:
    settings: Settings
    manifest: dict
    result: dg.ExecuteInProcessResult
    start: dt.date
    end: dt.date

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        return query(self.settings, sql, params)

    def df(self, sql: str, params: list | None = None):
        return query(self.settings, sql, params, as_frame=True)


def query(settings: Settings, sql: str, params: list | None = None, as_frame: bool = False):
    """Read the warehouse with a connection of its own, closed right after."""
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        result = con.execute(sql, params or [])
        return result.df() if as_frame else result.fetchall()
    finally:
        con.close()


def make_settings(home: Path, **overrides) -> Settings:
    return Settings(home=home, landing_dir=home / "landing", start_date=START, **overrides)


# Session fixtures a test pulls in, directly or through another fixture, that make it full.
FULL_FIXTURES = {"platform", "spark"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `full` every test that needs the session's whole-graph run or Spark."""
    for item in items:
        if FULL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.full)


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Platform:
    """The demo's data with 5 % faults, materialized through every layer in one run."""
    settings = make_settings(tmp_path_factory.mktemp("ballast_home"), max_quarantine_share=SESSION_MAX_QUARANTINE_SHARE)
    settings.ensure_dirs()
    spec = GenerateSpec(
        out=settings.landing_dir,
        customers=DEMO_CUSTOMERS,
        days=DEMO_DAYS,
        start=START,
        seed=DEMO_SEED,
        faults=FAULT_RATE,
    )
    generate(spec)
    end = START + dt.timedelta(days=DEMO_DAYS - 1)
    dagster_instance = instance(settings)
    result = refresh(settings, START, end, dagster_instance=dagster_instance, log_level="WARNING")
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    manifest = json.loads((settings.landing_dir / "_manifest.json").read_text())
    yield Platform(settings, manifest, result, START, end)
    dagster_instance.dispose()


@pytest.fixture(scope="session")
def spark():
    """The test session's one SparkSession (about 12 s to start): local, 2 cores, no UI.

    Built from Ballast's own Spark settings, so the PySpark resource of an in-process
    run joins this session instead of starting another.
    """
    from dagster_pyspark.resources import spark_session_from_config

    settings = make_settings(Path("."), spark_master="local[2]", spark_conf=(("spark.ui.enabled", "false"),))
    session = spark_session_from_config(settings.spark_config)
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
