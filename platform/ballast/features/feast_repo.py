"""Names and paths of the Feast repo in feature_repo/, and what can be read of the store without importing Feast.

`import feast` costs several seconds; the report and the Dagster code location use
this module so that only the steps that talk to Feast pay for it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import yaml

from ballast.common import lake
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE, EXPORT_CREATED_COLUMN
from ballast.settings import REPO_ROOT

FEATURE_REPO_DIR = REPO_ROOT / "feature_repo"
STORE_YAML = FEATURE_REPO_DIR / "feature_store.yaml"
DEFINITIONS_FILE = FEATURE_REPO_DIR / "churn_features.py"
PROJECT = "ballast"
FEATURE_VIEW = "customer_daily_features"
FEATURE_SERVICE = "churn_v1"
ENTITY_KEY = "customer_id"
# When a row was exported to the lake: Feast's created_timestamp_column, so a re-export wins ties.
CREATED_COLUMN = EXPORT_CREATED_COLUMN.name
# Feast's SQLite layout: one table per project and feature view.
ONLINE_TABLE = f"{PROJECT}_{FEATURE_VIEW}"


# Days since the customer's last transaction: also the model layer's naive recency baseline.
RECENCY_FEATURE = "days_since_last_txn"
# The features of the churn_v1 feature service: what the churn model trains on and
# what online scoring looks up. The model takes its list from here.
NUMERIC_FEATURES = (
    "txn_count_7d",
    "txn_count_30d",
    "txn_count_90d",
    "spend_7d",
    "spend_30d",
    "spend_90d",
    "avg_amount_30d",
    RECENCY_FEATURE,
    "tenure_days",
    "distinct_merchants_30d",
    "web_share_30d",
)
CATEGORICAL_FEATURES = ("home_country",)
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES


class FeatureStoreError(RuntimeError):
    """The feature store cannot do what was asked; the message says what to run first."""


def feature_dir(lake_dir: Path) -> Path:
    """The Parquet export of the feature table: one hive partition (feature_date=...) per day."""
    return lake.table_dir(lake_dir, CUSTOMER_DAILY_FEATURES_TABLE)


def feature_time(day: dt.date) -> dt.datetime:
    """A feature row for day D describes the end of D: its event time is D + 1 at 00:00 UTC."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


def code_version() -> str:
    """Changes when the repo's definitions, its store configuration or the model's feature list may have changed."""
    digest = hashlib.sha256()
    for path in (STORE_YAML, DEFINITIONS_FILE, Path(__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def export_features(
    con: duckdb.DuckDBPyConnection, lake_dir: Path, first: dt.date, last: dt.date, created_at: dt.datetime
) -> int:
    """Write the feature days [first, last] to the lake as Parquet, replacing those days' folders; returns rows written."""
    return lake.replace_days(
        con,
        f"""
        select *, cast($created_at as {EXPORT_CREATED_COLUMN.type}) as {EXPORT_CREATED_COLUMN.name}
        from {CUSTOMER_DAILY_FEATURES_TABLE}
        where feature_date between $first and $last
        order by feature_date, customer_id
        """,
        {"first": first, "last": last, "created_at": created_at.astimezone(dt.UTC).replace(tzinfo=None)},
        feature_dir(lake_dir),
        "feature_date",
        first,
        last,
    )


def lake_rows(lake_dir: Path, first: dt.date, last: dt.date) -> int:
    """Feature rows of the days [first, last] in the lake (what Feast's offline store reads)."""
    root = feature_dir(lake_dir)
    days = (first + dt.timedelta(days=n) for n in range((last - first).days + 1))
    files = [str(f) for day in days for f in (root / f"feature_date={day.isoformat()}").glob("*.parquet")]
    if not files:
        return 0
    con = duckdb.connect()
    try:
        return con.execute("select count(*) from read_parquet($files)", {"files": files}).fetchone()[0]
    finally:
        con.close()


def offline_latest(lake_dir: Path, day: dt.date, sample_size: int) -> pd.DataFrame:
    """Up to `sample_size` customers of feature day `day` from the lake, latest created row each, in a fixed sample order."""
    pattern = str(feature_dir(lake_dir) / f"feature_date={day.isoformat()}" / "*.parquet")
    con = duckdb.connect()
    try:
        return con.execute(
            """
            select * exclude (created_timestamp)
            from read_parquet($pattern)
            qualify row_number() over (partition by customer_id order by created_timestamp desc) = 1
            order by hash(customer_id), customer_id
            limit $n
            """,
            {"pattern": pattern, "n": sample_size},
        ).df()
    finally:
        con.close()


def store_text(home: Path, yaml_file: Path = STORE_YAML) -> str:
    """A feature_store.yaml with ${BALLAST_HOME} as `home` (other variables left for Feast)."""
    return yaml_file.read_text().replace("${BALLAST_HOME}", str(home))


def _store_yaml(home: Path) -> dict[str, Any]:
    return yaml.safe_load(store_text(home))


def online_store_path(home: Path) -> Path:
    return Path(_store_yaml(home)["online_store"]["path"])


def registry_path(home: Path) -> Path:
    return Path(_store_yaml(home)["registry"]["path"])


def materializing_marker(home: Path) -> Path:
    """A file that exists while Ballast materializes the online store, and that a killed or failed materialization leaves.

    Recovery looks for it before importing Feast (about 8 s) to reset a view left MATERIALIZING.
    """
    return registry_path(home).parent / "materializing.pending"


def online_status(home: Path) -> dict[str, Any] | None:
    """Customers online and the latest feature day online, read from the SQLite file; None before any materialization."""
    path = online_store_path(home)
    if not path.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if not con.execute(
                "select 1 from sqlite_master where type = 'table' and name = ?", [ONLINE_TABLE]
            ).fetchone():
                return None
            entities, latest = con.execute(
                f'select count(distinct entity_key), max(event_ts) from "{ONLINE_TABLE}"'
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise FeatureStoreError(
            f"the online store {path} cannot be read ({exc}); delete it and run `ballast run`"
            " (or materialize features/online_store) to rebuild it"
        ) from None
    # Rows are written latest-wins, so the newest event time (epoch seconds, as Feast
    # stores it) is the end of the last day materialized.
    last_day = None if latest is None else (dt.datetime.fromtimestamp(latest, dt.UTC) - dt.timedelta(days=1)).date()
    return {
        "feature_service": FEATURE_SERVICE,
        "entities_online": entities,
        "last_materialized_partition": None if last_day is None else last_day.isoformat(),
        "online_store": str(path),
    }
