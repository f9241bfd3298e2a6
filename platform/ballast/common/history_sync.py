"""Dagster's run history on SQLite without a disk flush per event.

Dagster's SQLite storage opens a connection and commits once per event, and SQLite's
default (`synchronous = FULL`) flushes the file to disk at every commit: about 15 ms a
commit on this class of machine, so a backfill's thousands of per-partition events cost
minutes. With `synchronous = OFF` a commit is a write to the OS: a killed or crashed
process loses nothing it committed; only an OS crash or power loss before the OS writes
its cache can damage the history (`BALLAST_HISTORY_SYNC=full` keeps SQLite's default).
The warehouse, the lake, Feast and the registry do not go through this.

The setting goes on each SQLite connection as SQLAlchemy opens it (SQLAlchemy's public
`connect` event), for databases under the Dagster homes registered here only.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import sqlalchemy

_homes: dict[str, str] = {}


def set_history_sync(dagster_home: Path, mode: str) -> None:
    """From now on in this process, open the SQLite databases under `dagster_home` with `synchronous = <mode>`.

    `mode`: one of settings.HISTORY_SYNC_MODES, checked by Settings.
    """
    if not sqlalchemy.event.contains(sqlalchemy.engine.Engine, "connect", _on_connect):
        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _on_connect)
    _homes[os.path.join(os.path.realpath(dagster_home), "")] = mode


def _on_connect(dbapi_connection: object, _record: object) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection) or not _homes:
        return
    found = dbapi_connection.execute("pragma database_list").fetchone()
    path = os.path.realpath(found[2]) if found and found[2] else ""
    for home, mode in _homes.items():
        if path.startswith(home):
            dbapi_connection.execute(f"pragma synchronous = {mode}")
            return
