"""Recovery from runs whose process died, on one Ballast home.

A run killed with SIGKILL cannot clean up after itself: Dagster keeps it STARTED with
its pool slots claimed (so the next run waits for them forever), dbt or Spark started
by it may live on and hold the warehouse, Feast keeps the feature view MATERIALIZING,
and staging files stay behind. `recover` finds such runs by the process that ran them
and undoes all of that, before each CLI run (ballast.runs) and, while `dagster dev`
runs, from the dead-run sensor.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import psutil

from ballast.features import feast_repo
from ballast.settings import Settings

# Tags on every run started through ballast.runs.refresh: the process that executes it.
PID_TAG = "ballast/pid"
HOST_TAG = "ballast/host"
PROCESS_STARTED_TAG = "ballast/process_started"
# Inherited by every child (dbt, Spark's JVM, dagster dev's processes): whose they are,
# so recovery finds them even after they were re-parented to init.
OWNER_ENV = "BALLAST_RUN_OWNER"
DEAD_RUN_SENSOR = "dead_run_recovery_sensor"
# Which process `ballast dev` is (it becomes `dagster dev`, same pid): it owns the UI's runs.
DEV_OWNER_FILE = "dev.json"
IN_PROGRESS = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# What a killed run leaves half-written: the lake's staging and trash folders, the
# registry's staging versions and common.atomic's temporary files.
LEFTOVER_PATTERNS = (".staging-*", ".trash-*", ".v*.tmp", ".*.tmp")
# A process start time read twice differs by clock-tick rounding, never by a second.
START_TIME_TOLERANCE = 1.0
KILL_GRACE_SECONDS = 3.0
WAIT_POLL_SECONDS = 2.0

Notify = Callable[[str], None]


def say(line: str) -> None:
    """Print at once: a waiting process must say so now, not when its output buffer fills."""
    print(line, flush=True)


@dataclass(frozen=True)
class Owner:
    """The process that executes a run (or owns a child process): pid, host and start time."""

    pid: int
    host: str
    started: float | None

    @classmethod
    def current(cls) -> Owner:
        return cls(os.getpid(), socket.gethostname(), psutil.Process().create_time())

    def is_local(self) -> bool:
        return self.host == socket.gethostname()

    def is_alive(self) -> bool:
        """Whether the process still runs (a pid reused by another process does not count)."""
        try:
            process = psutil.Process(self.pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return self.started is None or abs(process.create_time() - self.started) < START_TIME_TOLERANCE
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True

    def tags(self) -> dict[str, str]:
        return {PID_TAG: str(self.pid), HOST_TAG: self.host, PROCESS_STARTED_TAG: repr(self.started)}

    def env(self, home: Path) -> dict[str, str]:
        return {OWNER_ENV: json.dumps({"home": str(home), "pid": self.pid, "host": self.host, "started": self.started})}


def run_tags() -> dict[str, str]:
    """Tags naming this process as the one that executes the run."""
    return Owner.current().tags()


@contextlib.contextmanager
def marked_children(home: Path) -> Iterator[None]:
    """Children started inside this block carry this process as their owner (see OWNER_ENV)."""
    previous = os.environ.get(OWNER_ENV)
    os.environ[OWNER_ENV] = Owner.current().env(home)[OWNER_ENV]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(OWNER_ENV, None)
        else:
            os.environ[OWNER_ENV] = previous


@dataclass
class Recovery:
    """What `recover` cleaned up; `line()` says it in one line."""

    runs: list[str] = field(default_factory=list)
    slots: dict[str, int] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    feature_views: list[str] = field(default_factory=list)
    leftovers: list[Path] = field(default_factory=list)
    live_runs: list[str] = field(default_factory=list)

    def line(self) -> str | None:
        parts = []
        if self.runs:
            parts.append(", ".join(self.runs) + " marked failed")
        if self.slots:
            parts.append(
                ", ".join(f"{n} {pool} pool slot{'s' * (n > 1)}" for pool, n in sorted(self.slots.items())) + " freed"
            )
        if self.killed:
            parts.append(
                f"{len(self.killed)} orphaned process{'es' * (len(self.killed) > 1)} stopped ({', '.join(self.killed)})"
            )
        if self.feature_views:
            parts.append(f"Feast feature view {', '.join(self.feature_views)} reset from MATERIALIZING")
        if self.leftovers:
            parts.append(f"{len(self.leftovers)} half-written file(s) of a killed run removed")
        return "recovered: " + "; ".join(parts) if parts else None


def _run_owner(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Owner | None:
    """The process of a run: from Ballast's tags, else from the run worker's start event (runs launched by the UI)."""
    tags = run.tags
    if PID_TAG in tags:
        started = tags.get(PROCESS_STARTED_TAG)
        return Owner(int(tags[PID_TAG]), tags.get(HOST_TAG, ""), None if started in (None, "None") else float(started))
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data is not None else None
        if pid is not None:
            # The run worker is on the host that wrote the event; its start time is not recorded.
            return Owner(int(pid.value), socket.gethostname(), None)
    return None


def _kill_orphans(home: Path) -> list[str]:
    """Stop processes carrying OWNER_ENV for `home` whose owner is gone (dbt, Spark, ...); returns 'name pid' of each."""
    orphans = []
    for process in psutil.process_iter(["pid", "name", "environ"]):
        marker = (process.info.get("environ") or {}).get(OWNER_ENV)
        if not marker or process.pid == os.getpid():
            continue
        try:
            owner = json.loads(marker)
        except json.JSONDecodeError:
            continue
        if owner.get("home") != str(home):
            continue
        if Owner(int(owner["pid"]), owner.get("host", ""), owner.get("started")).is_alive():
            continue
        orphans.append(process)
    for process in orphans:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(orphans, timeout=KILL_GRACE_SECONDS)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=KILL_GRACE_SECONDS)
    return [f"{p.info.get('name') or '?'} {p.pid}" for p in orphans]


def _claimed_slots(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    storage = instance.event_log_storage
    claimed = {}
    for pool in storage.get_concurrency_keys():
        n = sum(1 for slot in storage.get_concurrency_info(pool).claimed_slots if slot.run_id == run_id)
        if n:
            claimed[pool] = n
    return claimed


def _free_slots(instance: dg.DagsterInstance, run_id: str, recovery: Recovery) -> None:
    for pool, n in _claimed_slots(instance, run_id).items():
        recovery.slots[pool] = recovery.slots.get(pool, 0) + n
    instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def _dev_owner(home: Path) -> Owner | None:
    """The `ballast dev` last started on this home, if its record can be read."""
    try:
        found = json.loads((home / DEV_OWNER_FILE).read_text())
        return Owner(int(found["pid"]), found["host"], found["started"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _fail_dead_runs(instance: dg.DagsterInstance, home: Path, recovery: Recovery) -> None:
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        owner = _run_owner(instance, run)
        if owner is None:
            # No process recorded: only a UI launch that has not started yet, which the
            # live `ballast dev` of this home owns; with none alive, nothing will run it.
            dev = _dev_owner(home)
            if dev is not None and dev.is_alive():
                recovery.live_runs.append(_describe(run, owner))
                continue
            message = "Ballast found no process for this run and no `ballast dev` running on its home."
            said = f"run {run.run_id[:8]} (no process, no ballast dev)"
        elif not owner.is_local() or owner.is_alive():
            recovery.live_runs.append(_describe(run, owner))
            continue
        else:
            message = f"Ballast found the process of this run (pid {owner.pid}) gone: it was killed or crashed."
            said = f"run {run.run_id[:8]} (pid {owner.pid}, gone)"
        instance.report_run_failed(run, message)
        recovery.runs.append(said)
        _free_slots(instance, run.run_id, recovery)
    # Slots of runs that ended without freeing them (e.g. marked failed in the UI).
    storage = instance.event_log_storage
    holders = storage.get_concurrency_run_ids()
    if holders:
        for record in instance.get_run_records(dg.RunsFilter(run_ids=list(holders))):
            if record.dagster_run.is_finished:
                _free_slots(instance, record.dagster_run.run_id, recovery)


def _describe(run: dg.DagsterRun, owner: Owner | None) -> str:
    if owner is None:
        return f"run {run.run_id[:8]} (process unknown)"
    where = "" if owner.is_local() else f" on {owner.host}"
    return f"run {run.run_id[:8]} (pid {owner.pid}{where})"


def _reset_feature_views(home: Path) -> list[str]:
    """Feature views a killed materialization left MATERIALIZING, set back to what the registry shows was done.

    Only after a materialization that did not finish (its marker is still there): Feast is not imported otherwise.
    """
    marker = feast_repo.materializing_marker(home)
    if not marker.exists():
        return []
    if not feast_repo.registry_path(home).is_file():
        marker.unlink(missing_ok=True)
        return []
    from feast.feature_view import FeatureViewState

    from ballast.features import feast_store

    store = feast_store.open_store(home)
    reset = []
    for view in store.registry.list_feature_views(store.project, allow_cache=False):
        if view.state != FeatureViewState.MATERIALIZING:
            continue
        # Feast's own rollback restores the state before materializing: online if an
        # earlier materialization completed (its rows are still there), else generated.
        view.state = FeatureViewState.AVAILABLE_ONLINE if view.materialization_intervals else FeatureViewState.GENERATED
        store.registry.apply_feature_view(view, store.project, commit=True)
        reset.append(view.name)
    marker.unlink(missing_ok=True)
    return reset


def _remove_leftovers(settings: Settings) -> list[Path]:
    found: list[Path] = []
    roots = [
        settings.lake_dir,
        settings.registry_dir,
        settings.monitoring_dir,
        feast_repo.registry_path(settings.home).parent,
    ]
    for root in roots:
        if not root.is_dir():
            continue
        for pattern in LEFTOVER_PATTERNS:
            found.extend(p for p in root.rglob(pattern) if p not in found)
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found


def recover_runs(settings: Settings, instance: dg.DagsterInstance) -> Recovery:
    """Stop the orphans of dead runs, fail those runs and free their pool slots; leaves live runs alone."""
    recovery = Recovery()
    # First the orphans, so that no dbt or Spark of a dead run still writes while we clean.
    recovery.killed = _kill_orphans(settings.home)
    _fail_dead_runs(instance, settings.home, recovery)
    return recovery


def recover(settings: Settings, instance: dg.DagsterInstance) -> Recovery:
    """Clean up after runs on this home whose process is gone; leaves live runs alone."""
    recovery = recover_runs(settings, instance)
    if not recovery.live_runs:
        # Only with no run alive: a live run's staging files and MATERIALIZING state are its own.
        recovery.feature_views = _reset_feature_views(settings.home)
        recovery.leftovers = _remove_leftovers(settings)
    return recovery


def dead_run_sensor(settings: Settings) -> dg.SensorDefinition:
    """While `dagster dev` runs: dead runs are failed and their pool slots freed without waiting for the next `ballast run`."""

    # On by default: it starts no run, it only releases what a dead run holds. Staging
    # files and Feast's MATERIALIZING state are left to the next run's start, when no
    # other run can own them.
    @dg.sensor(
        name=DEAD_RUN_SENSOR,
        minimum_interval_seconds=60,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Marks runs whose process died as failed, frees their pool slots and stops their orphaned dbt"
        " or Spark processes.",
    )
    def dead_run_recovery_sensor(context: dg.SensorEvaluationContext):
        line = recover_runs(settings, context.instance).line()
        if line:
            context.log.warning(line)
        return dg.SkipReason(line or "no dead run")

    return dead_run_recovery_sensor
