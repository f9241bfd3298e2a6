"""Live progress of `ballast run` and `ballast demo`: steps ended out of the run's total, the steps running, time.

Dagster records each step's start and end in the instance's event log as the run goes;
a thread reads them back twice a second, so the runs themselves are untouched. A
terminal gets a tqdm bar per run; a file or a pipe gets one line per step started or
ended, for CI logs.
"""

from __future__ import annotations

import io
import os
import threading
import time
from typing import TextIO

import dagster as dg
from tqdm import tqdm

from ballast.incremental import Step

POLL_SECONDS = 0.5
# No rate or time left: steps take from milliseconds (a check) to minutes (dbt, training).
BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps [{elapsed}{postfix}]"
OUTCOMES = {dg.DagsterEventType.STEP_SUCCESS: "done", dg.DagsterEventType.STEP_FAILURE: "failed"}
STEP_EVENTS = {dg.DagsterEventType.STEP_START, *OUTCOMES}


def step_keys(defs: dg.Definitions) -> dict[str, tuple[dg.AssetKey | dg.AssetCheckKey, ...]]:
    """What each op builds, by step key: its assets, or its checks for an op of checks only."""
    found: dict[str, tuple[dg.AssetKey | dg.AssetCheckKey, ...]] = {}
    for assets_def in defs.resolve_asset_graph().assets_defs:
        if assets_def.is_executable:
            found[assets_def.node_def.name] = tuple(assets_def.keys) or tuple(assets_def.check_keys)
    return found


def label(step_key: str, built: dict[str, tuple], selection: frozenset[dg.AssetKey] | None) -> str:
    """A step in the user's words: `clean/transactions +1` or `raw/transactions: 6 checks`, not `clean_dbt_models`."""
    keys = built.get(step_key, ())
    # A dbt op builds only the run's selection of its models.
    assets = [k for k in keys if isinstance(k, dg.AssetKey) and (not selection or k in selection)]
    if assets:
        # The op's namesake first: the raw load also writes its file ledgers.
        assets.sort(key=lambda k: (step_key not in ("_".join(k.path), "__".join(k.path)), k.to_user_string()))
        return assets[0].to_user_string() + (f" +{len(assets) - 1}" if len(assets) > 1 else "")
    checks = [k for k in keys if isinstance(k, dg.AssetCheckKey)]
    if len(checks) == 1:
        return checks[0].to_user_string()
    if checks:
        return f"{', '.join(sorted({k.asset_key.to_user_string() for k in checks}))}: {len(checks)} checks"
    return step_key


class RunProgress:
    """Shows the plan's runs one after another; `follow` is `execute`'s `on_run`, `close` ends the last display."""

    def __init__(self, out: TextIO, dagster_instance: dg.DagsterInstance, defs: dg.Definitions, runs: int) -> None:
        self._out = out
        self._instance = dagster_instance
        self._built = step_keys(defs)
        self._runs = runs
        self._index = 0
        self._started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def follow(self, step: Step, run_id: str) -> None:
        self.close()
        self._index += 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, args=(run_id, self._index), daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Read the run's last events and end its bar, so that what is printed next starts on a line of its own."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None

    def _watch(self, run_id: str, index: int) -> None:
        view: _RunView | None = None
        cursor = None
        stopping = False
        try:
            while not stopping:
                stopping = self._stop.wait(POLL_SECONDS)
                if view is None and (run := self._instance.get_run_by_id(run_id)) is not None:
                    run_name = f"run {index}/{self._runs}" if self._runs > 1 else ""
                    view = _RunView(self._out, run, run_name, self._started, self._built)
                if view is not None:
                    cursor = self._read(view, run_id, cursor)
        finally:
            # Even if reading failed (its traceback goes to the run log), the bar ends its line.
            if view is not None:
                view.close()

    def _read(self, view: _RunView, run_id: str, cursor: str | None) -> str | None:
        while True:
            page = self._instance.get_records_for_run(run_id, cursor=cursor, of_type=STEP_EVENTS)
            for record in page.records:
                entry = record.event_log_entry
                event = entry.dagster_event
                if event.event_type == dg.DagsterEventType.STEP_START:
                    view.started(event.step_key, entry.timestamp)
                else:
                    view.ended(event.step_key, OUTCOMES[event.event_type], entry.timestamp)
            cursor = page.cursor
            if not page.has_more:
                view.tick()
                return cursor


def draws_a_bar(out: TextIO) -> bool:
    """A terminal with a width: tqdm draws nothing on one that reports 0 columns (a pty nobody sized)."""
    try:
        return out.isatty() and os.get_terminal_size(out.fileno()).columns > 0
    except (OSError, ValueError, io.UnsupportedOperation):
        return False


class _RunView:
    """One run on the screen: a bar on a terminal, else a line per step started or ended."""

    def __init__(self, out: TextIO, run: dg.DagsterRun, name: str, started: float, built: dict[str, tuple]) -> None:
        self._out = out
        self._total = len(run.step_keys_to_execute or ())
        self._selection = run.asset_selection
        self._name = name
        self._started = started
        self._built = built
        self._ended = 0
        self._failed = 0
        self._running: dict[str, tuple[str, float]] = {}
        self._bar = (
            tqdm(total=self._total, desc=name or "run", file=out, dynamic_ncols=True, bar_format=BAR_FORMAT)
            if draws_a_bar(out)
            else None
        )

    # `at`: when Dagster recorded the event (epoch seconds), not when it was read.
    def started(self, step_key: str, at: float) -> None:
        name = label(step_key, self._built, self._selection)
        self._running[step_key] = (name, at)
        self._show(f"{name} started", at)

    def ended(self, step_key: str, outcome: str, at: float) -> None:
        name, since = self._running.pop(step_key, (label(step_key, self._built, self._selection), at))
        self._ended += 1
        self._failed += outcome == "failed"
        if self._bar is not None:
            self._bar.update(1)
        self._show(f"{name} {outcome} ({at - since:.1f}s)", at)

    def tick(self) -> None:
        if self._bar is not None:
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{self._failed} failed" if self._failed else "", refresh=False)
            self._bar.close()

    def _show(self, what: str, at: float) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(", ".join(name for name, _ in self._running.values()))
            return
        elapsed = max(0, int(at - self._started))
        run = f"{self._name} " if self._name else ""
        print(
            f"[{run}{self._ended}/{self._total} {elapsed // 60}m{elapsed % 60:02d}s] {what}", file=self._out, flush=True
        )
