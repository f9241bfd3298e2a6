"""The features layer's warehouse schema and tables (built by the dbt model of the same name), named once.

No Dagster and no Feast here: the Spark engine, the Feast helpers and the CLI read them.
"""

from ballast.common.columns import Column

FEATURES_LAYER = "features"
CUSTOMER_DAILY_FEATURES_TABLE = f"{FEATURES_LAYER}.customer_daily_features"
# The column the Parquet export adds to the feature table's (Feast's created timestamp column).
EXPORT_CREATED_COLUMN = Column(
    "created_timestamp",
    "TIMESTAMP",
    "When the export wrote the row, in UTC: of two rows for the same customer and time, Feast serves the later export.",
)
