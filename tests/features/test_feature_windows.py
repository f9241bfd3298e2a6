"""The feature windows' one home (the dbt var) agrees with the feature names that carry them."""

import re

import yaml

from ballast.model.lineage import FEATURE_LOOKBACK_DAYS
from ballast.resources import feature_windows
from ballast.settings import DBT_PROJECT_DIR

MODEL_YML = DBT_PROJECT_DIR / "models" / "features" / "customer_daily_features.yml"


def test_the_days_in_feature_names_are_the_configured_windows() -> None:
    [model] = yaml.safe_load(MODEL_YML.read_text())["models"]
    days = {int(m[1]) for c in model["columns"] if (m := re.search(r"_(\d+)d$", c["name"]))}
    windows = feature_windows()
    assert windows.short < windows.medium < windows.long
    # txn_count_7d must count 7 days: a changed var with an unchanged name fails here.
    assert days == set(windows), f"feature names carry {sorted(days)}, dbt var feature_windows is {windows}"


def test_lineage_looks_back_the_long_window() -> None:
    assert feature_windows().long == FEATURE_LOOKBACK_DAYS
