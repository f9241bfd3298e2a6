"""When a step is retried: only for a warehouse that another process holds, the one transient failure of a local step."""

# DuckDB's error when another process holds the warehouse file (a notebook, the DuckDB CLI,
# `ballast report`, a run of another instance): transient, unlike every other error of a step.
WAREHOUSE_LOCKED = "Could not set lock on file"
# A step that meets it is retried this many times, this many seconds apart, then fails naming the holder.
WAREHOUSE_LOCK_RETRIES = 4
WAREHOUSE_LOCK_WAIT_SECONDS = 15.0
# Appended to the no-retry reason (ballast.common.metadata.NO_RETRY_REASON) of every step that opens the warehouse.
LOCK_RETRY_NOTE = (
    f"Only a warehouse locked by another process is retried (up to {WAREHOUSE_LOCK_RETRIES} times,"
    f" {WAREHOUSE_LOCK_WAIT_SECONDS:g} s apart)."
)


def warehouse_locked(message: str) -> bool:
    """Whether an error's text is DuckDB's held-lock error (dbt reports it as text)."""
    return WAREHOUSE_LOCKED in message
