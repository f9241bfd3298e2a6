"""Benchmark: issue 16's targets, each measured beside its target (what `make bench` runs).

Parts (`--only` takes a comma-separated list; all by default):

- `long`: 730 days x 1,000 customers from the generator (seed fixed), a full `ballast run`
  (`ballast run --full` where the CLI has the flag) in a fresh home, wall time; then one
  more day (the 731st file of the same generator run) copied into the home's landing
  folder and `ballast run` again, wall time. The raw step's duration in the full run
  (Dagster step statistics) against DuckDB's `read_csv` of the same 730 files into a table
  on a fresh connection. Then `ballast dev` on that home, the refresh job launched for the
  last day's partition through GraphQL, and the run's duration from the server.
- `demo`: 1e5 transactions over 180 days: the graph (`ballast run`) against the lean floor
  (bench/floor.py), the tables compared, and the profiling steps' share of the Dagster run.
- `big`: 1e7 transactions: graph / floor and the graph's peak memory (process tree RSS).

`--quick` uses small sizes for trying the bench itself. Writes bench/results/targets.json
and bench/results/targets.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb
import psutil

import e2e
import floor

RESULTS = e2e.RESULTS
BALLAST = e2e.BALLAST
PYTHON = e2e.PYTHON
# 731 days must end before today: landing files dated after today are rejected.
LONG_START = dt.date(2024, 1, 1)
SEED = 7
GB = 2**30
PARTS = ("long", "demo", "big")
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
TARGETS = {
    "full_run_s": 90.0,
    "incremental_run_s": 15.0,
    "dev_partition_run_s": 30.0,
    "raw_over_read_csv": 3.0,
    "demo_graph_s": 45.0,
    "demo_over_floor": 3.0,
    "big_over_floor": 1.3,
    "big_peak_gb": 4.0,
    "profiling_share": 0.10,
}
SIZES = {
    # part: (full, quick)
    "long_days": (730, 60),
    "long_customers": (1000, 100),
    "demo_rows": (100_000, 20_000),
    "big_rows": (10_000_000, 200_000),
}


def size(name: str, quick: bool) -> int:
    return SIZES[name][1 if quick else 0]


def full_run_argv() -> list[str]:
    """`ballast run --full` where the CLI has the flag (incremental runs), else `ballast run` (always full)."""
    helped = subprocess.run([BALLAST, "run", "--help"], capture_output=True, text=True, cwd=e2e.REPO, check=True)
    return [BALLAST, "run", "--full"] if "--full" in helped.stdout else [BALLAST, "run"]


def step_seconds(home: Path) -> dict[str, float]:
    return e2e.step_layers(home)["steps"]


# --------------------------------------------------------------------------- long: 730 days


def generate_long(work: Path, days: int, customers: int) -> Path:
    """days + 1 days of files from one seeded generator run; returns its folder."""
    from ballast.cli.generator import GenerateSpec, generate

    source = work / f"long_source_{days + 1}x{customers}"
    if not (source / "_manifest.json").exists():
        shutil.rmtree(source, ignore_errors=True)
        generate(GenerateSpec(out=source, customers=customers, days=days + 1, start=LONG_START, seed=SEED))
    return source


def read_csv_seconds(paths: list[str], repeats: int) -> float:
    """DuckDB's own reader: the files into a table on a fresh in-memory connection, best of `repeats`."""
    best = float("inf")
    for _ in range(repeats):
        con = duckdb.connect()
        started = time.perf_counter()
        con.execute(
            "create table t as select * from read_csv($paths, all_varchar = true, filename = true)", {"paths": paths}
        )
        best = min(best, time.perf_counter() - started)
        con.close()
    return best


