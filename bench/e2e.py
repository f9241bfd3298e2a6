"""Benchmark: the whole Ballast graph against a no-orchestration floor, end to end (issue 7).

For each size (1e5, 1e6, 1e7 transactions by default: 2,000 customers over 180 days,
more transactions per customer-day as the size grows), on the same seeded landing files:

(a) graph: `ballast run` in a fresh BALLAST_HOME, as a user runs it (Dagster, dbt, Soda,
    Feast, scikit-learn, whylogs; every layer, every partition, one run);
(b) floor: the lean one-process floor of bench/floor.py (DuckDB's native CSV reader, the
    SQL dbt compiled for the window on one connection, an ASOF join instead of Feast, one
    segmented whylogs pass, one SQLite executemany of the latest rows).

(a) and (b) alternate, `--repeats` times; each is a fresh process measured from outside:
wall time, CPU seconds (process tree) and peak memory (summed RSS of the process tree,
sampled every 50 ms). The graph's per-layer time comes from Dagster's step statistics,
the floor's from its own clock.

Also measured: one daily partition's incremental run (the partitioned assets, as the
automation sensor runs them) with 30 and with 365 days of history behind it, and the
Spark engine's feature step against DuckDB's (dbt) at 1e6 and 1e7.

Run with `make bench` (or `.venv/bin/python bench/e2e.py`). Writes bench/results/e2e.json
and bench/results/e2e.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib import metadata
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PYTHON = sys.executable
BALLAST = str(Path(sys.executable).with_name("ballast"))
START = dt.date(2025, 1, 1)
CUSTOMERS = 2000
DAYS = 180
SEED = 7
FAULTS = 0.005
TARGETS = {
    "ratio_at_1e7": 1.5,
    "peak_gb_at_1e7": 4.0,
    "graph_seconds_at_1e5": 45.0,
    "history_ratio": 1.2,
    "dev_seconds": 30.0,
}
LAYERS = ("raw", "clean", "features", "model", "monitoring")


# --------------------------------------------------------------------------- measuring


def measure(argv: list[str], env: dict[str, str], log: Path) -> dict:
    """Run a command as a fresh process; wall, CPU of the whole tree and peak summed RSS."""
    peak = 0
    # CPU of the whole tree: every process the child waited for adds to its own children's times.
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with log.open("w") as out:
        proc = psutil.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                try:
                    tree = [proc, *proc.children(recursive=True)]
                except psutil.NoSuchProcess:
                    break
                rss = 0
                for p in tree:
                    try:
                        rss += p.memory_info().rss
                    except psutil.Error:
                        pass
                peak = max(peak, rss)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} exited with {code}; see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "peak_mb": peak / 2**20}


def environment(home: Path, landing: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BALLAST_", "DAGSTER_"))}
    env.update(
        {
            "BALLAST_HOME": str(home),
            "BALLAST_LANDING_DIR": str(landing),
            "BALLAST_START_DATE": START.isoformat(),
            **extra,
        }
    )
    return env


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- data


def generate(landing: Path, rows: int, days: int = DAYS, customers: int = CUSTOMERS) -> None:
    from ballast.cli.generator import GenerateSpec
    from ballast.cli.generator import generate as write

    if (landing / "_manifest.json").exists():
        return
    landing.mkdir(parents=True, exist_ok=True)
    write(
        GenerateSpec(
            out=landing,
            customers=customers,
            days=days,
            start=START,
            seed=SEED,
            faults=FAULTS,
            rows_per_day=max(1, rows // days),
        )
    )


def landing_rows(landing: Path) -> int:
    return int(json.loads((landing / "_manifest.json").read_text())["rows"])


def compile_sql(work: Path, start: dt.date, end: dt.date) -> Path:
    """dbt's compiled SQL for the window (models and tests), done once per size before timing."""
    from ballast.resources import dbt_cli, dbt_invoke, dbt_project
    from ballast.settings import Settings

    target = work / "compiled"
    if not target.exists():
        settings = Settings(home=work / "compile_home", landing_dir=work / "compile_home" / "landing", start_date=START)
        settings.ensure_dirs()
        project = dbt_project(settings)
        invocation = dbt_invoke(
            dbt_cli(project, settings), settings, ["compile"], (start, end), target_path=target, raise_on_error=False
        )
        invocation.wait()
        if not invocation.is_successful():
            raise RuntimeError(f"dbt compile failed; see {target}")
    return target / "compiled" / "ballast"


