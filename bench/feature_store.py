"""Benchmark: Feast materialization and online lookups on 100,000 customers (issue 4 targets).

Measures, on one day of features for 100,000 customers in the lake:
- materializing it into the online store with Ballast's writer (LatestWinsSqliteOnlineStore)
  and with Feast's stock SQLite writer, each into an empty store;
- the floor: a plain sqlite3 `executemany` of the same rows into the same table;
- online lookups through the Python SDK in-process (feature service churn_v1):
  1 customer and 100 customers per call.

Run with `make bench` (or `.venv/bin/python bench/feature_store.py`). Writes
bench/results/feature_store.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import feast
import yaml
from feast import FeatureStore, RepoConfig

from ballast.features import feast_repo
from ballast.features import feast_store as fs

DAY = dt.date(2025, 1, 1)
RESULTS = Path(__file__).parent / "results" / "feature_store.json"
TARGETS = {
    "materialize_100k_s": 30.0,
    "lookup_1_p50_ms": 2.0,
    "lookup_1_p99_ms": 5.0,
    "lookup_100_p50_ms": 20.0,
}


def write_features(lake_dir: Path, customers: int) -> None:
    """One day of features for `customers` customers, with the export's columns and types."""
    folder = feast_repo.feature_dir(lake_dir) / f"feature_date={DAY}"
    folder.mkdir(parents=True)
    con = duckdb.connect()
    try:
        con.execute(
            f"""
            copy (
                select
                    printf('C%07d', i) as customer_id,
                    $ts::timestamp as feature_timestamp,
                    (i % 5)::integer as txn_count_7d,
                    (i % 17)::integer as txn_count_30d,
                    (i % 41)::integer as txn_count_90d,
                    (i % 500) * 1.25 as spend_7d,
                    (i % 900) * 2.5 as spend_30d,
                    (i % 1300) * 3.75 as spend_90d,
                    (i % 97) * 1.01 as avg_amount_30d,
                    (i % 90)::integer as days_since_last_txn,
                    (i % 365)::integer as tenure_days,
                    (i % 12)::integer as distinct_merchants_30d,
                    (i % 10) / 10.0 as web_share_30d,
                    ['US', 'GB', 'DE', 'FR'][i % 4 + 1] as home_country,
                    $ts::timestamp as created_timestamp
                from range($n) as t(i)
            ) to '{folder / "part_0.parquet"}' (format parquet)
            """,
            {"n": customers, "ts": fs.feature_time(DAY).replace(tzinfo=None)},
        )
    finally:
        con.close()


def open_store(home: Path, online_type: str | None) -> FeatureStore:
    """The repo's store on `home`; `online_type` swaps the online store class (e.g. Feast's stock `sqlite`)."""
    if online_type is None:
        return fs.open_store(home)
    raw = yaml.safe_load(feast_repo.store_text(home))
    raw["online_store"]["type"] = online_type
    config = RepoConfig(**raw)
    config.repo_path = feast_repo.FEATURE_REPO_DIR
    return FeatureStore(repo_path=str(feast_repo.FEATURE_REPO_DIR), config=config)


def reset_online(home: Path) -> None:
    for path in (feast_repo.online_store_path(home), feast_repo.registry_path(home)):
        path.unlink(missing_ok=True)


def time_materialize(home: Path, online_type: str | None, repeats: int) -> list[float]:
    seconds = []
    for _ in range(repeats):
        reset_online(home)
        store = open_store(home, online_type)
        fs.apply(store, fs.definitions(home))
        started = time.perf_counter()
        fs.materialize(store, DAY, DAY)
        seconds.append(time.perf_counter() - started)
    return seconds


