"""New landing files picked up: a sensor and a daily schedule that request a refresh run for the days whose files are new or changed.

A file version is a landing file's name and the SHA-256 of its bytes, as the raw loader
records them in raw.transactions and raw.rejected_files. A run's key is a hash of the
versions it is requested for, and the daemon launches one run per key, so each version
triggers one run: an identical re-delivery (same bytes, even touched or copied over
itself) requests nothing, a corrected file (same name, new bytes) one run.

The run is the refresh job over one range of days, as a single-run backfill: from the
earliest day with a new or changed file to the latest landing day. Later days come along
because a feature day reads windows up to 90 days back and tenure from a customer's first
transaction (`ballast run` refreshes them too); appending the next day is a one-day run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import dagster as dg
import duckdb

from ballast.common.partitions import range_tags
from ballast.raw.landing import LandingError, LandingFile, survey
from ballast.raw.landing_changes import UNREAD, compare, digest, recorded_files
from ballast.settings import Settings

LANDING_SENSOR = "landing_file_sensor"
LANDING_SCHEDULE = "landing_daily_schedule"
SENSOR_INTERVAL_SECONDS = 60
RUN_KEY_PREFIX = "landing-"
TRIGGER_TAG = "ballast/trigger"
TRIGGER = "landing"
FILES_TAG = "ballast/landing_files"
# Runs that may have the warehouse open: DuckDB lets no other process read beside a writer.
ACTIVE = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
SHOWN_NAMES = 3
NOTHING_NEW = "no new or changed landing files"
UNCHANGED = "the landing folder has not changed since every file was loaded"


@dataclass(frozen=True)
class LandingCursor:
    """What the sensor carries between ticks.

    `seen`: each file's size, modification time and hash, so a file is read again only when
    one of them changed. `requested`: the versions a run was requested for and the raw
    tables do not hold yet, so another file arriving meanwhile does not request them twice.
    `settled`: the last tick found every file loaded, so while the folder stays as it was
    the warehouse is not opened at all (a run could not take its write lock meanwhile).
    """

    seen: Mapping[str, tuple[int, int, str]] = field(default_factory=dict)
    requested: Mapping[str, str] = field(default_factory=dict)
    settled: bool = False

    @classmethod
    def parse(cls, text: str | None) -> LandingCursor:
        try:
            data = json.loads(text) if text else {}
            seen = {k: (int(v[0]), int(v[1]), str(v[2])) for k, v in data["seen"].items()}
            return cls(seen, data["requested"], bool(data.get("settled", False)))
        except (ValueError, KeyError, TypeError, IndexError):
            # No cursor, or one set by hand: start over (the run keys still stop a repeat).
            return cls()

    def dump(self) -> str:
        return json.dumps({"seen": self.seen, "requested": self.requested, "settled": self.settled}, sort_keys=True)


@dataclass(frozen=True)
class Decision:
    request: dg.RunRequest | None
    reason: str
    cursor: LandingCursor


def run_key(versions: Collection[tuple[str, str]]) -> str:
    """The run key of a set of file versions (name, SHA-256): the same set, the same key."""
    text = "\n".join(f"{name}\t{sha}" for name, sha in sorted(versions))
    return RUN_KEY_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def file_versions(
    files: list[LandingFile], seen: Mapping[str, tuple[int, int, str]]
) -> tuple[dict[str, str], dict[str, tuple[int, int, str]]]:
    """Each file's SHA-256 (read again only when its size or modification time changed), and the new `seen`."""
    versions: dict[str, str] = {}
    stats: dict[str, tuple[int, int, str]] = {}
    for f in files:
        try:
            stat = f.path.stat()
        except OSError:
            versions[f.name] = UNREAD
            continue
        cached = seen.get(f.name)
        same = cached is not None and cached[:2] == (stat.st_size, stat.st_mtime_ns)
        versions[f.name] = cached[2] if same else digest(f)
        if versions[f.name] != UNREAD:
            stats[f.name] = (stat.st_size, stat.st_mtime_ns, versions[f.name])
    return versions, stats


