"""The raw layer's warehouse schema, tables and columns, named once (no Dagster here: the loader and the CLI read them)."""

from ballast.common.columns import Column

RAW_LAYER = "raw"
RAW_TRANSACTIONS_TABLE = f"{RAW_LAYER}.transactions"
RAW_REJECTED_FILES_TABLE = f"{RAW_LAYER}.rejected_files"
RAW_IGNORED_FILES_TABLE = f"{RAW_LAYER}.ignored_files"

# The input contract's columns (README "Input contract"), matched by name in a landing file.
REQUIRED_COLUMNS = ("transaction_id", "customer_id", "merchant_id", "amount", "currency", "event_timestamp")
OPTIONAL_COLUMNS = ("channel", "country")
CONTRACT_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS
_CONTRACT_DESCRIPTIONS = {
    "transaction_id": "The transaction id as received; the clean layer requires it and keeps its earliest delivery.",
    "customer_id": "The customer id as received.",
    "merchant_id": "The merchant id as received.",
    "amount": "The amount as received, as text; the clean layer takes a plain decimal in range with two decimals at most.",
    "currency": "The currency code as received, one of the configured currencies to pass the clean layer.",
    "event_timestamp": "When the transaction happened, as received: a timestamp with or without an offset.",
    "channel": "The channel as received (web, store or mobile); null when the file has no channel column.",
    "country": "The ISO-3166 alpha-2 country as received; null when the file has no country column.",
}

# Every value of a landing file is kept as text, exactly as received: the clean layer types it.
RAW_TRANSACTIONS_COLUMNS = (
    *(Column(name, "VARCHAR", _CONTRACT_DESCRIPTIONS[name]) for name in CONTRACT_COLUMNS),
    Column(
        "event_date", "DATE", "The event date the file was delivered for (from its name): the daily partition.", True
    ),
    Column("source_file", "VARCHAR", "Landing file the row came from, relative to the landing folder.", True),
    Column(
        "file_hash", "VARCHAR", "SHA-256 of the landing file as delivered (of the compressed bytes for gzip).", True
    ),
    Column(
        "line_number",
        "BIGINT",
        "Line of the row in its CSV file (the header is line 1), or row number in a Parquet file.",
        True,
    ),
    Column("load_id", "VARCHAR", "The Dagster run id of the load that brought the row in.", True),
    Column(
        "raw_line",
        "VARCHAR",
        "The CSV record as received when its fields could not be parsed (quarantined as malformed_line); null otherwise.",
    ),
    Column(
        "extra_columns",
        "VARCHAR",
        "Columns of the file beyond the input contract, comma-separated (not loaded); null when there were none.",
    ),
)
RAW_REJECTED_FILES_COLUMNS = (
    Column(
        "event_date",
        "DATE",
        "The event date in the file's name; null for an entry that belongs to no date (recorded on every run).",
    ),
    Column("source_file", "VARCHAR", "The landing file or entry, relative to the landing folder.", True),
    Column(
        "file_hash",
        "VARCHAR",
        "SHA-256 of the file as delivered; empty for an entry that belongs to no date, which is not read.",
        True,
    ),
    Column(
        "reason",
        "VARCHAR",
        "Why it was not loaded, as a reason code (e.g. empty_file, not_utf8, missing_columns, unsupported_format).",
        True,
    ),
    Column("detail", "VARCHAR", "What was wrong with the file, in words a person can act on.", True),
    Column("load_id", "VARCHAR", "The Dagster run id of the load that recorded the file.", True),
)
RAW_IGNORED_FILES_COLUMNS = (
    Column("source_file", "VARCHAR", "The ignored landing entry, relative to the landing folder.", True),
    Column(
        "reason",
        "VARCHAR",
        "Why the entry was ignored, as a reason code: os_debris, hidden_name or before_start_date.",
        True,
    ),
    Column("detail", "VARCHAR", "Why the entry was ignored, in words a person can act on.", True),
    Column("load_id", "VARCHAR", "The Dagster run id of the load that listed the entry.", True),
)
