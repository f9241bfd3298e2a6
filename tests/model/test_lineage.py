"""Lineage: the raw files behind a snapshot range, and a training-data fingerprint."""

import datetime as dt

import duckdb
import pandas as pd

from ballast.model.lineage import fingerprint, trace
from ballast.raw.landing import RAW_DDL


def test_trace_lists_the_raw_files_features_and_labels_read() -> None:
    con = duckdb.connect()
    con.execute(RAW_DDL)
    days = [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(200)]
    con.execute(
        "insert into raw.transactions (event_date, source_file, file_hash, line_number, load_id)"
        " select d, 'transactions_' || strftime(d, '%Y-%m-%d') || '.csv', md5(d::varchar), 1, 'l' from unnest($days) as t(d)",
        {"days": days},
    )
    found = trace(con, dt.date(2025, 4, 1), dt.date(2025, 4, 29), 30)
    assert found["clean_partitions"] == ["2025-01-02", "2025-05-29"]
    names = [f["file"] for f in found["raw_files"]]
    assert names[0] == "transactions_2025-01-02.csv" and names[-1] == "transactions_2025-05-29.csv"
    assert len(names) == (dt.date(2025, 5, 29) - dt.date(2025, 1, 2)).days + 1


def test_fingerprint_follows_content_not_row_order() -> None:
    frame = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0]})
    same = fingerprint(frame, ["customer_id"]) == fingerprint(frame.iloc[::-1], ["customer_id"])
    changed = fingerprint(frame, ["customer_id"]) != fingerprint(frame.assign(x=[1.0, 2.5]), ["customer_id"])
    assert same and changed
