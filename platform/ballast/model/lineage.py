"""What a model was trained on, back to the landing files: partitions, raw files and a training-data fingerprint."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import duckdb
import pandas as pd

from ballast.resources import feature_windows

# A feature row for day D reads transactions of the long feature window ending on D.
FEATURE_LOOKBACK_DAYS = feature_windows().long


def fingerprint(frame: pd.DataFrame, order_by: list[str]) -> str:
    """SHA-256 of the rows and columns of `frame`, independent of the order the rows came in."""
    ordered = frame.sort_values(order_by, kind="stable").reset_index(drop=True)
    digest = hashlib.sha256(",".join(map(str, ordered.columns)).encode())
    digest.update(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def trace(
    con: duckdb.DuckDBPyConnection, first_snapshot: dt.date, last_snapshot: dt.date, label_window_days: int
) -> dict[str, Any]:
    """Partitions and raw files behind snapshots [first, last]: features read FEATURE_LOOKBACK_DAYS back, labels label_window_days ahead."""
    clean_first = first_snapshot - dt.timedelta(days=FEATURE_LOOKBACK_DAYS - 1)
    clean_last = last_snapshot + dt.timedelta(days=label_window_days)
    files = con.execute(
        """
        select source_file, file_hash, event_date, count(*) as rows
        from raw.transactions
        where event_date between $first and $last
        group by all
        order by event_date, source_file
        """,
        {"first": clean_first, "last": clean_last},
    ).df()
    return {
        "feature_partitions": [first_snapshot.isoformat(), last_snapshot.isoformat()],
        "clean_partitions": [clean_first.isoformat(), clean_last.isoformat()],
        "raw_files": [
            {"file": f, "sha256": h, "event_date": str(d.date() if hasattr(d, "date") else d), "rows": int(n)}
            for f, h, d, n in files.itertuples(index=False)
        ],
    }
