"""The drift checks' descriptions state the thresholds a deployment is configured with."""

from pathlib import Path

from ballast import profiling
from ballast.common.partitions import daily_partitions
from ballast.monitoring.assets import DRIFT_SHARE_CHECK, FEATURE_PSI_CHECK, drift_report_asset
from tests.conftest import make_settings


def test_drift_check_descriptions_show_the_configured_thresholds(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, drift_share_warn=0.3, psi_error=0.25)
    asset = drift_report_asset(settings, daily_partitions(settings), profiling.WhylogsEngine())
    specs = {spec.name: spec for spec in asset.check_specs}
    assert "BALLAST_DRIFT_SHARE_WARN (0.3)" in specs[DRIFT_SHARE_CHECK].description
    assert "BALLAST_PSI_ERROR (0.25)" in specs[FEATURE_PSI_CHECK].description