def step_layers(home: Path) -> dict[str, float]:
    """Seconds per layer of the home's last run, from Dagster's step statistics."""
    import dagster as dg

    instance = dg.DagsterInstance.from_config(str(home / "dagster_home"))
    try:
        run = instance.get_runs(limit=1)[0]
        layers = dict.fromkeys(LAYERS, 0.0)
        steps = {}
        for stat in instance.get_run_step_stats(run.run_id):
            if stat.start_time is None or stat.end_time is None:
                continue
            seconds = stat.end_time - stat.start_time
            steps[stat.step_key] = round(seconds, 3)
            layer = next((name for name in LAYERS if stat.step_key.startswith(name)), "other")
            layers[layer] = layers.get(layer, 0.0) + seconds
        stats = instance.get_run_stats(run.run_id)
        layers["run"] = (stats.end_time or 0) - (stats.start_time or 0)
        return {"layers": layers, "steps": steps}
    finally:
        instance.dispose()


# --------------------------------------------------------------------------- incremental and Spark


def partitioned_selection(include_registry: bool = False):
    """The data layers without the model (which retrains on drift, not daily); the registry only for a first backfill."""
    import dagster as dg

    selection = dg.AssetSelection.all() - dg.AssetSelection.groups("model")
    if include_registry:
        return selection
    return selection - dg.AssetSelection.assets(dg.AssetKey(["features", "feature_registry"]))


def partition(home: Path, landing: Path, first: dt.date, last: dt.date, selection: str) -> None:
    """One refresh run of [first, last]: `selection` is "all" or "partitioned" (what the automation sensor refreshes daily)."""
    from ballast.runs import refresh
    from ballast.settings import Settings

    settings = Settings(home=home, landing_dir=landing, start_date=START)
    chosen = None if selection == "all" else partitioned_selection(include_registry=selection == "backfill")
    result = refresh(settings, first, last, selection=chosen, log_level="WARNING")
    if not result.success:
        raise SystemExit(f"refresh of {first} to {last} failed")


def spark_features(home: Path, landing: Path, start: dt.date, end: dt.date) -> None:
    """The Spark engine's feature steps on `home` (a copy of a graph run's warehouse)."""
    import dagster as dg

    from ballast.runs import refresh
    from ballast.settings import Settings

    settings = Settings(
        home=home,
        landing_dir=landing,
        start_date=START,
        feature_engine="spark",
        spark_master="local[*]",
        spark_conf=(("spark.ui.enabled", "false"), ("spark.driver.memory", "4g")),
    )
    keys = [dg.AssetKey(["clean", "transactions_parquet"]), dg.AssetKey(["features", "customer_daily_features"])]
    result = refresh(settings, start, end, selection=dg.AssetSelection.assets(*keys), log_level="WARNING")
    if not result.success:
        raise SystemExit("the Spark feature run failed")


# --------------------------------------------------------------------------- driver


def bench_size(work: Path, rows: int, repeats: int, spark: bool) -> dict:
    size = work / f"size_{rows}"
    landing = size / "landing"
    generate(landing, rows)
    end = START + dt.timedelta(days=DAYS - 1)
    compiled = compile_sql(size, START, end)
    runs: dict[str, list[dict]] = {"graph": [], "floor": []}
    for repeat in range(repeats):
        order = ("graph", "floor") if repeat % 2 == 0 else ("floor", "graph")
        for kind in order:
            home = size / f"{kind}_{repeat}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            log = size / f"{kind}_{repeat}.log"
            if kind == "graph":
                measured = measure([BALLAST, "run"], environment(home, landing), log)
                measured.update(step_layers(home))
            else:
                layers_file = home / "floor_layers.json"
                argv = [
                    PYTHON,
                    str(REPO / "bench" / "floor.py"),
                    "--home",
                    str(home),
                    "--landing",
                    str(landing),
                    "--compiled",
                    str(compiled),
                    "--start",
                    START.isoformat(),
                    "--end",
                    end.isoformat(),
                    "--out",
                    str(layers_file),
                ]
                measured = measure(argv, environment(home, landing), log)
                measured["layers"] = json.loads(layers_file.read_text())
            print(
                f"  {rows:>10,} {kind:5} #{repeat}: {measured['wall_s']:.1f} s wall, {measured['cpu_s']:.1f} s CPU, "
                f"{measured['peak_mb']:.0f} MB",
                flush=True,
            )
            runs[kind].append(measured)
            if not (kind == "graph" and repeat == 0):
                shutil.rmtree(home, ignore_errors=True)
    result = {"transactions": landing_rows(landing), "customers": CUSTOMERS, "days": DAYS, "repeats": repeats}
    for kind, measured in runs.items():
        result[kind] = {
            "wall_s": median([m["wall_s"] for m in measured]),
            "cpu_s": median([m["cpu_s"] for m in measured]),
            "peak_mb": max(m["peak_mb"] for m in measured),
            "walls_s": [round(m["wall_s"], 2) for m in measured],
            "layers_s": {layer: median([m["layers"].get(layer, 0.0) for m in measured]) for layer in (*LAYERS, "run")},
        }
    result["graph"]["steps_s"] = runs["graph"][0]["steps"]
    result["ratio"] = result["graph"]["wall_s"] / result["floor"]["wall_s"]
    if spark:
        result["spark"] = bench_spark(size, landing)
    shutil.rmtree(size / "graph_0", ignore_errors=True)
    return result


