"""The drift checks' descriptions state the thresholds a deployment is configured with."""

import datetime as dt
from pathlib import Path

import pandas as pd

from ballast import profiling
from ballast.common.partitions import daily_partitions
from ballast.monitoring.assets import (
    DRIFT_DAYS_LISTED,
    DRIFT_SHARE_CHECK,
    FEATURE_PSI_CHECK,
    _drift_metadata,
    drift_report_asset,
)
from tests.conftest import make_settings


def test_drift_check_descriptions_show_the_configured_thresholds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, drift_share_warn=0.3, psi_error=0.25)
    asset = drift_report_asset(settings, daily_partitions(settings), profiling.WhylogsEngine())
    specs = {spec.name: spec for spec in asset.check_specs}
    assert "BALLAST_DRIFT_SHARE_WARN (0.3)" in specs[DRIFT_SHARE_CHECK].description
    assert "BALLAST_PSI_ERROR (0.25)" in specs[FEATURE_PSI_CHECK].description


def test_drift_table_lists_only_the_latest_days_as_it_repeats_in_every_partition_event(tmp_path) -> None:
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(100)]
    per_day = [{"date": str(d), "drift_share": 0.0, "max_psi": 0.01, "max_psi_feature": "amount"} for d in days]
    metadata = _drift_metadata(per_day, pd.DataFrame(), days[0], tmp_path / "report.html")
    rows = metadata["drift_share_by_day"].value.splitlines()[2:]
    assert len(rows) == DRIFT_DAYS_LISTED
    assert str(days[-1]) in rows[-1] and str(days[-DRIFT_DAYS_LISTED]) in rows[0]
    assert metadata["partitions"] == 100
