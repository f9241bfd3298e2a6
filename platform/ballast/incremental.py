"""Incremental runs: what the landing folder changed since the last successful materializations, and the runs that refresh it.

The plan compares the landing files (name, event date, SHA-256: each file read once)
with the files the warehouse's raw tables recorded, turns new, changed and removed
files into event dates, and follows those dates down the asset graph: one date for
the layers keyed by event date, every later day for the features (a feature row of day
D reads the windows up to 90 days back and, for tenure, the customer's first
transaction however old), and the same days for what is built from the features. Partitions never materialized (a failed or blocked
run) and assets whose code version changed since their last materialization are added,
and every unpartitioned asset downstream is rebuilt whole. Execution is a short sequence
of single-run backfills, one per contiguous range of days that assets share, in graph
order, stopping at the first run that fails or that a blocking check stopped.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import dagster as dg

from ballast.common.gates import withholding_checks
from ballast.definitions import REFRESH_JOB
from ballast.features.assets import CUSTOMER_DAILY_FEATURES
from ballast.raw.landing import survey
from ballast.raw.landing_changes import FileChanges, file_changes
from ballast.runs import refresh
from ballast.settings import Settings

# Dagster records the code version an asset was materialized with under this tag.
CODE_VERSION_TAG = "dagster/code_version"
# Dagster tags a failed run with why it failed; a step that failed (a gate refusing, too
# little data) is the asset's own answer, unlike a run killed, interrupted or cancelled.
FAILURE_REASON_TAG = "dagster/failure_reason"
STEP_FAILED = "STEP_FAILURE"
# How far back to look for the last run that tried to build an asset.
RECENT_RUNS = 100


@dataclass(frozen=True)
class Step:
    """One Dagster run: these assets, for the days [start, end] where they are partitioned."""

    start: dt.date
    end: dt.date
    assets: tuple[dg.AssetKey, ...]


@dataclass(frozen=True)
class IncrementalPlan:
    window: tuple[dt.date, dt.date]
    files: FileChanges
    # Days to refresh per partitioned asset, and the unpartitioned assets to rebuild.
    partitions: Mapping[dg.AssetKey, frozenset[dt.date]]
    unpartitioned: tuple[dg.AssetKey, ...]
    # The days refreshed from the landing files on (the raw layer's).
    landing_days: frozenset[dt.date] = frozenset()
    reasons: tuple[str, ...] = ()
    steps: tuple[Step, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.steps

    def summary(self) -> list[str]:
        """What the run will do, in a few lines a person reads before it starts."""
        lines = []
        counts = [
            _count(len(files), f"{word} file")
            for files, word in (
                (self.files.new, "new"),
                (self.files.changed, "changed"),
                (self.files.removed_rejected, "removed rejected"),
            )
            if files
        ]
        if self.files.removed_loaded:
            gone = _count(len(self.files.removed_loaded), "loaded file")
            lines.append(f"note: {gone} no longer in the landing folder; their rows stay")
        if self.empty:
            lines.append("nothing changed since the last run: no new, changed or missing partitions; nothing to run")
            return lines
        features = self.partitions.get(CUSTOMER_DAILY_FEATURES, frozenset())
        parts = [_span(sorted(self.landing_days))] if self.landing_days else []
        if features:
            parts.append(_count(len(features), "feature day"))
        if self.unpartitioned:
            parts.append(_count(len(self.unpartitioned), "unpartitioned asset"))
        what = f"{', '.join(counts)}; " if counts else ""
        lines.append(f"{what}refreshing {' and '.join(parts)} in {_count(len(self.steps), 'run')}")
        lines.extend(self.reasons)
        return lines


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def _span(days: list[dt.date]) -> str:
    """Days as contiguous ranges: 2025-06-28 to 2025-06-30, 2025-07-04."""
    return ", ".join(f"{r[0]}" if r[0] == r[1] else f"{r[0]} to {r[1]}" for r in contiguous(days))


def contiguous(days: Iterable[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """Sorted days as the fewest [first, last] ranges of consecutive days."""
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


# How the days of a parent asset map to the days of a child to refresh: the same days,
# or, into the feature table, every day from the earliest changed one to the end.
DayMapping = Callable[[set[dt.date], dt.date], set[dt.date]]


def _same_days(days: set[dt.date], end: dt.date) -> set[dt.date]:
    return days


def every_later_day(days: set[dt.date], end: dt.date) -> set[dt.date]:
    """The feature days a change on `days` can reach: all from the earliest to `end`.

    The rolling windows alone would stop 90 days on, but tenure counts from a customer's
    first transaction, so a file that adds or removes a first transaction changes that
    customer's every later day. Appending a day, the common case, costs one feature day.
    """
    if not days:
        return set()
    first = min(days)
    return {first + dt.timedelta(days=i) for i in range((end - first).days + 1)}


def plan_run(
    settings: Settings,
    defs: dg.Definitions,
    dagster_instance: dg.DagsterInstance,
    window: tuple[dt.date, dt.date],
    full: bool = False,
    dates: tuple[dt.date, dt.date] | None = None,
    today: dt.date | None = None,
) -> IncrementalPlan:
    """The partitions and assets a run refreshes, and the runs that do it.

    `full`: every asset over the window; `dates`: those days (within the window) as if their files changed.
    """
    graph = defs.resolve_asset_graph()
    start, end = window
    all_days = {start + dt.timedelta(days=i) for i in range((end - start).days + 1)}
    order = list(graph.toposorted_asset_keys)
    partitioned = [k for k in order if graph.get(k).is_partitioned]
    files = FileChanges()
    if full or dates:
        chosen = all_days if full else {d for d in all_days if dates[0] <= d <= dates[1]}
        seeds = {k: set(chosen) for k in partitioned}
        code_changed: set[dg.AssetKey] = set()
        unpartitioned_seeds = {k for k in order if not graph.get(k).is_partitioned}
        waiting: dict[dg.AssetKey, set[dt.date]] = {}
        reasons: list[str] = []
    else:
        found = survey(settings.landing_dir, today=today, start_date=settings.start_date)
        files = file_changes(settings, found.files)
        seeds, waiting, code_changed, unpartitioned_seeds, reasons = _state_seeds(
            graph, dagster_instance, order, all_days, files.dates() & all_days
        )
    mappings = {
        (CUSTOMER_DAILY_FEATURES, parent): every_later_day for parent in graph.get(CUSTOMER_DAILY_FEATURES).parent_keys
    }
    partitions, rebuild = _propagate(
        graph, order, seeds, waiting, code_changed, unpartitioned_seeds, mappings, end, all_days
    )
    partitions = _whole_ops(defs, partitions)
    steps = _steps(order, partitions, rebuild, end)
    roots = [k for k in partitioned if not graph.get(k).parent_keys]
    return IncrementalPlan(
        window,
        files,
        partitions,
        tuple(k for k in order if k in rebuild),
        frozenset().union(*(partitions.get(k, frozenset()) for k in roots)),
        tuple(reasons),
        steps,
    )


def _state_seeds(
    graph,
    dagster_instance: dg.DagsterInstance,
    order: list[dg.AssetKey],
    all_days: set[dt.date],
    changed_days: set[dt.date],
) -> tuple[
    dict[dg.AssetKey, set[dt.date]], dict[dg.AssetKey, set[dt.date]], set[dg.AssetKey], set[dg.AssetKey], list[str]
]:
    """Days to refresh per asset from the files, the missing partitions and the code versions; assets rebuilt whole.

    Also the missing days that wait for an input not built yet, per asset (a score profile
    waits for a champion): they are refreshed when a run rebuilds that input.
    """
    seeds: dict[dg.AssetKey, set[dt.date]] = {}
    waiting: dict[dg.AssetKey, set[dt.date]] = {}
    code_changed: set[dg.AssetKey] = set()
    unpartitioned: set[dg.AssetKey] = set()
    done: dict[dg.AssetKey, set[dt.date] | bool] = {}
    missing_count = 0
    attempts = _last_attempts(dagster_instance, [k for k in order if not graph.get(k).is_partitioned])
    stopped: list[tuple[dg.AssetKey, dg.DagsterRun]] = []
    for key in order:
        node = graph.get(key)
        latest = dagster_instance.get_latest_materialization_event(key)
        recorded_version = latest.asset_materialization.tags.get(CODE_VERSION_TAG) if latest else None
        if node.is_partitioned:
            materialized = {dt.date.fromisoformat(p) for p in dagster_instance.get_materialized_partitions(key)}
            done[key] = materialized
            # A missing day counts once its inputs exist (a score profile waits for a champion).
            possible = set(all_days)
            for parent in node.parent_keys:
                parent_done = done.get(parent, True)
                possible &= parent_done if isinstance(parent_done, set) else (all_days if parent_done else set())
            missing = possible - materialized
            waiting[key] = all_days - materialized - possible
            missing_count += len(missing - changed_days)
            seeds[key] = missing | (changed_days if not node.parent_keys else set())
        else:
            done[key] = latest is not None
            # A missing asset with inputs follows them when its last run failed at a step (a
            # champion a gate refused stays missing until the data or code changes); one that
            # reads nothing, was never tried, or whose run stopped before building it is built.
            if latest is None:
                attempt = attempts.get(key)
                if not node.parent_keys or attempt is None:
                    unpartitioned.add(key)
                elif (
                    attempt.status != dg.DagsterRunStatus.SUCCESS
                    and attempt.tags.get(FAILURE_REASON_TAG) != STEP_FAILED
                ):
                    unpartitioned.add(key)
                    stopped.append((key, attempt))
        if latest is not None and node.code_version is not None and recorded_version != node.code_version:
            code_changed.add(key)
    reasons = []
    if missing_count:
        reasons.append(
            f"{missing_count} asset partition(s) never materialized (a new home, or a failed or blocked run)"
        )
    if stopped:
        names = ", ".join(
            f"{k.to_user_string()} (run {run.run_id[:8]}, {run.status.value.lower()})" for k, run in stopped
        )
        reasons.append(f"not built because their last run stopped before them: {names}")
    if code_changed:
        names = ", ".join(k.to_user_string() for k in order if k in code_changed)
        reasons.append(f"code changed since the last materialization of {names}: rebuilding them over the whole window")
    return seeds, waiting, code_changed, unpartitioned, reasons


def _last_attempts(dagster_instance: dg.DagsterInstance, keys: list[dg.AssetKey]) -> dict[dg.AssetKey, dg.DagsterRun]:
    """The latest finished run that set out to build each asset (a full refresh run builds them all)."""
    found: dict[dg.AssetKey, dg.DagsterRun] = {}
    finished = dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]
    )
    for record in dagster_instance.get_run_records(finished, limit=RECENT_RUNS):
        run = record.dagster_run
        # A run of the whole job records no selection (None, or empty when run in process).
        selected = run.asset_selection
        if not selected and run.job_name != REFRESH_JOB:
            continue
        for key in keys:
            if key not in found and (not selected or key in selected):
                found[key] = run
        if len(found) == len(keys):
            break
    return found


def _propagate(
    graph,
    order: list[dg.AssetKey],
    seeds: dict[dg.AssetKey, set[dt.date]],
    waiting: dict[dg.AssetKey, set[dt.date]],
    code_changed: set[dg.AssetKey],
    unpartitioned_seeds: set[dg.AssetKey],
    mappings: dict[tuple[dg.AssetKey, dg.AssetKey], DayMapping],
    end: dt.date,
    all_days: set[dt.date],
) -> tuple[dict[dg.AssetKey, frozenset[dt.date]], set[dg.AssetKey]]:
    """Days per partitioned asset and the unpartitioned assets to rebuild, following the graph down."""
    days: dict[dg.AssetKey, set[dt.date]] = {}
    rebuild: set[dg.AssetKey] = set()
    for key in order:
        node = graph.get(key)
        if node.is_partitioned:
            found = set(seeds.get(key, ())) | (all_days if key in code_changed else set())
            for parent in node.parent_keys:
                if parent in days:
                    found |= mappings.get((key, parent), _same_days)(days[parent], end)
                elif parent in rebuild and parent in code_changed:
                    found |= all_days
                elif parent in rebuild:
                    # Days that waited for this input, which the run now builds.
                    found |= waiting.get(key, set())
            days[key] = found & all_days
        elif (
            key in unpartitioned_seeds
            or key in code_changed
            or any(days.get(p) or p in rebuild for p in node.parent_keys)
        ):
            rebuild.add(key)
    partitions = {k: frozenset(v) for k, v in days.items() if v}
    if partitions or rebuild:
        # An asset that reads no other asset and has no code version (the debt scorecard reads
        # the instance and the definitions) comes along with any run; one with a code version
        # (the Feast registry, from feature_repo/) only when missing or changed, above.
        rebuild |= {
            k
            for k in order
            if not graph.get(k).is_partitioned and not graph.get(k).parent_keys and graph.get(k).code_version is None
        }
    return partitions, rebuild


def _whole_ops(defs: dg.Definitions, partitions: dict[dg.AssetKey, frozenset[dt.date]]):
    """The same days for every asset of an op that cannot run a subset of its assets (the raw load writes three)."""
    result = dict(partitions)
    for key in list(partitions):
        assets_def = defs.resolve_assets_def(key)
        if not assets_def.can_subset:
            union = frozenset().union(*(partitions.get(k, frozenset()) for k in assets_def.keys))
            for k in assets_def.keys:
                result[k] = union
    return result


def _steps(
    order: list[dg.AssetKey],
    partitions: Mapping[dg.AssetKey, frozenset[dt.date]],
    rebuild: set[dg.AssetKey],
    end: dt.date,
) -> tuple[Step, ...]:
    """Runs in graph order: assets that share their days share runs, one per contiguous range; the unpartitioned join the last."""
    groups: dict[frozenset[dt.date], list[dg.AssetKey]] = {}
    for key in order:
        if key in partitions:
            groups.setdefault(partitions[key], []).append(key)
    steps = [Step(first, last, tuple(keys)) for days, keys in groups.items() for first, last in contiguous(days)]
    whole = tuple(k for k in order if k in rebuild)
    if whole:
        if steps:
            last = steps[-1]
            steps[-1] = Step(last.start, last.end, last.assets + whole)
        else:
            steps.append(Step(end, end, whole))
    return tuple(steps)


def execute(
    settings: Settings,
    defs: dg.Definitions,
    dagster_instance: dg.DagsterInstance,
    plan: IncrementalPlan,
    log_level: str = "INFO",
    on_run: Callable[[Step, str], None] | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """The plan's runs in order, stopping after the first that fails or that a blocking check stopped; their results.

    `on_run` hears of each run and its id before it starts (live progress reads its events).
    """
    results = []
    for step in plan.steps:
        run_id = str(uuid.uuid4())
        if on_run is not None:
            on_run(step, run_id)
        result = refresh(
            settings,
            step.start,
            step.end,
            dagster_instance=dagster_instance,
            selection=dg.AssetSelection.assets(*step.assets),
            log_level=log_level,
            defs=defs,
            run_id=run_id,
        )
        results.append(result)
        if not result.success or withholding_checks(result):
            break
    return results
