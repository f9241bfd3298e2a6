"""The Parquet lake under BALLAST_HOME/lake: tables exported from the warehouse, one hive folder per day."""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb

from ballast.common.columns import Column
from ballast.common.retries import LOCK_RETRY_NOTE

# Why the assets that export to the lake have no retry policy (ballast.common.metadata.NO_RETRY_REASON).
NO_RETRY = (
    "Exports the local DuckDB warehouse to the local Parquet lake, swapping day folders in whole: a retry"
    f" repeats the same failure (disk, schema), and the next run rewrites the window. {LOCK_RETRY_NOTE}"
)


def table_dir(lake_dir: Path, table: str) -> Path:
    """The lake folder of the warehouse table `layer.name`: lake/layer/name."""
    return lake_dir.joinpath(*table.split("."))


def lake_columns(columns: Sequence[Column], partition_column: str, added: Sequence[Column] = ()) -> tuple[Column, ...]:
    """The columns of a lake table as a reader with hive partitioning sees them.

    `columns` are the exported table's, `added` those the export appends; the partition
    column lives in the folder names, so a reader lists it last.
    """
    [partition] = [c for c in columns if c.name == partition_column]
    return (*(c for c in columns if c is not partition), *added, partition)


def replace_days(
    con: duckdb.DuckDBPyConnection,
    select_sql: str,
    params: dict,
    root: Path,
    date_column: str,
    first: dt.date,
    last: dt.date,
) -> int:
    """Write `select_sql` (rows of the days [first, last]) under `root`, one `date_column=` folder per day.

    Replaces those days' folders; returns the rows written. The new files are written
    beside `root` and moved in per day, so a reader sees a day's old folder or its new
    one, and a day with no rows any more loses its old folder.
    """
    staging = staging_dir(root)
    try:
        quoted = str(staging).replace("'", "''")
        rows = con.execute(
            f"copy ({select_sql}) to '{quoted}' (format parquet, partition_by ({date_column}), filename_pattern 'part_{{i}}')",
            params,
        ).fetchone()[0]
        swap_days(staging, root, date_column, first, last)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return int(rows)


def staging_dir(root: Path) -> Path:
    """A new, empty folder beside `root` to write a window into before `swap_days`."""
    staging = root.parent / f".staging-{root.name}-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    return staging


def swap_days(staging: Path, root: Path, date_column: str, first: dt.date, last: dt.date) -> None:
    """Move each day's folder of [first, last] from `staging` into `root`, replacing (or removing) the old one.

    An old folder is renamed away before it is deleted: a process killed while deleting
    leaves a partial folder under a hidden trash name (removed by monitoring.recovery.recover),
    never a day with some of its files missing.
    """
    root.mkdir(parents=True, exist_ok=True)
    trash = root.parent / f".trash-{root.name}-{uuid.uuid4().hex}"
    trash.mkdir()
    try:
        day = first
        while day <= last:
            name = f"{date_column}={day.isoformat()}"
            if (root / name).exists():
                (root / name).rename(trash / name)
            if (staging / name).exists():
                (staging / name).rename(root / name)
            day += dt.timedelta(days=1)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
