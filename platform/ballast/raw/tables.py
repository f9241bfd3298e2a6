"""The raw layer's warehouse schema and tables, named once (no Dagster here: the loader and the CLI read them)."""

RAW_LAYER = "raw"
RAW_TRANSACTIONS_TABLE = f"{RAW_LAYER}.transactions"
RAW_REJECTED_FILES_TABLE = f"{RAW_LAYER}.rejected_files"
RAW_IGNORED_FILES_TABLE = f"{RAW_LAYER}.ignored_files"
