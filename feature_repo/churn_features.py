"""Ballast's Feast definitions, in the order Feast reads them: entity, source, feature view, feature service.

The features themselves are computed once, by dbt
(dbt_project/models/features/customer_daily_features.sql), and exported to Parquet in
the lake by the asset `features/customer_daily_features_parquet`. This file tells Feast
where they are, what they are called and which of them the churn model uses, so that
training (point-in-time joins) and serving (online lookups) read the same definition.
"""

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.data_format import ParquetFormat
from feast.types import Float64, Int32, String

from ballast.features.feast_repo import FEATURES as CHURN_MODEL_FEATURES

# The lake lives under BALLAST_HOME, like every path in feature_store.yaml. The Feast CLI
# takes it from the environment; Ballast's assets run this file with their own home
# (runpy's init_globals), so a test's temporary home never touches the environment.
if "BALLAST_HOME" not in globals():
    if not os.environ.get("BALLAST_HOME"):
        raise RuntimeError(
            "BALLAST_HOME is not set; export it (e.g. BALLAST_HOME=$PWD/../.ballast) before running feast here"
        )
    BALLAST_HOME = os.environ["BALLAST_HOME"]

# A customer of the platform, keyed like every table in the warehouse.
customer = Entity(
    name="customer",
    join_keys=["customer_id"],
    value_type=ValueType.STRING,
    description="A customer, identified by the customer_id of the landing files.",
)

# One hive partition per feature date: lake/features/customer_daily_features/feature_date=YYYY-MM-DD/.
# feature_timestamp is the end of the feature day (the row is what was knowable then);
# created_timestamp is when the partition was exported, so a re-export wins ties.
customer_daily_features_source = FileSource(
    name="customer_daily_features_source",
    path=str(Path(BALLAST_HOME) / "lake" / "features" / "customer_daily_features"),
    # Required for a folder: without it Feast's DuckDB store reads the path as Delta.
    file_format=ParquetFormat(),
    timestamp_field="feature_timestamp",
    created_timestamp_column="created_timestamp",
    description="Parquet export of features/customer_daily_features, one folder per feature_date.",
)

# The same columns as the dbt model. A row describes one day, so a lookup more than a
# day past its timestamp finds nothing rather than stale windows.
customer_daily_features = FeatureView(
    name="customer_daily_features",
    entities=[customer],
    ttl=timedelta(days=1),
    schema=[
        Field(name="customer_id", dtype=String, description="The customer: the join key of the entity customer."),
        Field(name="txn_count_7d", dtype=Int32, description="Transactions in the 7 days ending on the feature date."),
        Field(name="txn_count_30d", dtype=Int32, description="Transactions in the last 30 days."),
        Field(name="txn_count_90d", dtype=Int32, description="Transactions in the last 90 days."),
        Field(name="spend_7d", dtype=Float64, description="Amount spent in the last 7 days."),
        Field(name="spend_30d", dtype=Float64, description="Amount spent in the last 30 days."),
        Field(name="spend_90d", dtype=Float64, description="Amount spent in the last 90 days."),
        Field(name="avg_amount_30d", dtype=Float64, description="Mean transaction amount over 30 days (0 if none)."),
        Field(name="days_since_last_txn", dtype=Int32, description="Days since the last transaction."),
        Field(name="tenure_days", dtype=Int32, description="Days since the first transaction."),
        Field(name="distinct_merchants_30d", dtype=Int32, description="Distinct merchants in the last 30 days."),
        Field(
            name="web_share_30d", dtype=Float64, description="Share of the last 30 days' transactions made on the web."
        ),
        Field(name="home_country", dtype=String, description="Most frequent country over 90 days."),
    ],
    source=customer_daily_features_source,
    online=True,
    description="Per-customer daily feature snapshots; one row per customer per day, 90 days after a transaction.",
    tags={"dbt_model": "customer_daily_features", "grain": "customer x day"},
)

# What model/churn_model trains on and what online scoring must look up: versioned, so
# a model can be traced to the exact feature list it saw. The list is
# ballast.features.feast_repo.FEATURES, which the model trains on, so the service and the
# model cannot drift apart.
churn_v1 = FeatureService(
    name="churn_v1",
    features=[customer_daily_features[list(CHURN_MODEL_FEATURES)]],
    description="Features of the churn propensity model, version 1.",
)