def bench_long(work: Path, quick: bool, repeats: int) -> dict:
    days, customers = size("long_days", quick), size("long_customers", quick)
    source = generate_long(work, days, customers)
    files = sorted(p for p in source.glob("*.csv"))
    home = work / "long_home"
    shutil.rmtree(home, ignore_errors=True)
    landing = home / "landing"
    landing.mkdir(parents=True)
    for path in files[:days]:
        os.link(path, landing / path.name)
    env = e2e.environment(home, landing, BALLAST_START_DATE=LONG_START.isoformat())
    argv = full_run_argv()
    full = e2e.measure(argv, env, work / "long_full.log")
    steps = step_seconds(home)
    print(f"  full run of {days} days: {full['wall_s']:.1f} s", flush=True)
    raw_s = sum(v for k, v in steps.items() if k.startswith("raw"))
    native_s = read_csv_seconds([str(p) for p in files[:days]], repeats)
    print(f"  raw step {raw_s:.1f} s, read_csv {native_s:.2f} s", flush=True)
    os.link(files[days], landing / files[days].name)
    try:
        incremental = e2e.measure([BALLAST, "run"], env, work / "long_incremental.log")
    except RuntimeError as exc:  # the table says so; the dev-server measure still runs
        incremental = {"error": str(exc)}
    print(f"  after one more day: {incremental}", flush=True)
    dev = dev_partition(home, env, LONG_START + dt.timedelta(days=days))
    print(f"  one partition from dagster dev: {dev.get('run_s', float('nan')):.1f} s", flush=True)
    return {
        "days": days,
        "customers": customers,
        "transactions": json.loads((source / "_manifest.json").read_text())["rows"],
        "full_argv": argv[1:],
        "full": full,
        "full_steps_s": steps,
        "raw_step_s": raw_s,
        "read_csv_s": native_s,
        "incremental": incremental,
        "dev": dev,
    }


# --------------------------------------------------------------------------- one partition from the UI


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        reply = json.load(response)
    if reply.get("errors"):
        raise RuntimeError(f"GraphQL errors: {reply['errors']}")
    return reply["data"]


REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"
LAUNCH = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}
"""
RUN = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dev_partition(
    home: Path, env: dict[str, str], day: dt.date, timeout: float = 900, serve_timeout: float = 600
) -> dict:
    """`ballast dev` on the home, the refresh job launched for one day through GraphQL; the run's duration."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [BALLAST, "dev", "--port", str(port)],
        env=env,
        stdout=(home / "dev.log").open("w"),
        stderr=subprocess.STDOUT,
        cwd=e2e.REPO,
        start_new_session=True,
    )
    try:
        nodes = None
        while nodes is None and time.perf_counter() - started < serve_timeout and proc.poll() is None:
            time.sleep(1)
            try:
                nodes = graphql(port, REPOSITORIES)["repositoriesOrError"]["nodes"] or None
            except (OSError, RuntimeError, KeyError):
                nodes = None
        if not nodes:
            return {"error": f"the dev server did not serve the code location within {serve_timeout:.0f} s"}
        served = time.perf_counter() - started
        params = {
            "selector": {
                "repositoryLocationName": nodes[0]["location"]["name"],
                "repositoryName": nodes[0]["name"],
                "jobName": "refresh_platform_job",
            },
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day.isoformat()}]},
        }
        launched = graphql(port, LAUNCH, {"params": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            return {"error": json.dumps(launched)}
        run_id = launched["run"]["runId"]
        clicked = time.perf_counter()
        run: dict = {}
        while time.perf_counter() - clicked < timeout:
            run = graphql(port, RUN, {"id": run_id})["runOrError"]
            if run.get("status") in TERMINAL:
                break
            time.sleep(2)
        return {
            "served_s": served,
            "status": run.get("status"),
            "run_s": (run.get("endTime") or 0) - (run.get("startTime") or 0),
            "launch_to_end_s": time.perf_counter() - clicked,
            "partition": day.isoformat(),
        }
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """The dev server and its children share the session started for it: stop them by its process group."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


# --------------------------------------------------------------------------- graph against the floor


def graph_and_floor(work: Path, name: str, rows: int, repeats: int) -> dict:
    """The graph and the lean floor on the same landing files, alternating; medians, peaks and the tables compared."""
    folder = work / name
    landing = folder / "landing"
    e2e.generate(landing, rows)
    end = e2e.START + dt.timedelta(days=e2e.DAYS - 1)
    compiled = e2e.compile_sql(folder, e2e.START, end)
    argv = full_run_argv()
    runs: dict[str, list[dict]] = {"graph": [], "floor": []}
    for repeat in range(repeats):
        for kind in ("graph", "floor") if repeat % 2 == 0 else ("floor", "graph"):
            home = folder / f"{kind}_{repeat}"
            shutil.rmtree(home, ignore_errors=True)
            home.mkdir(parents=True)
            env = e2e.environment(home, landing)
            if kind == "graph":
                measured = e2e.measure(argv, env, folder / f"graph_{repeat}.log")
                measured.update(e2e.step_layers(home))
            else:
                clock = home / "clock.json"
                floor_argv = [PYTHON, str(Path(floor.__file__)), "--home", str(home), "--landing", str(landing)]
                floor_argv += ["--compiled", str(compiled), "--start", e2e.START.isoformat(), "--end", end.isoformat()]
                measured = e2e.measure([*floor_argv, "--out", str(clock)], env, folder / f"floor_{repeat}.log")
                measured["layers"] = json.loads(clock.read_text())
            print(f"  {rows:,} {kind} #{repeat}: {measured['wall_s']:.1f} s, {measured['peak_mb']:.0f} MB", flush=True)
            runs[kind].append(measured)
    compared = floor.compare(folder / "floor_0", folder / "graph_0")
    result: dict = {"transactions": e2e.landing_rows(landing), "repeats": repeats, "compared": compared}
    for kind, measured in runs.items():
        result[kind] = {
            "wall_s": e2e.median([m["wall_s"] for m in measured]),
            "walls_s": [round(m["wall_s"], 2) for m in measured],
            "cpu_s": e2e.median([m["cpu_s"] for m in measured]),
            "peak_mb": max(m["peak_mb"] for m in measured),
            "layers_s": {
                k: round(e2e.median([m["layers"].get(k, 0.0) for m in measured]), 2) for k in measured[0]["layers"]
            },
        }
    steps = runs["graph"][0]["steps"]
    result["graph"]["steps_s"] = steps
    result["ratio"] = result["graph"]["wall_s"] / result["floor"]["wall_s"]
    profiles = sum(v for k, v in steps.items() if "profiles" in k)
    result["profiling_s"] = profiles
    result["profiling_share"] = profiles / runs["graph"][0]["layers"]["run"]
    for repeat in range(repeats):
        for kind in ("graph", "floor"):
            shutil.rmtree(folder / f"{kind}_{repeat}", ignore_errors=True)
    return result


# --------------------------------------------------------------------------- the table


def seconds_row(label: str, target: float, measured: dict | None, key: str = "wall_s") -> tuple:
    """A row for a timed measure; one that did not complete shows why (or "not measured") and is not met."""
    if not measured or key not in measured or measured.get("status", "SUCCESS") != "SUCCESS":
        status = (measured or {}).get("status")
        why = (measured or {}).get("error") or (f"run {status}" if status in TERMINAL else f"not finished ({status})")
        return (label, f"<= {target:.0f} s", why if measured else "not measured", False)
    return (label, f"<= {target:.0f} s", f"{measured[key]:.1f} s", measured[key] <= target)


def long_rows(long: dict) -> list[tuple]:
    t = TARGETS
    scale = f"{long['days']} days x {long['customers']:,} customers ({long['transactions']:,} transactions)"
    found = [
        seconds_row(f"{scale}, full `ballast {' '.join(long['full_argv'])}`", t["full_run_s"], long.get("full")),
        seconds_row(
            "the same home after adding one day, `ballast run`", t["incremental_run_s"], long.get("incremental")
        ),
        seconds_row(
            "one daily partition launched in `dagster dev` (GraphQL), run duration",
            t["dev_partition_run_s"],
            long.get("dev"),
            "run_s",
        ),
    ]
    ratio = long["raw_step_s"] / long["read_csv_s"]
    found.append(
        (
            f"raw load of {long['days']} files / DuckDB `read_csv` of the same files",
            f"<= {t['raw_over_read_csv']:.0f} x",
            f"{ratio:.1f} x ({long['raw_step_s']:.1f} s / {long['read_csv_s']:.2f} s)",
            ratio <= t["raw_over_read_csv"],
        )
    )
    return found


def rows(report: dict) -> list[tuple[str, str, str, bool | None]]:
    """(measure, target, measured, met) for every part that ran."""
    t = TARGETS
    out: list[tuple[str, str, str, bool | None]] = []
    if long := report.get("long"):
        out += long_rows(long)
    if demo := report.get("demo"):
        wall, ratio = demo["graph"]["wall_s"], demo["ratio"]
        label = f"demo-size graph ({demo['transactions']:,} transactions, 180 days)"
        out.append((label, f"<= {t['demo_graph_s']:.0f} s", f"{wall:.1f} s", wall <= t["demo_graph_s"]))
        out.append(
            (
                f"{label} / one-process floor",
                f"<= {t['demo_over_floor']:.0f} x",
                f"{ratio:.2f} x (floor {demo['floor']['wall_s']:.1f} s)",
                ratio <= t["demo_over_floor"],
            )
        )
        share = demo["profiling_share"]
        out.append(
            (
                "profiling share of the demo run",
                f"<= {t['profiling_share']:.0%}",
                f"{share:.1%} ({demo['profiling_s']:.1f} s)",
                share <= t["profiling_share"],
            )
        )
    if big := report.get("big"):
        ratio, peak = big["ratio"], big["graph"]["peak_mb"] * 2**20 / GB
        label = f"{big['transactions']:,} transactions"
        out.append(
            (
                f"{label}: graph / floor",
                f"<= {t['big_over_floor']}",
                f"{ratio:.2f} ({big['graph']['wall_s']:.0f} s / {big['floor']['wall_s']:.0f} s)",
                ratio <= t["big_over_floor"],
            )
        )
        out.append(
            (
                f"{label}: graph peak memory (process tree RSS)",
                f"<= {t['big_peak_gb']:.0f} GB",
                f"{peak:.2f} GB",
                peak <= t["big_peak_gb"],
            )
        )
    return out


def markdown(report: dict) -> str:
    lines = [
        f"# Issue 16 targets ({report['date']}{', quick sizes' if report['quick'] else ''})",
        "",
        f"Machine: {report['machine']}. Bench time {report['bench_s'] / 60:.1f} min. {report.get('note', '')}".rstrip(),
        "",
        "| measure | target | measured | met |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m} | {target} | {value} | {'yes' if met else '**no**'} |" for m, target, value, met in rows(report)]
    for part in ("demo", "big"):
        if found := report.get(part):
            lines += ["", f"{part}: per layer, seconds (graph: Dagster step time; floor: its own clock)", ""]
            lines += ["| | " + " | ".join(floor.LAYERS) + " |", "|---|" + "---:|" * len(floor.LAYERS)]
            for kind in ("graph", "floor"):
                layers = found[kind]["layers_s"]
                lines.append(f"| {kind} | " + " | ".join(f"{layers.get(n, 0.0):.1f}" for n in floor.LAYERS) + " |")
            compared = found["compared"]
            lines.append("")
            lines.append(
                f"Tables compared: same row counts {'yes' if compared['same_row_counts'] else '**no**'}"
                f" ({', '.join(f'{k} {v[0]:,}/{v[1]:,}' for k, v in compared['row_counts'].items())}, floor/graph);"
                f" clean rows differing: {compared['clean_rows_differing']}."
            )
    for part, why in report.get("incomplete", {}).items():
        lines += ["", f"Part {part} did not complete: {why}"]
    lines.append("")
    return "\n".join(lines)


def merge_kept(report: dict, parts: list[str]) -> None:
    """The other parts' results from targets.json as it is now (another invocation may have written it meanwhile)."""
    if not (RESULTS / "targets.json").exists():
        return
    kept = json.loads((RESULTS / "targets.json").read_text())
    report.update({part: kept[part] for part in PARTS if part in kept and part not in parts})
    report["parts_s"].update({k: v for k, v in kept.get("parts_s", {}).items() if k not in parts})


def write(report: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "targets.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (RESULTS / "targets.md").write_text(markdown(report))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts: {', '.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="small sizes, to try the bench itself")
    parser.add_argument("--repeats", type=int, default=1, help="graph/floor repeats at the demo size (1 at 1e7)")
    parser.add_argument("--work", type=Path, help="keep generated data here between invocations")
    parser.add_argument("--merge", action="store_true", help="keep the other parts' results from targets.json")
    parser.add_argument("--note", default="", help="a line for the table's header (e.g. the machine's load)")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    work = args.work or Path(tempfile.mkdtemp(prefix="ballast_targets_"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "benchmark": "issue 16 targets",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / GB:.0f} GB",
        "quick": args.quick,
        "note": args.note,
        "targets": TARGETS,
    }
    report["parts_s"] = {}
    runs = {
        "long": lambda: bench_long(work, args.quick, args.repeats),
        "demo": lambda: graph_and_floor(work, "demo", size("demo_rows", args.quick), args.repeats),
        "big": lambda: graph_and_floor(work, "big", size("big_rows", args.quick), 1),
    }
    try:
        for part in parts:
            print(f"{part}:", flush=True)
            started = time.perf_counter()
            try:
                report[part] = runs[part]()
            except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
                # A part that does not complete (a killed or failed process) is reported, and the others still run.
                report.setdefault("incomplete", {})[part] = str(exc)
                print(f"  {part} did not complete: {exc}", flush=True)
            report["parts_s"][part] = time.perf_counter() - started
    finally:
        if args.merge:
            merge_kept(report, parts)
        report["bench_s"] = sum(report["parts_s"].values())
        write(report)
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(report))


if __name__ == "__main__":
    sys.exit(main())
