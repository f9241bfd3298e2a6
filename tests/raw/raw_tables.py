"""The raw tables of a warehouse, for comparing two loads of the same landing folder row for row."""

from pathlib import Path

import dagster as dg
import duckdb

from ballast.raw.assets import RAW_TRANSACTIONS
from ballast.raw.tables import (
    RAW_IGNORED_FILES_COLUMNS,
    RAW_IGNORED_FILES_TABLE,
    RAW_LAYER,
    RAW_REJECTED_FILES_COLUMNS,
    RAW_REJECTED_FILES_TABLE,
    RAW_TRANSACTIONS_COLUMNS,
    RAW_TRANSACTIONS_TABLE,
)


def raw_tables(con: duckdb.DuckDBPyConnection, load_ids: dict[str, str]) -> dict[str, list[tuple]]:
    """Every row of the three raw tables in a fixed order, each load id replaced by its label in `load_ids`.

    Two homes loaded from one folder differ only in their run ids; the labels (e.g. the
    first and second run) keep which load brought each row in, which must match too.
    """
    tables = {}
    for table, columns in (
        (RAW_TRANSACTIONS_TABLE, RAW_TRANSACTIONS_COLUMNS),
        (RAW_REJECTED_FILES_TABLE, RAW_REJECTED_FILES_COLUMNS),
        (RAW_IGNORED_FILES_TABLE, RAW_IGNORED_FILES_COLUMNS),
    ):
        labelled = ", ".join(
            "coalesce(map_from_entries(list_zip($ids::varchar[], $labels::varchar[]))[load_id], load_id)"
            if c.name == "load_id"
            else c.name
            for c in columns
        )
        tables[table] = con.execute(
            f"select {labelled} from {table} order by all", {"ids": list(load_ids), "labels": list(load_ids.values())}
        ).fetchall()
    return tables


def warehouse_raw_tables(warehouse: Path, load_ids: dict[str, str]) -> dict[str, list[tuple]]:
    """`raw_tables` of a warehouse file, read with a connection of its own."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return raw_tables(con, load_ids)
    finally:
        con.close()


def load_counts(result: dg.ExecuteInProcessResult) -> tuple[int, int, int]:
    """Files loaded, loaded in bulk and loaded per line, from the run's raw/transactions materialization."""
    [event, *_] = [
        m for m in result.asset_materializations_for_node("raw_transactions") if m.asset_key == RAW_TRANSACTIONS
    ]
    return tuple(event.metadata[key].value for key in ("files_loaded", "files_loaded_in_bulk", "files_loaded_per_line"))


# The raw layer alone, and the run config that has it parse every file on its own.
RAW = dg.AssetSelection.groups(RAW_LAYER)
PER_LINE = {"raw_transactions": {"per_line": True}}


def assert_bulk_matches_per_line(
    raw_pairs: list[tuple[dict, dict]],
    runs: tuple[dg.ExecuteInProcessResult, ...],
    per_line_runs: list[dg.ExecuteInProcessResult],
    bulk_first: int,
) -> None:
    """Both homes hold the same raw tables after every delivery; the twin parsed every file on its own;
    `bulk_first` of the first delivery's files went in bulk and at least one did not."""
    for loaded, per_line in raw_pairs:
        assert loaded == per_line
    for run, per_line_run in zip(runs, per_line_runs, strict=True):
        files = load_counts(run)[0]
        assert load_counts(per_line_run) == (files, 0, files)
    files, in_bulk, per_line = load_counts(runs[0])
    assert (in_bulk, per_line) == (bulk_first, files - bulk_first) and per_line > 0
