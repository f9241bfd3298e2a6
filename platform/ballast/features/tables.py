"""The features layer's warehouse schema and tables (built by the dbt model of the same name), named once.

No Dagster and no Feast here: the Spark engine, the Feast helpers and the CLI read them.
"""

FEATURES_LAYER = "features"
CUSTOMER_DAILY_FEATURES_TABLE = f"{FEATURES_LAYER}.customer_daily_features"
