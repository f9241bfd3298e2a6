"""The raw tables of a warehouse, for comparing two loads of the same landing folder row for row."""

import duckdb

from ballast.raw.tables import (
    RAW_IGNORED_FILES_COLUMNS,
    RAW_IGNORED_FILES_TABLE,
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
