"""The clean layer's warehouse schema and tables (built by the dbt models of the same names), named once."""

CLEAN_LAYER = "clean"
CLEAN_TRANSACTIONS_TABLE = f"{CLEAN_LAYER}.transactions"
CLEAN_QUARANTINE_TABLE = f"{CLEAN_LAYER}.transactions_quarantine"
