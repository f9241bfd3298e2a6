"""A run killed at any moment does not block or corrupt the next one; two runs on one home do not collide.

The crash tests drive the real `ballast` command: a run is SIGKILLed inside a step of
each layer, the next `ballast run` on that home must say what it recovered, finish in
bounded time, leave no process of the killed run alive, and end with the tables, online
features and champion metrics of an uninterrupted run. To stay affordable the kills are
chained on one home: the run that recovers from one kill is the one killed in the next
layer, and a last run completes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest

from ballast import runs
from ballast.cli.report import LAYER_TABLES
from ballast.common import lake
from ballast.features import feast_repo
from ballast.model import registry
from ballast.model.training import MODEL_NAME
from ballast.monitoring import recovery as run_guard
from ballast.runs import instance
from ballast.settings import FEAST_POOL, WAREHOUSE_POOL, Settings

BALLAST = str(Path(sys.executable).parent / "ballast")
START = dt.date(2025, 1, 1)
CUSTOMERS, DAYS, FAULTS = 300, 60, 0.02
RUN_TIMEOUT = 420
# Steps to kill, in the order one run reaches them, how to know the step is truly under
# way (dbt running as a child and writing the warehouse, a file the step writes, Feast's registry in MATERIALIZING)
# and the seconds to wait after that.
KILLS = (
    ("raw load", "raw_transactions", "warehouse.duckdb.wal", 0.3),
    # The features layer's dbt step is killed the same way (a dbt child writing incremental
    # models in the warehouse): one dbt kill covers both, and saves the chain a run.
    ("dbt clean", "clean_dbt_models", "dbt", 0.0),
    ("profiling", "monitoring__feature_profiles", "monitoring/profiles/features/*.whylogs", 0.0),
    # The first entry of the new version: its staging folder, mid-save.
    ("model training", "model__churn_model", f"registry/{MODEL_NAME}/*", 0.0),
    # Last: Feast marks a view MATERIALIZING only once it was materialized before (the
    # run killed in training got that far); a first materialization keeps no state.
    ("Feast materialization", "features__online_store", "materializing", 0.0),
)
# The runs after each kill are incremental `ballast run`s, which redo what the killed run
# left undone. The run killed in training had already written the online store, so the
# run that follows it would not reach Feast: that one run is `--full`, and the last run,
# incremental again, must build the model the Feast kill stopped short of.
FULL_AFTER = "model__churn_model"
# Columns that name a load or run, not data: they differ between any two runs.
VOLATILE = {"load_id", "model_version"}
TABLES = LAYER_TABLES


def _env(home: Path, landing: Path) -> dict[str, str]:
    return {
        **os.environ,
        "BALLAST_HOME": str(home),
        "BALLAST_LANDING_DIR": str(landing),
        "BALLAST_START_DATE": START.isoformat(),
        # 300 customers give small days: 2 % faults put some of them above the default 5 %.
        "BALLAST_MAX_QUARANTINE_SHARE": "0.25",
        "SODA_CORE_TELEMETRY_ENABLED": "false",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DAGSTER_DISABLE_TELEMETRY": "true",
    }


# Every `ballast run` the chain starts, so that a failing chain stops them all.
STARTED: list[subprocess.Popen] = []


def _start(home: Path, landing: Path, *options: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [BALLAST, "run", *options], env=_env(home, landing), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    STARTED.append(proc)
    return proc


def _events(home: Path) -> list[tuple[str, str, str | None, float]]:
    """(run id, event type, step key, epoch seconds) of the step events of every run on the home, read-only."""
    runs_dir = home / "dagster_home" / "history" / "runs"
    found = []
    for db in sorted(runs_dir.glob("*.db")) if runs_dir.is_dir() else []:
        if db.stem == "index":
            continue
        try:
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            rows = con.execute(
                "select dagster_event_type, step_key, timestamp from event_logs where dagster_event_type like 'STEP_%'"
            ).fetchall()
            con.close()
        except sqlite3.OperationalError:
            continue
        # Dagster stores event times as naive UTC.
        found.extend(
            (db.stem, kind, step, dt.datetime.fromisoformat(ts).replace(tzinfo=dt.UTC).timestamp())
            for kind, step, ts in rows
        )
    return found


def _step_started(home: Path, step: str, known_runs: set[str]) -> tuple[str, float] | None:
    for run_id, kind, key, at in _events(home):
        if run_id not in known_runs and kind == "STEP_START" and key == step:
            return run_id, at
    return None


def _step_ended(home: Path, run_id: str, step: str) -> bool:
    return any(r == run_id and k in ("STEP_SUCCESS", "STEP_FAILURE") and s == step for r, k, s, _ in _events(home))


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(processes: list[psutil.Process]) -> list[str]:
    """Those still running (is_running also checks the start time, so a reused pid does not count)."""
    alive = []
    for p in processes:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {p.name()}")
        except psutil.NoSuchProcess:
            pass
    return alive


def _read_until(proc: subprocess.Popen, prefixes: tuple[str, ...]) -> list[str]:
    """Lines of the output up to and including the first that starts with one of `prefixes` (or the end)."""
    lines = []
    while line := proc.stdout.readline():
        lines.append(line.rstrip("\n"))
        if line.startswith(prefixes):
            break
    return lines


def _dbt_running(pid: int) -> bool:
    for child in _descendants(pid):
        try:
            if "dbt" in " ".join(child.cmdline()):
                return True
        except psutil.NoSuchProcess:
            pass
    return False


def _feature_view_state(home: Path) -> str:
    from ballast.features import feast_store

    store = feast_store.open_store(home)
    return store.registry.get_feature_view(feast_repo.FEATURE_VIEW, store.project, allow_cache=False).state.name


def _written_since(home: Path, pattern: str, since: float) -> bool:
    for path in home.glob(pattern):
        try:
            if path.stat().st_mtime >= since:
                return True
        except FileNotFoundError:  # a WAL checkpointed away meanwhile
            pass
    return False


def _materializing(home: Path) -> bool:
    """Whether the Feast registry file holds a feature view in state MATERIALIZING (read as Feast's protobuf)."""
    from feast.feature_view import FeatureViewState
    from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

    path = feast_repo.registry_path(home)
    if not path.is_file():
        return False
    proto = RegistryProto.FromString(path.read_bytes())
    return any(view.meta.state == FeatureViewState.MATERIALIZING.value for view in proto.feature_views)


def _wait_until_under_way(proc: subprocess.Popen, home: Path, step: str, how: str, seconds: float, known: set[str]):
    """Return the run id once `step` is under way, as `how` tells (see KILLS)."""
    deadline = time.monotonic() + RUN_TIMEOUT
    if how == "materializing":
        # Feast's materialization of this data takes about a second: watch the registry
        # itself, which Feast switches to MATERIALIZING before it writes any row.
        _materializing(home)  # import Feast before the clock matters
        while not _materializing(home):
            assert proc.poll() is None and time.monotonic() < deadline, f"no materialization seen in {step}"
            time.sleep(0.005)
        started = _step_started(home, step, known)
        assert started is not None
        return started[0]
    started = None
    while started is None:
        assert proc.poll() is None, f"run ended before {step} started:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, f"{step} did not start"
        started = _step_started(home, step, known)
        time.sleep(0.1)
    run_id, since = started
    polls = 0
    # dbt running as a child and writing the warehouse (dbt starts and parses in about a
    # second, then builds the day's models in about as long), or a file written by the step.
    while not (
        _dbt_running(proc.pid) and _written_since(home, "warehouse.duckdb.wal", since)
        if how == "dbt"
        else _written_since(home, how, since)
    ):
        polls += 1
        if polls % 50 == 0:
            assert not _step_ended(home, run_id, step), f"{step} ended before {how} was seen"
        time.sleep(0.01)
    time.sleep(seconds)
    return run_id


@dataclass
class Kill:
    layer: str
    step: str
    pid: int
    run_id: str
    children: list[psutil.Process]
    dbt_running: bool
    step_had_ended: bool
    feature_view_left: str = ""
    recovered_by: str = ""
    recovery_seconds: float | None = None
    survivors: list[str] = field(default_factory=list)


@dataclass
class Chain:
    reference: Path
    home: Path
    landing: Path
    kills: list[Kill]
    final_output: str
    final_seconds: float
    waited_line: str


def _recovery_line(lines: list[str]) -> str:
    return next((line for line in lines if line.startswith("recovered:")), "")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """One dataset; a reference run (in parallel) and a home whose runs are killed in each layer in turn."""
    try:
        return _chain(tmp_path_factory.mktemp("crash"))
    finally:
        for proc in STARTED:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)


