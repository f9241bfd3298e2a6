"""The lean one-process floor the graph is held against (issue 16).

One plain Python process does the graph's work with no orchestration and nothing it
could skip: DuckDB's native CSV reader loads the window's landing files (malformed
records kept through the reader's rejects table, as the graph keeps them in
`raw_line`); the SQL dbt compiled once for the window runs on one DuckDB connection
(models and dbt tests); the point-in-time training set is DuckDB's ASOF JOIN instead of
Feast; the model is trained, evaluated and scores the last day; whylogs profiles the
features and scores in one pass segmented by day, and each day is compared with the
training reference; the latest row per customer goes to SQLite in one `executemany`.

`compare(floor_home, graph_home)` checks that both warehouses hold the same tables
with the same row counts, and the same clean rows.

Run by bench/e2e.py and bench/targets.py as
`python bench/floor.py --home H --landing L --compiled C --start D --end D --out clock.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import time
from pathlib import Path

import duckdb

# The tables both warehouses must hold with the same row counts.
COMPARED_TABLES = (
    "raw.transactions",
    "clean.transactions",
    "clean.transactions_quarantine",
    "features.customer_daily_features",
    "model.churn_labels",
)
# model/training_set.py's ENTITIES_SQL, unordered: importing that module would load Dagster and Feast.
ENTITIES_SQL = """
select customer_id, cast(snapshot_date + interval 1 day as timestamp) as event_timestamp, snapshot_date, churned
from model.churn_labels
where (snapshot_date - $anchor::date) % $every = 0
"""
LAYERS = ("raw", "clean", "features", "model", "monitoring")


class Clock:
    """Seconds per layer, charged to the layer named when a lap ends."""

    def __init__(self) -> None:
        self.layers: dict[str, float] = {}
        self.started = time.perf_counter()

    def lap(self, layer: str) -> None:
        now = time.perf_counter()
        self.layers[layer] = self.layers.get(layer, 0.0) + now - self.started
        self.started = now


def load_raw(con: duckdb.DuckDBPyConnection, landing: Path, start: dt.date, end: dt.date) -> None:
    """The window's CSV files through one read_csv; records the reader rejects are kept as raw lines."""
    from ballast.raw.landing import RAW_DDL, discover
    from ballast.raw.tables import CONTRACT_COLUMNS

    files = [f for f in discover(landing) if start <= f.event_date <= end and f.path.suffix == ".csv"]
    paths = [str(f.path) for f in files]
    con.execute(RAW_DDL)
    con.execute("create or replace temp table files (path varchar, event_date date, source_file varchar)")
    con.executemany("insert into files values (?, ?, ?)", [(str(f.path), f.event_date, f.path.name) for f in files])
    columns = ", ".join(CONTRACT_COLUMNS)
    con.execute(
        f"""
        insert into raw.transactions by name
        with hashes as (select filename as path, sha256(content) as file_hash from read_blob($paths)),
        rows as (
            select *, row_number() over (partition by filename) + 1 as line_number
            from read_csv($paths, all_varchar = true, header = true, filename = true, store_rejects = true)
        )
        select {columns}, f.event_date, f.source_file, h.file_hash, r.line_number, 'floor' as load_id
        from rows as r join files as f on r.filename = f.path join hashes as h on h.path = f.path
        """,
        {"paths": paths},
    )
    con.execute(
        """
        insert into raw.transactions by name
        select f.event_date, f.source_file, h.file_hash, e.line as line_number, 'floor' as load_id,
            e.csv_line as raw_line
        from reject_errors as e
        join reject_scans as s using (scan_id, file_id)
        join files as f on s.file_path = f.path
        join (select filename as path, sha256(content) as file_hash from read_blob($paths)) as h on h.path = f.path
        """,
        {"paths": paths},
    )


def build(con: duckdb.DuckDBPyConnection, compiled: Path, ephemeral: set[str], layer: str) -> None:
    """dbt's compiled models of a layer as tables, then its compiled tests as queries."""
    con.execute(f"create schema if not exists {layer}")
    for path in sorted((compiled / "models" / layer).glob("*.sql")):
        if path.stem not in ephemeral:  # inlined by dbt into the models that use them
            con.execute(f"create or replace table {layer}.{path.stem} as {path.read_text()}")
    tests = sorted((compiled / "models" / layer).glob("*.yml/*.sql"))
    if layer == "clean":
        tests += sorted((compiled / "tests").glob("*.sql"))
    for path in tests:
        con.execute(f"select count(*) from ({path.read_text()}) as failures").fetchone()


def write_online(con: duckdb.DuckDBPyConnection, path: Path, features: tuple[str, ...]) -> None:
    """The latest feature row per customer, one SQLite executemany."""
    rows = con.execute(
        f"select customer_id, feature_timestamp, {', '.join(features)} from features.customer_daily_features"
        " qualify row_number() over (partition by customer_id order by feature_date desc) = 1"
    ).fetchall()
    online = sqlite3.connect(path)
    columns = ", ".join(features)
    online.execute(
        f"create table customer_daily_features (customer_id text primary key, event_ts timestamp, {columns})"
    )
    with online:
        online.executemany(
            f"insert into customer_daily_features values ({', '.join('?' * (len(features) + 2))})",
            [(r[0], str(r[1]), *r[2:]) for r in rows],
        )
    online.close()


