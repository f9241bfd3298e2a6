"""Benchmark: synthetic generator throughput at 10 million rows (target: at most 60 s).

Run with `make bench` or `.venv/bin/python bench/generator.py [--rows N]`. Prints a JSON
line with rows, seconds and rows per second, and writes it to bench/results/.
"""

import argparse
import datetime as dt
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

from ballast.cli.generator import GenerateSpec, generate

TARGET_SECONDS = 60.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=100)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="ballast-bench-"))
    try:
        spec = GenerateSpec(
            out=out,
            customers=max(1, args.rows // args.days),
            days=args.days,
            start=dt.date(2025, 1, 1),
            seed=1,
            fmt=args.format,
            rows_per_day=args.rows // args.days,
        )
        began = time.perf_counter()
        result = generate(spec)
        seconds = time.perf_counter() - began
        size = sum(p.stat().st_size for p in result.files)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    figures = {
        "benchmark": "generator",
        "format": args.format,
        "rows": result.rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(result.rows / seconds),
        "bytes": size,
        "target_seconds_at_10m": TARGET_SECONDS,
        "meets_target": result.rows < 10_000_000 or seconds <= TARGET_SECONDS,
        "machine": f"{platform.machine()} {platform.python_version()}",
    }
    results = Path(__file__).parent / "results"
    results.mkdir(exist_ok=True)
    (results / "generator.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