def _chain(root: Path) -> Chain:
    landing, reference, home = root / "landing", root / "reference", root / "home"
    subprocess.run(
        [
            BALLAST,
            "generate",
            "--out",
            str(landing),
            "--customers",
            str(CUSTOMERS),
            "--days",
            str(DAYS),
            "--start",
            START.isoformat(),
            "--seed",
            "3",
            "--faults",
            str(FAULTS),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    ref_proc = _start(reference, landing)
    kills: list[Kill] = []
    known: set[str] = set()
    proc = _start(home, landing)
    started = time.monotonic()
    lock = home / runs.LOCK_FILE
    while not (lock.is_file() and f'"pid": {proc.pid}' in lock.read_text()):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    # A second run on the same home while this one is alive: it must say whom it waits for.
    second = _start(home, landing)
    waited_line = _read_until(second, ("waiting for", "run:", "ballast:"))[-1]
    second.terminate()
    try:
        second.wait(timeout=30)
    except subprocess.TimeoutExpired:
        # What the waiting run was doing when it ignored SIGTERM, for whoever reads the failure.
        status = Path(f"/proc/{second.pid}/status").read_text()
        blocked = [line for line in status.splitlines() if line.startswith(("State", "SigBlk", "SigIgn", "SigCgt"))]
        second.kill()
        raise AssertionError(f"a waiting `ballast run` did not stop on SIGTERM: {waited_line!r} {blocked}") from None
    for layer, step, how, seconds in KILLS:
        run_id = _wait_until_under_way(proc, home, step, how, seconds, known)
        children = _descendants(proc.pid)
        dbt_running = _dbt_running(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        kills.append(Kill(layer, step, proc.pid, run_id, children, dbt_running, _step_ended(home, run_id, step)))
        if step == "features__online_store":
            kills[-1].feature_view_left = _feature_view_state(home)
        known.add(run_id)
        proc = _start(home, landing, *(["--full"] if step == FULL_AFTER else []))
        started = time.monotonic()
        # The next run says what it recovered before it plans or starts work (timed to that line).
        kills[-1].recovered_by = _recovery_line(_read_until(proc, ("recovered:", "run:", "ballast:")))
        kills[-1].recovery_seconds = time.monotonic() - started
        kills[-1].survivors = _alive(children)
    final_output, _ = proc.communicate(timeout=RUN_TIMEOUT)
    final_seconds = time.monotonic() - started
    # Timings for whoever reads the test's temporary folder (not asserted beyond the bounds below).
    (root / "timings.json").write_text(
        json.dumps(
            {
                "recovery_to_run_line_seconds": {k.layer: round(k.recovery_seconds, 1) for k in kills},
                "final_run_seconds": round(final_seconds, 1),
            },
            indent=2,
        )
    )
    assert proc.returncode == 0, final_output
    ref_output, _ = ref_proc.communicate(timeout=RUN_TIMEOUT)
    assert ref_proc.returncode == 0, ref_output
    return Chain(reference, home, landing, kills, final_output, final_seconds, waited_line)


@pytest.mark.full
def test_each_kill_was_inside_its_step(chain: Chain) -> None:
    assert [k.layer for k in chain.kills] == [k[0] for k in KILLS]
    assert [k.step for k in chain.kills if k.step_had_ended] == []


@pytest.mark.full
def test_next_run_says_in_one_line_what_it_recovered(chain: Chain) -> None:
    for kill in chain.kills:
        assert kill.recovered_by.startswith(f"recovered: run {kill.run_id[:8]} (pid {kill.pid}, gone) marked failed"), (
            kill
        )
        pool = FEAST_POOL if kill.step == "features__online_store" else WAREHOUSE_POOL
        assert f"; 1 {pool} pool slot freed" in kill.recovered_by, kill
        # Recovery itself takes seconds, not the minutes of a run.
        assert kill.recovery_seconds < 60, kill


@pytest.mark.full
def test_no_process_of_a_killed_run_survives(chain: Chain) -> None:
    dbt_kills = [k for k in chain.kills if "dbt" in k.layer]
    assert all(k.dbt_running for k in dbt_kills), "the dbt steps were killed with dbt running"
    for kill in chain.kills:
        assert kill.survivors == [], kill


@pytest.mark.full
def test_killed_runs_are_failed_and_hold_no_pool_slot(chain: Chain) -> None:
    settings = Settings(home=chain.home, landing_dir=chain.landing, start_date=START)
    dagster_instance = instance(settings)
    try:
        for kill in chain.kills:
            assert dagster_instance.get_run_by_id(kill.run_id).status == dg.DagsterRunStatus.FAILURE
        storage = dagster_instance.event_log_storage
        assert storage.get_concurrency_run_ids() == set()
        for pool in storage.get_concurrency_keys():
            assert storage.get_concurrency_info(pool).claimed_slots == []
    finally:
        dagster_instance.dispose()


@pytest.mark.full
def test_a_second_run_on_the_home_waits_naming_the_pid(chain: Chain) -> None:
    assert chain.waited_line == f"waiting for ballast run (pid {chain.kills[0].pid}) on {chain.home} to finish"


def _attach(home: Path, reference: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"attach '{home / 'warehouse.duckdb'}' as got (read_only)")
    con.execute(f"attach '{reference / 'warehouse.duckdb'}' as want (read_only)")
    return con


@pytest.mark.full
def test_tables_equal_an_uninterrupted_run(chain: Chain) -> None:
    con = _attach(chain.home, chain.reference)
    try:
        for table in TABLES:
            columns = [r[0] for r in con.execute(f"describe want.{table}").fetchall() if r[0] not in VOLATILE]
            select = ", ".join(f'"{c}"' for c in columns)
            counts = con.execute(
                f"select (select count(*) from got.{table}), (select count(*) from want.{table})"
            ).fetchone()
            differ = con.execute(
                f"select count(*) from ((select {select} from got.{table} except all select {select} from want.{table})"
                f" union all (select {select} from want.{table} except all select {select} from got.{table}))"
            ).fetchone()[0]
            assert counts[0] == counts[1] and differ == 0, (table, counts, differ)
            assert counts[0] > 0 or table == "raw.rejected_files", table
        quarantined = con.execute("select count(*) from got.clean.transactions_quarantine").fetchone()[0]
        assert quarantined > 0
    finally:
        con.close()


def _online_rows(home: Path) -> list[tuple]:
    path = feast_repo.online_store_path(home)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return con.execute(
            f'select entity_key, feature_name, value, event_ts from "{feast_repo.ONLINE_TABLE}" order by 1, 2'
        ).fetchall()
    finally:
        con.close()


@pytest.mark.full
def test_online_store_equals_an_uninterrupted_run(chain: Chain) -> None:
    got, want = _online_rows(chain.home), _online_rows(chain.reference)
    assert len(want) > 0 and got == want


@pytest.mark.full
def test_champion_metrics_equal_an_uninterrupted_run(chain: Chain) -> None:
    got = registry.champion(chain.home / "registry", MODEL_NAME)
    want = registry.champion(chain.reference / "registry", MODEL_NAME)
    assert got is not None and want is not None
    assert got.metadata["evaluation"] == want.metadata["evaluation"]
    assert got.metadata["training_set"]["fingerprint"] == want.metadata["training_set"]["fingerprint"]
    registry.load(got)


@pytest.mark.full
def test_every_file_reads_back_and_no_staging_is_left(chain: Chain) -> None:
    home = chain.home
    leftovers = [
        p
        for root in (home / "lake", home / "registry", home / "monitoring", home / "feast")
        for pattern in run_guard.LEFTOVER_PATTERNS
        for p in root.rglob(pattern)
    ]
    assert leftovers == []
    con = duckdb.connect()
    try:
        for table in ("features/customer_daily_features", "clean/transactions"):
            folder = home / "lake" / table
            if folder.is_dir():
                got = con.execute(f"select count(*) from read_parquet('{folder}/**/*.parquet')").fetchone()[0]
                want = con.execute(
                    f"select count(*) from read_parquet('{chain.reference / 'lake' / table}/**/*.parquet')"
                ).fetchone()[0]
                assert got == want > 0, table
    finally:
        con.close()
    from ballast.profiling import WhylogsEngine

    engine = WhylogsEngine()
    profiles = sorted((home / "monitoring" / "profiles").rglob("*.whylogs"))
    want = sorted(
        p.relative_to(chain.reference) for p in (chain.reference / "monitoring" / "profiles").rglob("*.whylogs")
    )
    assert [p.relative_to(home) for p in profiles] == want
    for path in profiles:
        assert len(engine.summary(path.read_bytes())) > 0, path
    for version in registry.versions(home / "registry", MODEL_NAME):
        registry.load(version)
        json.loads((version.path / registry.METADATA_FILE).read_text())
    for report in (home / "monitoring" / "drift").glob("*.json"):
        json.loads(report.read_text())


@pytest.mark.full
def test_the_killed_materialization_was_reset_and_feast_serves(chain: Chain) -> None:
    from feast.feature_view import FeatureViewState

    from ballast.features import feast_store

    (feast_kill,) = [k for k in chain.kills if k.step == "features__online_store"]
    assert feast_kill.feature_view_left == "MATERIALIZING", "killed mid-materialization"
    assert f"Feast feature view {feast_repo.FEATURE_VIEW} reset from MATERIALIZING" in feast_kill.recovered_by
    # Recovery removed the killed run's marker, and the runs after it left none.
    assert not feast_repo.materializing_marker(chain.home).exists()
    store = feast_store.open_store(chain.home)
    assert store.get_feature_view(feast_repo.FEATURE_VIEW).state == FeatureViewState.AVAILABLE_ONLINE


@pytest.mark.full
def test_feast_reads_go_on_while_another_run_materializes(chain: Chain) -> None:
    """What made one of two concurrent runs fail: reading features while the other materialized them."""
    from feast.feature_view import FeatureViewState

    from ballast.features import feast_store

    settings = Settings(home=chain.home, landing_dir=chain.landing, start_date=START)
    store = feast_store.open_store(chain.home)
    view = store.get_feature_view(feast_repo.FEATURE_VIEW)
    view.state = FeatureViewState.MATERIALIZING
    store.registry.apply_feature_view(view, store.project, commit=True)
    reader = feast_store.open_store(chain.home)
    con = duckdb.connect(str(chain.home / "warehouse.duckdb"), read_only=True)
    try:
        entities = con.execute(
            "select customer_id, snapshot_time as event_timestamp from model.training_set order by all limit 20"
        ).df()
    finally:
        con.close()
    entities["event_timestamp"] = entities["event_timestamp"].dt.tz_localize("UTC")
    assert len(feast_store.historical_features(reader, entities)) == len(entities)
    found, missing = feast_store.online_features(reader, entities["customer_id"].unique().tolist())
    assert missing == [] and len(found) == entities["customer_id"].nunique()
    dagster_instance = instance(settings)
    try:
        # No materialization of Ballast's was cut short (no marker): recovery leaves Feast alone.
        assert run_guard.recover(settings, dagster_instance).feature_views == []
        left = feast_store.open_store(chain.home).get_feature_view(feast_repo.FEATURE_VIEW).state
        assert left == FeatureViewState.MATERIALIZING
        feast_repo.materializing_marker(chain.home).touch()  # as the online store step does before materializing
        recovery = run_guard.recover(settings, dagster_instance)
    finally:
        dagster_instance.dispose()
    assert recovery.feature_views == [feast_repo.FEATURE_VIEW]
    assert not feast_repo.materializing_marker(chain.home).exists()
    assert (
        feast_store.open_store(chain.home).get_feature_view(feast_repo.FEATURE_VIEW).state
        == FeatureViewState.AVAILABLE_ONLINE
    )


# Cheap cases: no graph run.

# The home's instance config is written by the test (ballast.runs.instance) before this
# starts: importing ballast.runs here would load every layer, for nothing but the config.
DYING_RUN = textwrap.dedent(
    """
    import subprocess, sys, time
    from pathlib import Path
    import dagster as dg
    from ballast.monitoring import recovery as run_guard
    from ballast.settings import WAREHOUSE_POOL, Settings

    home = Path(sys.argv[1])
    settings = Settings(home=home, landing_dir=home / "landing")

    @dg.asset(pool=WAREHOUSE_POOL)
    def slow() -> None:
        child = subprocess.Popen(["sleep", "300"])
        (home / "child.pid").write_text(str(child.pid))
        time.sleep(300)

    with run_guard.marked_children(home):
        dg.materialize([slow], instance=dg.DagsterInstance.from_config(str(settings.dagster_home)), tags=run_guard.run_tags())
    """
)


def _settings(home: Path) -> Settings:
    return Settings(home=home, landing_dir=home / "landing", start_date=START)


def test_dagster_yaml_is_accepted_with_run_monitoring_and_a_run_queue(tmp_path: Path) -> None:
    dagster_instance = instance(_settings(tmp_path))
    try:
        assert dagster_instance.run_monitoring_enabled
        assert dagster_instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert dagster_instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 1
        assert dagster_instance.event_log_storage.get_pool_config().default_pool_limit == 1
    finally:
        dagster_instance.dispose()


@pytest.mark.parametrize("command", ["run", "dev", "sensor"])
def test_a_run_whose_process_died_is_failed_its_slot_freed_and_its_child_stopped(command: str, tmp_path: Path) -> None:
    """Before `ballast run`, before `ballast dev` starts the UI, and while it runs (the sensor)."""
    script = tmp_path / "dying_run.py"
    script.write_text(DYING_RUN)
    settings = _settings(tmp_path)
    instance(settings).dispose()
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)])
    deadline = time.monotonic() + 120
    pid_file = tmp_path / "child.pid"
    # The file exists a moment before its pid is written in it.
    while not (pid_file.exists() and pid_file.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    child = psutil.Process(int(pid_file.read_text()))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert child.is_running(), "the child outlives its killed parent: the case recovery is for"

    dagster_instance = instance(settings)
    try:
        (stale,) = dagster_instance.get_runs()
        assert stale.status == dg.DagsterRunStatus.STARTED
        assert [
            s.run_id for s in dagster_instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots
        ] == [stale.run_id]
        said: list[str] = []
        if command == "run":
            runs.prepare_run(settings, notify=said.append)
        elif command == "sensor":
            skip = run_guard.dead_run_sensor(settings)(dg.build_sensor_context(instance=dagster_instance))
            said.append(skip.skip_message)
        else:
            env = runs.prepare_dev(settings, notify=said.append)
            assert json.loads(env[run_guard.OWNER_ENV])["pid"] == os.getpid(), (
                "dagster dev's processes are marked as its own"
            )
        (line,) = said
        assert line.startswith(
            f"recovered: run {stale.run_id[:8]} (pid {proc.pid}, gone) marked failed; 1 {WAREHOUSE_POOL} pool slot freed;"
        ), line
        # Dagster's own log-capture helpers of the dead run are stopped too.
        assert " orphaned process" in line and f"sleep {child.pid}" in line, line
        assert dagster_instance.get_run_by_id(stale.run_id).status == dg.DagsterRunStatus.FAILURE
        assert dagster_instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).claimed_slots == []
        assert not child.is_running()
        assert run_guard.recover(settings, dagster_instance).line() is None, "nothing left to recover"
    finally:
        dagster_instance.dispose()
        if settings.home in runs._held:
            runs._held.pop(settings.home).release()