def decide(
    settings: Settings,
    instance: dg.DagsterInstance,
    job_name: str,
    cursor: LandingCursor,
    today: dt.date | None = None,
) -> Decision:
    """The run to request for the new and changed landing files (or why none), and the cursor after it."""
    try:
        found = survey(settings.landing_dir, today=today, start_date=settings.start_date)
    except LandingError as exc:
        return Decision(None, str(exc), cursor)
    versions, seen = file_versions(found.files, cursor.seen)
    if cursor.settled and seen == dict(cursor.seen) and len(seen) == len(found.files):
        return Decision(None, UNCHANGED, cursor)
    waiting = LandingCursor(seen, cursor.requested)
    # Reading the warehouse while a run writes it would fail (or make the run's writer fail).
    active = instance.get_runs(dg.RunsFilter(statuses=ACTIVE), limit=1)
    if active:
        run = active[0]
        return Decision(None, f"run {run.run_id[:8]} ({run.job_name}) is in progress; looking after it ends", waiting)
    try:
        recorded = recorded_files(settings)
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        return Decision(None, f"the warehouse cannot be read now ({first}); looking again next tick", waiting)
    changes = compare(found.files, recorded, lambda f: versions[f.name])
    held = {(name, sha) for name, sha, _ in recorded}
    # A requested version waits until the raw tables hold it, or its file changes again.
    pending = {n: sha for n, sha in cursor.requested.items() if versions.get(n) == sha and (n, sha) not in held}
    new = [f for f in changes.new if pending.get(f.name) != versions[f.name]]
    changed = [f for f in changes.changed if pending.get(f.name) != versions[f.name]]
    note = (
        f"; {_names(sorted(pending))} requested earlier and not loaded yet"
        " (if that run failed, re-execute it from the UI or run `ballast run`)"
        if pending
        else ""
    )
    if not new and not changed:
        return Decision(None, f"{NOTHING_NEW}{note}", LandingCursor(seen, pending, settled=not pending))
    todo = [*new, *changed]
    start, end = min(f.event_date for f in todo), max(f.event_date for f in found.files)
    counts = f"{len(new)} new, {len(changed)} changed"
    request = dg.RunRequest(
        run_key=run_key([(f.name, versions[f.name]) for f in todo]),
        job_name=job_name,
        tags={**range_tags(start, end), TRIGGER_TAG: TRIGGER, FILES_TAG: counts},
    )
    reason = f"{counts} landing file(s) ({_names(sorted(f.name for f in todo))}): refreshing {start} to {end}{note}"
    return Decision(request, reason, LandingCursor(seen, {**pending, **{f.name: versions[f.name] for f in todo}}))


def _names(names: list[str]) -> str:
    more = len(names) - SHOWN_NAMES
    return ", ".join(names[:SHOWN_NAMES]) + (f" and {more} more" if more > 0 else "")


def landing_sensor(settings: Settings, job_name: str, status: dg.DefaultSensorStatus) -> dg.SensorDefinition:
    @dg.sensor(
        name=LANDING_SENSOR,
        job_name=job_name,
        minimum_interval_seconds=SENSOR_INTERVAL_SECONDS,
        default_status=status,
        description=f"Requests one {job_name} run for the days whose landing files are new or changed"
        f" (under {settings.landing_dir}), once per file version (name and SHA-256).",
    )
    def landing_file_sensor(context: dg.SensorEvaluationContext):
        decision = decide(settings, context.instance, job_name, LandingCursor.parse(context.cursor))
        context.update_cursor(decision.cursor.dump())
        if decision.request is None:
            return dg.SkipReason(decision.reason)
        context.log.info(decision.reason)
        return decision.request

    return landing_file_sensor


def landing_schedule(settings: Settings, job_name: str, status: dg.DefaultScheduleStatus) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=LANDING_SCHEDULE,
        cron_schedule=settings.landing_cron,
        job_name=job_name,
        execution_timezone="UTC",
        default_status=status,
        description=f"The alternative to {LANDING_SENSOR}: at BALLAST_LANDING_CRON ({settings.landing_cron}, UTC)"
        f" requests one {job_name} run for the days whose landing files are new, changed or not loaded yet.",
    )
    def landing_daily_schedule(context: dg.ScheduleEvaluationContext):
        # No cursor: every file is read once a day, and a version whose run failed is requested again.
        decision = decide(settings, context.instance, job_name, LandingCursor())
        if decision.request is None:
            return dg.SkipReason(decision.reason)
        context.log.info(decision.reason)
        return decision.request

    return landing_daily_schedule