def time_floor(home: Path, repeats: int) -> list[float]:
    """A plain executemany of exactly the rows the online store holds, into an empty table of the same layout."""
    source = sqlite3.connect(feast_repo.online_store_path(home))
    rows = source.execute(
        f'select entity_key, feature_name, value, event_ts, created_ts from "{feast_repo.ONLINE_TABLE}"'
    ).fetchall()
    source.close()
    seconds = []
    for repeat in range(repeats):
        con = sqlite3.connect(home / f"floor_{repeat}.db")
        con.execute(
            "create table t (entity_key blob, feature_name text, value blob, value_text text, vector_value blob,"
            " event_ts timestamp, created_ts timestamp, primary key (entity_key, feature_name))"
        )
        con.execute("create index t_ek on t (entity_key)")
        started = time.perf_counter()
        with con:
            con.executemany(
                "insert into t (entity_key, feature_name, value, event_ts, created_ts) values (?, ?, ?, ?, ?)", rows
            )
        seconds.append(time.perf_counter() - started)
        con.close()
    return seconds


def time_lookups(store: FeatureStore, customers: int, batch: int, calls: int, seed: int) -> list[float]:
    service = store.get_feature_service(feast_repo.FEATURE_SERVICE)
    pick = random.Random(seed)
    ids = [f"C{i:07d}" for i in range(customers)]
    for _ in range(20):  # warm caches and the registry
        store.get_online_features(features=service, entity_rows={"customer_id": pick.sample(ids, batch)}).to_dict()
    seconds = []
    for _ in range(calls):
        chosen = pick.sample(ids, batch)
        started = time.perf_counter()
        store.get_online_features(features=service, entity_rows={"customer_id": chosen}).to_dict()
        seconds.append(time.perf_counter() - started)
    return seconds


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ballast_bench_feast_") as tmp:
        home = Path(tmp)
        write_features(home / "lake", args.customers)
        stock = time_materialize(home, "sqlite", args.repeats)
        ours = time_materialize(home, None, args.repeats)
        floor = time_floor(home, args.repeats)
        store = open_store(home, None)
        one = time_lookups(store, args.customers, 1, args.calls, seed=1)
        hundred = time_lookups(store, args.customers, 100, max(args.calls // 3, 100), seed=2)

    figures = {
        "materialize_100k_s": statistics.median(ours),
        "materialize_100k_stock_s": statistics.median(stock),
        "executemany_floor_s": statistics.median(floor),
        "lookup_1_p50_ms": quantile(one, 0.50) * 1000,
        "lookup_1_p99_ms": quantile(one, 0.99) * 1000,
        "lookup_100_p50_ms": quantile(hundred, 0.50) * 1000,
        "lookup_100_p99_ms": quantile(hundred, 0.99) * 1000,
    }
    report = {
        "date": dt.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "versions": {"feast": feast.__version__, "duckdb": duckdb.__version__, "sqlite": sqlite3.sqlite_version},
        "customers": args.customers,
        "features_per_customer": 12,
        "repeats": args.repeats,
        "lookup_calls": {"1": len(one), "100": len(hundred)},
        "figures": {k: round(v, 4) for k, v in figures.items()},
        "runs_s": {"ours": ours, "stock": stock, "floor": floor},
        "targets": TARGETS,
        "met": {k: figures[k] <= v for k, v in TARGETS.items()},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"| measure ({args.customers:,} customers, 12 features) | figure | target |")
    print("|---|---|---|")
    labels = {
        "materialize_100k_s": ("materialize one day, Ballast writer", "s"),
        "materialize_100k_stock_s": ("materialize one day, Feast stock SQLite writer", "s"),
        "executemany_floor_s": ("floor: plain sqlite3 executemany of the same rows", "s"),
        "lookup_1_p50_ms": ("online lookup, 1 customer, p50", "ms"),
        "lookup_1_p99_ms": ("online lookup, 1 customer, p99", "ms"),
        "lookup_100_p50_ms": ("online lookup, 100 customers, p50", "ms"),
        "lookup_100_p99_ms": ("online lookup, 100 customers, p99", "ms"),
    }
    for key, (label, unit) in labels.items():
        target = f"≤ {TARGETS[key]:g} {unit}" if key in TARGETS else ""
        print(f"| {label} | {figures[key]:.3f} {unit} | {target} |")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