def test_a_run_that_never_started_is_failed_unless_ballast_dev_is_alive(tmp_path: Path) -> None:
    """A run created but never started records no process: with no live `ballast dev` to start it, nothing will."""

    @dg.asset
    def never_started() -> None: ...

    settings = _settings(tmp_path)
    dagster_instance = instance(settings)
    try:
        job = dg.Definitions(assets=[never_started]).resolve_implicit_global_asset_job_def()
        stale = dagster_instance.create_run_for_job(job)
        assert stale.status == dg.DagsterRunStatus.NOT_STARTED
        # This process plays a live `ballast dev`: the run is left to it.
        me = run_guard.Owner.current()
        dev_file = tmp_path / run_guard.DEV_OWNER_FILE
        dev_file.write_text(json.dumps({"pid": me.pid, "host": me.host, "started": me.started}))
        first = run_guard.recover_runs(settings, dagster_instance)
        assert first.live_runs == [f"run {stale.run_id[:8]} (process unknown)"], first.line()
        # A `ballast dev` that has ended (this pid with another start time) owns nothing.
        dev_file.write_text(json.dumps({"pid": me.pid, "host": me.host, "started": me.started - 3600}))
        assert run_guard.recover_runs(settings, dagster_instance).line() == (
            f"recovered: run {stale.run_id[:8]} (no process, no ballast dev) marked failed"
        )
        assert dagster_instance.get_run_by_id(stale.run_id).status == dg.DagsterRunStatus.FAILURE
    finally:
        dagster_instance.dispose()