def train_and_score(con: duckdb.DuckDBPyConnection, settings):
    """The point-in-time training set by ASOF JOIN, training, evaluation and the gates, and the last day's scores."""
    import pandas as pd

    from ballast.model import evaluation, training

    train_set = con.execute(
        f"""
        select e.*, {", ".join(f"f.{c}" for c in training.FEATURES)}
        from ({ENTITIES_SQL}) as e
        asof left join features.customer_daily_features as f
            on e.customer_id = f.customer_id and f.feature_timestamp <= e.event_timestamp
        order by e.snapshot_date, e.customer_id
        """,
        {"anchor": settings.start_date, "every": settings.snapshot_every_days},
    ).df()
    trained = training.train(train_set, settings.holdout_fraction)
    _, holdout = training.time_split(train_set, settings.holdout_fraction)
    thresholds = evaluation.Thresholds()
    found = evaluation.evaluate(training.score(trained.pipeline, holdout), holdout, settings.segment_column, thresholds)
    evaluation.gates(found, None, thresholds)
    last = con.execute(
        "select * from features.customer_daily_features"
        " where feature_date = (select max(feature_date) from features.customer_daily_features)"
    ).df()
    scores = pd.DataFrame({"customer_id": last["customer_id"], "churn_score": training.score(trained.pipeline, last)})
    con.register("scores", scores)
    con.execute("create or replace table model.churn_scores as select * from scores")
    con.unregister("scores")
    return trained, train_set


def monitor(con: duckdb.DuckDBPyConnection, trained, train_set, out: Path) -> None:
    """One whylogs pass over features and scores segmented by day (the engine's own, as the graph's); each day's features compared with the reference."""
    from ballast import profiling
    from ballast.model import training

    engine = profiling.WhylogsEngine()
    frame = con.execute("select * from features.customer_daily_features order by feature_date").df()
    frame = frame[[*training.FEATURES, "feature_date"]]
    frame["churn_score"] = training.score(trained.pipeline, frame)
    profiles = engine.profile_by_day(frame, "feature_date")
    reference = engine.profile(train_set[list(training.FEATURES)])
    numeric = [c for c in training.FEATURES if c not in training.CATEGORICAL_FEATURES]
    categorical = list(training.CATEGORICAL_FEATURES)
    out.mkdir(parents=True, exist_ok=True)
    for day, found in profiles.items():
        (out / f"{day.isoformat()}.bin").write_bytes(found.profile)
        engine.compare(found.profile, reference, numeric, categorical)


def run(home: Path, landing: Path, compiled: Path, start: dt.date, end: dt.date, start_date: dt.date) -> dict:
    """The graph's work in one process; seconds per layer."""
    from ballast.model import training
    from ballast.settings import Settings

    settings = Settings(home=home, landing_dir=landing, start_date=start_date)
    settings.ensure_dirs()
    clock = Clock()
    con = duckdb.connect(str(settings.warehouse_path), config={"memory_limit": settings.duckdb_memory_limit})
    load_raw(con, landing, start, end)
    clock.lap("raw")
    manifest = json.loads((compiled.parents[1] / "manifest.json").read_text())
    ephemeral = {n["name"] for n in manifest["nodes"].values() if n["config"].get("materialized") == "ephemeral"}
    build(con, compiled, ephemeral, "clean")
    clock.lap("clean")
    build(con, compiled, ephemeral, "features")
    write_online(con, home / "online.db", training.FEATURES)
    clock.lap("features")
    build(con, compiled, ephemeral, "model")
    trained, train_set = train_and_score(con, settings)
    clock.lap("model")
    monitor(con, trained, train_set, settings.monitoring_dir / "profiles")
    clock.lap("monitoring")
    con.close()
    return clock.layers


def compare(floor_home: Path, graph_home: Path) -> dict:
    """Row counts of the compared tables in both warehouses, and whether the clean rows are the same."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{floor_home / 'warehouse.duckdb'}' as f (read_only)")
        con.execute(f"attach '{graph_home / 'warehouse.duckdb'}' as g (read_only)")
        counts = {
            table: [con.execute(f"select count(*) from {db}.{table}").fetchone()[0] for db in ("f", "g")]
            for table in COMPARED_TABLES
        }
        columns = ", ".join(
            c
            for (c,) in con.execute("select column_name from (describe f.clean.transactions)").fetchall()
            if c not in ("load_id", "loaded_at", "line_number")
        )
        differing = con.execute(
            f"select count(*) from ((select {columns} from f.clean.transactions"
            f" except all select {columns} from g.clean.transactions)"
            f" union all (select {columns} from g.clean.transactions"
            f" except all select {columns} from f.clean.transactions))"
        ).fetchone()[0]
    finally:
        con.close()
    return {
        "row_counts": counts,
        "same_row_counts": all(a == b for a, b in counts.values()),
        "clean_rows_differing": differing,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--compiled", type=Path, required=True)
    parser.add_argument("--start", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--end", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--start-date", type=dt.date.fromisoformat, help="BALLAST_START_DATE (default: --start)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    layers = run(args.home, args.landing, args.compiled, args.start, args.end, args.start_date or args.start)
    args.out.write_text(json.dumps(layers))


if __name__ == "__main__":
    main()
