"""Benchmark: whylogs profiling throughput, and profiling's share of the demo's end-to-end run.

1. Values per second per core for numeric columns: profile a frame of the model's 11
   numeric features (1,000,000 rows) with the drift engine, single-threaded.
2. The demo (2,000 customers, 180 days) through every asset in one run; the share of the
   run's wall time spent in monitoring/feature_profiles and monitoring/score_profiles.

Run with `make bench`. Writes bench/results/profiling.json and prints a markdown table.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import whylogs

from ballast.cli.generator import GenerateSpec, generate
from ballast.cli.main import DEMO_CUSTOMERS, DEMO_DAYS, DEMO_FAULT_RATE, DEMO_SEED
from ballast.model.training import CATEGORICAL_FEATURES, FEATURES
from ballast.profiling import WhylogsEngine
from ballast.runs import instance, refresh
from ballast.settings import Settings

RESULTS = Path(__file__).parent / "results" / "profiling.json"
ROWS = 1_000_000
START = dt.date(2025, 1, 1)


def throughput() -> dict:
    numeric = [f for f in FEATURES if f not in CATEGORICAL_FEATURES]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({name: rng.lognormal(2.0, 1.0, ROWS) for name in numeric})
    engine = WhylogsEngine()
    runs = []
    for _ in range(3):
        started = time.process_time()
        engine.profile(frame)
        runs.append(time.process_time() - started)
    seconds = float(np.median(runs))
    values = ROWS * len(numeric)
    return {
        "rows": ROWS,
        "columns": len(numeric),
        "cpu_seconds": seconds,
        "values_per_second_per_core": values / seconds,
    }


def demo_share() -> dict:
    with tempfile.TemporaryDirectory(prefix="ballast_bench_profiling_") as tmp:
        settings = Settings(home=Path(tmp), landing_dir=Path(tmp) / "landing")
        settings.ensure_dirs()
        generate(
            GenerateSpec(
                out=settings.landing_dir,
                customers=DEMO_CUSTOMERS,
                days=DEMO_DAYS,
                start=START,
                seed=DEMO_SEED,
                faults=DEMO_FAULT_RATE,
            )
        )
        dagster_instance = instance(settings)
        try:
            result = refresh(
                settings,
                START,
                START + dt.timedelta(days=DEMO_DAYS - 1),
                dagster_instance=dagster_instance,
                log_level="WARNING",
            )
            stats = {s.step_key: s.end_time - s.start_time for s in dagster_instance.get_run_step_stats(result.run_id)}
            record = dagster_instance.get_run_record_by_id(result.run_id)
            wall = record.end_time - record.start_time
        finally:
            dagster_instance.dispose()
    profiling = sum(v for k, v in stats.items() if k in ("monitoring__feature_profiles", "monitoring__score_profiles"))
    return {
        "run_seconds": wall,
        "profiling_seconds": profiling,
        "share": profiling / wall,
        "steps": {k: round(v, 2) for k, v in sorted(stats.items())},
    }


def main() -> None:
    report = {
        "date": dt.date.today().isoformat(),
        "versions": {"whylogs": whylogs.__version__ if hasattr(whylogs, "__version__") else "unknown"},
        "throughput": throughput(),
        "demo": demo_share(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    t, d = report["throughput"], report["demo"]
    print("| measure | figure |")
    print("|---|---|")
    print(f"| whylogs numeric profiling, values/s per core | {t['values_per_second_per_core']:,.0f} |")
    print(f"| demo run wall time | {d['run_seconds']:.1f} s |")
    print(f"| of which profiling (feature + score profiles) | {d['profiling_seconds']:.1f} s ({d['share']:.1%}) |")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
