"""The share of each partition day's raw rows that the clean layer quarantined."""

import duckdb
import pandas as pd

from ballast.clean.tables import CLEAN_QUARANTINE_TABLE
from ballast.raw.tables import RAW_TRANSACTIONS_TABLE

_SHARES_SQL = f"""
with received as (
    select event_date, count(*) as raw_rows
    from {RAW_TRANSACTIONS_TABLE}
    where event_date between cast($first as date) and cast($last as date)
    group by 1
),
rejected as (
    select event_date, count(*) as quarantined_rows
    from {CLEAN_QUARANTINE_TABLE}
    where event_date between cast($first as date) and cast($last as date)
    group by 1
)
select
    event_date,
    raw_rows,
    coalesce(quarantined_rows, 0) as quarantined_rows,
    coalesce(quarantined_rows, 0) / raw_rows as share
from received
left join rejected using (event_date)
order by share desc, event_date
"""


def quarantine_shares(con: duckdb.DuckDBPyConnection, first: str, last: str) -> pd.DataFrame:
    """One row per day of [first, last] that received rows: raw rows, quarantined rows and their share, worst first."""
    return con.execute(_SHARES_SQL, {"first": first, "last": last}).df()


def shares_markdown(days: pd.DataFrame) -> str:
    """The days as a table a person reads: the share as a percentage."""
    shown = days.assign(
        event_date=days["event_date"].dt.strftime("%Y-%m-%d"),
        share=(days["share"] * 100).map("{:.1f} %".format),
    )
    return shown.to_markdown(index=False)