@pytest.mark.full  # a real `ballast run` (it loads every layer), waiting, then going on
def test_a_second_ballast_run_waits_and_names_the_pid_it_waits_for(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ballast.runs import HomeLock;"
            " lock = HomeLock(Path(sys.argv[1])); lock.acquire(print); print('held', flush=True); time.sleep(300)",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    (tmp_path / "landing").mkdir()
    second = _start(tmp_path, tmp_path / "landing")
    try:
        assert (
            _read_until(second, ("waiting for",))[-1]
            == f"waiting for ballast run (pid {holder.pid}) on {tmp_path} to finish"
        )
        time.sleep(1)
        assert second.poll() is None, "it waits while the other run holds the home"
    finally:
        holder.kill()
        holder.wait()
    rest, _ = second.communicate(timeout=120)
    # Then it goes on: here to the next problem, an empty landing folder.
    assert second.returncode == 1 and "no landing files" in rest


def test_half_written_files_of_a_killed_run_are_removed_and_do_not_block_the_next_save(tmp_path: Path) -> None:
    from sklearn.dummy import DummyClassifier

    settings = _settings(tmp_path)
    base = settings.registry_dir / MODEL_NAME
    (base / ".v0001.tmp").mkdir(parents=True)
    (base / ".v0001.tmp" / registry.MODEL_FILE).write_bytes(b"half a mod")
    saved = registry.save(settings.registry_dir, MODEL_NAME, DummyClassifier().fit([[0], [1]], [0, 1]), {})
    assert saved.version == "v0001" and registry.load(saved) is not None
    day = feast_repo.feature_dir(settings.lake_dir)
    (day / "feature_date=2025-01-01").mkdir(parents=True)
    (day / "feature_date=2025-01-01" / "part_0.parquet").write_bytes(b"complete")
    staging = lake.staging_dir(day)
    (staging / "feature_date=2025-01-01").mkdir()
    (settings.monitoring_dir / "profiles").mkdir(parents=True)
    (settings.monitoring_dir / "profiles" / ".2025-01-01.whylogs.abc123.tmp").write_bytes(b"half")
    dagster_instance = instance(settings)
    try:
        recovery = run_guard.recover(settings, dagster_instance)
    finally:
        dagster_instance.dispose()
    assert sorted(p.name for p in recovery.leftovers) == sorted(
        [".v0001.tmp", staging.name, ".2025-01-01.whylogs.abc123.tmp"]
    )
    assert recovery.line() == "recovered: 3 half-written file(s) of a killed run removed"
    assert (day / "feature_date=2025-01-01" / "part_0.parquet").read_bytes() == b"complete"
    assert [v.version for v in registry.versions(settings.registry_dir, MODEL_NAME)] == ["v0001"]
