"""Dagster's run history under a Ballast home is written without a disk flush per commit, unless asked."""

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy

from ballast.runs import instance
from ballast.settings import Settings, SettingsError
from tests.conftest import make_settings


def _synchronous(database: Path) -> int:
    """SQLite's `synchronous` on a connection SQLAlchemy opens, as Dagster's storage opens them."""
    engine = sqlalchemy.create_engine(f"sqlite:///{database}", poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("pragma synchronous").scalar_one()
    finally:
        engine.dispose()


def _history(settings: Settings) -> Path:
    dagster_instance = instance(settings)
    try:
        dagster_instance.report_runless_asset_event(dg.AssetMaterialization("probe"))
        assert dagster_instance.get_latest_materialization_event(dg.AssetKey("probe")) is not None
    finally:
        dagster_instance.dispose()
    [index] = settings.dagster_home.rglob("index.db")
    return index


def test_the_history_is_written_without_a_flush_per_commit(tmp_path: Path) -> None:
    index = _history(make_settings(tmp_path / "home"))
    assert _synchronous(index) == 0  # OFF
    # Other SQLite databases of the process keep SQLite's default (FULL).
    assert _synchronous(tmp_path / "other.db") == 2


def test_full_keeps_sqlites_default(tmp_path: Path) -> None:
    index = _history(make_settings(tmp_path / "home", history_sync="full"))
    assert _synchronous(index) == 2


def test_an_unknown_mode_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="BALLAST_HISTORY_SYNC='fast' is not one of off, normal, full"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_HISTORY_SYNC": "fast"})
