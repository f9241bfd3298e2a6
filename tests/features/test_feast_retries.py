"""The Feast steps retry what a retry can fix, and fail at once, in their defined way, on what it cannot."""

import datetime as dt
from pathlib import Path

import dagster as dg

from ballast.features.assets import ONLINE_STORE
from ballast.runs import refresh
from tests.conftest import START, make_settings


def test_online_store_before_any_registry_fails_once_without_retrying(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    settings.ensure_dirs()
    result = refresh(settings, START, START + dt.timedelta(days=1), selection=dg.AssetSelection.assets(ONLINE_STORE))
    assert not result.success
    types = [e.event_type_value for e in result.all_events]
    assert "STEP_UP_FOR_RETRY" not in types and "STEP_RESTARTED" not in types
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "materialize features/feature_registry" in failure.step_failure_data.error.message