def bench_spark(size: Path, landing: Path) -> dict:
    """Spark's feature steps (clean export + features) on a copy of the first graph run's warehouse, against dbt's."""
    source = size / "graph_0"
    home = size / "spark"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    shutil.copy2(source / "warehouse.duckdb", home / "warehouse.duckdb")
    end = START + dt.timedelta(days=DAYS - 1)
    argv = [
        PYTHON,
        __file__,
        "spark",
        "--home",
        str(home),
        "--landing",
        str(landing),
        "--start",
        START.isoformat(),
        "--end",
        end.isoformat(),
    ]
    measured = measure(argv, environment(home, landing), size / "spark.log")
    steps = step_layers(home)["steps"]
    duckdb_steps = step_layers(source)["steps"]
    shutil.rmtree(home, ignore_errors=True)
    return {
        "spark_process": {k: round(v, 2) for k, v in measured.items()},
        "spark_steps_s": steps,
        "spark_feature_s": sum(v for k, v in steps.items() if k.startswith(("clean", "features"))),
        "duckdb_feature_s": sum(v for k, v in duckdb_steps.items() if k.startswith("features_dbt")),
    }


def bench_history(work: Path, repeats: int) -> dict:
    """One new day's partitioned assets with 30 and with 365 days of history behind it."""
    from ballast.raw.landing import discover

    days = 366
    source = work / "history" / "landing"
    generate(source, (100_000 // DAYS) * days, days=days)  # the 1e5 size's transactions per day
    new_day = START + dt.timedelta(days=days - 1)
    result = {}
    for history in (30, 365):
        home = work / "history" / f"h{history}"
        landing = home / "landing_files"
        shutil.rmtree(home, ignore_errors=True)
        landing.mkdir(parents=True)
        first = new_day - dt.timedelta(days=history)
        for found in discover(source):
            if found.event_date >= first:
                target = landing / found.path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(found.path, target)
        env = environment(home, landing, BALLAST_START_DATE=first.isoformat())
        backfill = [
            PYTHON,
            __file__,
            "partition",
            "--home",
            str(home),
            "--landing",
            str(landing),
            "--start",
            first.isoformat(),
            "--end",
            (new_day - dt.timedelta(days=1)).isoformat(),
            "--selection",
            "backfill",
            "--start-date",
            first.isoformat(),
        ]
        measure(backfill, env, home.with_suffix(".backfill.log"))
        runs = []
        for repeat in range(repeats):
            argv = [
                PYTHON,
                __file__,
                "partition",
                "--home",
                str(home),
                "--landing",
                str(landing),
                "--start",
                new_day.isoformat(),
                "--end",
                new_day.isoformat(),
                "--selection",
                "partitioned",
                "--start-date",
                first.isoformat(),
            ]
            measured = measure(argv, env, home.with_suffix(f".{repeat}.log"))
            measured.update(step_layers(home))
            runs.append(measured)
            print(f"  history {history:>3} d #{repeat}: {measured['wall_s']:.1f} s wall", flush=True)
        result[f"{history}d"] = {
            "wall_s": median([m["wall_s"] for m in runs]),
            "walls_s": [round(m["wall_s"], 2) for m in runs],
            "run_s": median([m["layers"]["run"] for m in runs]),
            "steps_s": runs[-1]["steps"],
        }
        shutil.rmtree(home, ignore_errors=True)
    result["ratio"] = result["365d"]["wall_s"] / result["30d"]["wall_s"]
    result["run_ratio"] = result["365d"]["run_s"] / result["30d"]["run_s"]
    return result


def bench_dev(work: Path) -> dict:
    """Seconds from `make dev`'s command (`ballast dev`) to a UI that answers, on an empty home."""
    import urllib.request

    home = work / "dev_home"
    shutil.rmtree(home, ignore_errors=True)
    port = "3917"
    env = environment(home, home / "landing")
    started = time.perf_counter()
    proc = subprocess.Popen(
        [BALLAST, "dev", "--port", port],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
        start_new_session=True,
    )
    try:
        while time.perf_counter() - started < 180:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                time.sleep(0.25)
        served = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, 2)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
    return {"served_s": served}


def versions() -> dict:
    names = (
        "dagster",
        "dagster-dbt",
        "dagster-pyspark",
        "dbt-core",
        "dbt-duckdb",
        "duckdb",
        "soda-core",
        "feast",
        "whylogs",
        "pyspark",
        "scikit-learn",
    )
    return {name: metadata.version(name) for name in names}


def markdown(report: dict) -> str:
    lines = [
        f"# End-to-end benchmark ({report['date']})",
        "",
        f"Machine: {report['machine']}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items())
        + ".",
        "",
        "| transactions | graph wall (s) | floor wall (s) | graph / floor | graph CPU (s) | floor CPU (s) | graph peak (MB) | floor peak (MB) | repeats |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sorted(report["sizes"], key=lambda s: s["transactions"]):
        g, f = size["graph"], size["floor"]
        lines.append(
            f"| {size['transactions']:,} | {g['wall_s']:.1f} | {f['wall_s']:.1f} | {size['ratio']:.2f} | {g['cpu_s']:.1f} | "
            f"{f['cpu_s']:.1f} | {g['peak_mb']:.0f} | {f['peak_mb']:.0f} | {size['repeats']} |"
        )
    lines += [
        "",
        "Per layer, median seconds (graph: Dagster step time; the rest of the graph's wall time is process start,",
        "imports, run set-up and the CLI's report):",
        "",
        "| transactions | | " + " | ".join(LAYERS) + " | total (graph: the Dagster run) |",
        "|---:|---|" + "---:|" * (len(LAYERS) + 1),
    ]
    for size in sorted(report["sizes"], key=lambda s: s["transactions"]):
        for kind in ("graph", "floor"):
            layers = size[kind]["layers_s"]
            total = layers["run"] if kind == "graph" else sum(layers[name] for name in LAYERS)
            lines.append(
                f"| {size['transactions']:,} | {kind} | "
                + " | ".join(f"{layers[name]:.1f}" for name in LAYERS)
                + f" | {total:.1f} |"
            )
    spark = sorted((s for s in report["sizes"] if "spark" in s), key=lambda s: s["transactions"])
    if spark:
        lines += [
            "",
            "Feature engine (clean export + features steps for Spark; the dbt features step for DuckDB), seconds:",
            "",
            "| transactions | DuckDB (dbt) | Spark (local[*]) |",
            "|---:|---:|---:|",
        ]
        for size in spark:
            lines.append(
                f"| {size['transactions']:,} | {size['spark']['duckdb_feature_s']:.1f} | {size['spark']['spark_feature_s']:.1f} |"
            )
    if "history" in report:
        h = report["history"]
        lines += [
            "",
            "One daily partition (partitioned assets), median wall seconds of the process:",
            "",
            "| 30 days of history | 365 days of history | ratio | ratio of Dagster run time |",
            "|---:|---:|---:|---:|",
            f"| {h['30d']['wall_s']:.1f} | {h['365d']['wall_s']:.1f} | {h['ratio']:.2f} | {h['run_ratio']:.2f} |",
        ]
    if "dev" in report:
        lines += ["", f"`make dev` (`ballast dev`) to a UI that answers: {report['dev']['served_s']:.1f} s."]
    lines += ["", "Targets:", "", "| target | measured | met |", "|---|---:|---|"]
    lines += [f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in target_rows(report)]
    lines.append("")
    return "\n".join(lines)


def target_rows(report: dict) -> list[tuple[str, str, bool]]:
    by_size = {s["requested"]: s for s in report["sizes"] if "requested" in s}
    rows = []
    if 10_000_000 in by_size:
        big = by_size[10_000_000]
        rows.append(
            (
                f"graph / floor at 1e7 <= {TARGETS['ratio_at_1e7']}",
                f"{big['ratio']:.2f}",
                big["ratio"] <= TARGETS["ratio_at_1e7"],
            )
        )
        peak = big["graph"]["peak_mb"] / 1024
        rows.append(
            (
                f"graph peak memory at 1e7 <= {TARGETS['peak_gb_at_1e7']} GB",
                f"{peak:.2f} GB",
                peak <= TARGETS["peak_gb_at_1e7"],
            )
        )
    if 100_000 in by_size:
        wall = by_size[100_000]["graph"]["wall_s"]
        rows.append(
            (
                f"graph at 1e5 <= {TARGETS['graph_seconds_at_1e5']:.0f} s",
                f"{wall:.1f} s",
                wall <= TARGETS["graph_seconds_at_1e5"],
            )
        )
    if "history" in report:
        ratio = report["history"]["ratio"]
        rows.append(
            (
                f"one partition, 365 / 30 days of history <= {TARGETS['history_ratio']}",
                f"{ratio:.2f}",
                ratio <= TARGETS["history_ratio"],
            )
        )
    if "dev" in report:
        served = report["dev"]["served_s"]
        rows.append(
            (
                f"make dev to a served UI <= {TARGETS['dev_seconds']:.0f} s",
                f"{served:.1f} s",
                served <= TARGETS["dev_seconds"],
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    drive = sub.add_parser("run")
    drive.add_argument("--sizes", default="100000,1000000,10000000")
    drive.add_argument("--repeats", type=int, default=3)
    drive.add_argument("--large-repeats", type=int, default=1, help="repeats at 1e7 and above")
    drive.add_argument("--spark-sizes", default="1000000,10000000")
    drive.add_argument("--skip-history", action="store_true")
    drive.add_argument("--skip-dev", action="store_true")
    drive.add_argument("--work", type=Path)
    drive.add_argument("--merge", action="store_true", help="keep the other results of bench/results/e2e.json")
    sub.add_parser("render", help="rewrite e2e.md from e2e.json")
    for name in ("partition", "spark"):
        child = sub.add_parser(name)
        child.add_argument("--home", type=Path, required=True)
        child.add_argument("--landing", type=Path, required=True)
        child.add_argument("--start", type=dt.date.fromisoformat, required=True)
        child.add_argument("--end", type=dt.date.fromisoformat, required=True)
        child.add_argument("--compiled", type=Path)
        child.add_argument("--out", type=Path)
        child.add_argument("--selection", default="all")
        child.add_argument("--start-date", type=dt.date.fromisoformat)
    args = parser.parse_args(sys.argv[1:] or ["run"])
    if args.command == "partition":
        global START
        START = args.start_date or START
        partition(args.home, args.landing, args.start, args.end, args.selection)
        return
    if args.command == "spark":
        spark_features(args.home, args.landing, args.start, args.end)
        return
    if args.command == "render":
        write(json.loads((RESULTS / "e2e.json").read_text()))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="ballast_e2e_"))
    report: dict = {
        "benchmark": "e2e",
        "date": dt.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GB, Python {platform.python_version()}",
        "versions": versions(),
        "targets": TARGETS,
        "sizes": [],
    }
    if args.merge and (RESULTS / "e2e.json").exists():
        kept = json.loads((RESULTS / "e2e.json").read_text())
        report = {**kept, **{k: v for k, v in report.items() if k != "sizes"}, "sizes": kept.get("sizes", [])}
    spark_sizes = {int(float(s)) for s in args.spark_sizes.split(",") if s}
    for rows in (int(float(s)) for s in args.sizes.split(",") if s):
        print(f"size {rows:,}", flush=True)
        repeats = args.large_repeats if rows >= 10_000_000 else args.repeats
        measured = bench_size(work, rows, repeats, rows in spark_sizes)
        report["sizes"] = [s for s in report["sizes"] if s.get("requested") != rows] + [{**measured, "requested": rows}]
        write(report)
    if not args.skip_history:
        print("incremental partition, 30 vs 365 days of history", flush=True)
        report["history"] = bench_history(work, args.repeats)
        write(report)
    if not args.skip_dev:
        report["dev"] = bench_dev(work)
        write(report)
    print(markdown(report))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


def write(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "e2e.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / "e2e.md").write_text(markdown(report))


if __name__ == "__main__":
    main()
