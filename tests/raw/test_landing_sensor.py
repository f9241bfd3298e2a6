"""The landing sensor and schedule, evaluated on a real Dagster instance over a small home with real DuckDB loads.

The story: a home whose first nine days are loaded; the tenth day's file arrives; it is
delivered again unchanged; an earlier day's file is corrected. The sensor's cursor is
carried from tick to tick as the daemon carries it, each requested run is launched as the
daemon launches it (the request's tags, its run key and the sensor's name) and executed
for real (the raw layer of the refresh job: the step that records the file versions), and
the run keys are the ones the daemon dedupes on.
"""

import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.common.partitions import RANGE_END_TAG, RANGE_START_TAG
from ballast.definitions import REFRESH_JOB, build_defs
from ballast.raw.landing import LandingFile, survey
from ballast.raw.sensors import (
    LANDING_SCHEDULE,
    LANDING_SENSOR,
    NOTHING_NEW,
    TRIGGER,
    TRIGGER_TAG,
    UNCHANGED,
    LandingCursor,
    file_versions,
    run_key,
)
from ballast.raw.tables import RAW_LAYER, RAW_TRANSACTIONS_TABLE
from ballast.runs import instance, refresh
from ballast.settings import Settings, SettingsError
from tests.conftest import START, make_settings

DAYS = 10
LAST_DAY = START + dt.timedelta(days=DAYS - 1)
CORRECTED_DAY = START + dt.timedelta(days=4)
# Dagster's tags on a sensor's runs, which its daemon reads to launch a run key once.
RUN_KEY_TAG = "dagster/run_key"
SENSOR_NAME_TAG = "dagster/sensor_name"
RAW = dg.AssetSelection.groups(RAW_LAYER)


@dataclass
class Tick:
    requests: list[dg.RunRequest]
    skip: str | None


@dataclass
class Home:
    settings: Settings
    defs: dg.Definitions
    instance: dg.DagsterInstance
    source: Path
    cursor: str | None = None
    ticks: dict[str, list[Tick]] = field(default_factory=dict)
    schedule_new: Tick | None = None
    schedule_loaded: Tick | None = None
    run_new: dg.ExecuteInProcessResult | None = None
    run_corrected: dg.ExecuteInProcessResult | None = None

    def tick(self, phase: str) -> Tick:
        """One sensor evaluation, as the daemon runs it: the last cursor in, the new cursor kept."""
        repo = self.defs.get_repository_def()
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor, repository_def=repo)
        data = repo.get_sensor_def(LANDING_SENSOR).evaluate_tick(context)
        self.cursor = data.cursor
        found = Tick(list(data.run_requests or []), data.skip_message)
        self.ticks.setdefault(phase, []).append(found)
        return found

    def schedule_tick(self) -> Tick:
        repo = self.defs.get_repository_def()
        context = dg.build_schedule_context(instance=self.instance, repository_def=repo)
        data = repo.get_schedule_def(LANDING_SCHEDULE).evaluate_tick(context)
        return Tick(list(data.run_requests or []), data.skip_message)

    def launched_keys(self) -> set[str]:
        runs = self.instance.get_runs(dg.RunsFilter(tags={SENSOR_NAME_TAG: LANDING_SENSOR}))
        return {run.tags[RUN_KEY_TAG] for run in runs}

    def launch(self, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
        """The run the daemon launches for a request it has not launched yet, executed for the raw layer."""
        assert request.run_key not in self.launched_keys()
        job = self.defs.resolve_job_def(REFRESH_JOB)
        return job.execute_in_process(
            instance=self.instance,
            tags={**request.tags, RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: LANDING_SENSOR},
            asset_selection=list(RAW.resolve(self.defs.resolve_asset_graph())),
            raise_on_error=False,
        )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _name(day: dt.date) -> str:
    return f"transactions_{day}.csv"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory):
    """Nine days loaded into raw, then the story's ticks and runs, in order."""
    root = tmp_path_factory.mktemp("landing_sensor")
    source = root / "generated"
    generate(GenerateSpec(out=source, customers=50, days=DAYS, start=START, seed=5, faults=0.0))
    settings = make_settings(root / "home")
    settings.ensure_dirs()
    for day in range(DAYS - 1):
        shutil.copy(source / _name(START + dt.timedelta(days=day)), settings.landing_dir)
    defs = build_defs(settings)
    dagster_instance = instance(settings)
    end = LAST_DAY - dt.timedelta(days=1)
    loaded = refresh(settings, START, end, dagster_instance, selection=RAW, log_level="WARNING", defs=defs)
    assert loaded.success
    h = Home(settings, defs, dagster_instance, source)
    h.tick("loaded")
    # A new file: one request; the next tick, before its run, none.
    shutil.copy(source / _name(LAST_DAY), settings.landing_dir)
    h.tick("new")
    h.tick("new")
    h.schedule_new = h.schedule_tick()
    h.run_new = h.launch(h.ticks["new"][0].requests[0])
    h.tick("new_loaded")
    h.tick("quiet")
    h.schedule_loaded = h.schedule_tick()
    # The same bytes again: copied over the file (a new modification time), and written
    # under a temporary name and renamed over it, as delivery tools do.
    shutil.copy(source / _name(LAST_DAY), settings.landing_dir)
    later = (settings.landing_dir / _name(LAST_DAY)).stat().st_mtime + 60
    os.utime(settings.landing_dir / _name(LAST_DAY), (later, later))
    h.tick("redelivered")
    staged = settings.landing_dir / f".{_name(START)}.part"
    shutil.copy(source / _name(START), staged)
    os.replace(staged, settings.landing_dir / _name(START))
    h.tick("redelivered")
    # A corrected file: the same name without its last row.
    corrected = settings.landing_dir / _name(CORRECTED_DAY)
    text = corrected.read_text()
    corrected.write_text(text.rstrip("\n").rsplit("\n", 1)[0] + "\n")
    h.tick("corrected")
    h.tick("corrected")
    h.run_corrected = h.launch(h.ticks["corrected"][0].requests[0])
    h.tick("corrected_loaded")
    yield h
    dagster_instance.dispose()


def _requests(home: Home, phase: str) -> list[dg.RunRequest]:
    return [r for t in home.ticks[phase] for r in t.requests]


def test_a_loaded_home_requests_nothing(home: Home) -> None:
    (tick,) = home.ticks["loaded"]
    assert tick.requests == []
    assert tick.skip == NOTHING_NEW


def test_a_new_landing_file_triggers_exactly_one_run(home: Home) -> None:
    first, second = home.ticks["new"]
    (request,) = first.requests
    path = home.settings.landing_dir / _name(LAST_DAY)
    assert request.run_key == run_key([(_name(LAST_DAY), _sha(path))])
    assert request.job_name == REFRESH_JOB
    assert request.tags[RANGE_START_TAG] == request.tags[RANGE_END_TAG] == LAST_DAY.isoformat()
    assert request.tags[TRIGGER_TAG] == TRIGGER
    # The next tick, before the run loads the file, does not request it again.
    assert second.requests == []
    assert f"{_name(LAST_DAY)} requested earlier and not loaded yet" in second.skip
    # The run, executed for real, loads the file; then nothing more is requested.
    assert home.run_new.success
    assert [t.requests for t in home.ticks["new_loaded"]] == [[]]
    assert home.ticks["new_loaded"][0].skip == NOTHING_NEW
    assert LandingCursor.parse(home.cursor).requested == {}


def test_an_unchanged_folder_is_not_compared_with_the_warehouse_again(home: Home) -> None:
    (quiet,) = home.ticks["quiet"]
    assert (quiet.requests, quiet.skip) == ([], UNCHANGED)


def test_the_schedule_requests_what_is_not_loaded_and_then_nothing(home: Home) -> None:
    (request,) = home.schedule_new.requests
    assert request.run_key == _requests(home, "new")[0].run_key
    assert request.tags[RANGE_START_TAG] == LAST_DAY.isoformat()
    assert home.schedule_loaded.requests == []
    assert home.schedule_loaded.skip == NOTHING_NEW


def test_a_redelivered_identical_file_triggers_none(home: Home) -> None:
    assert [t.requests for t in home.ticks["redelivered"]] == [[], []]
    assert all(t.skip == NOTHING_NEW for t in home.ticks["redelivered"])


def test_a_corrected_file_triggers_exactly_one_run(home: Home) -> None:
    first, second = home.ticks["corrected"]
    (request,) = first.requests
    path = home.settings.landing_dir / _name(CORRECTED_DAY)
    assert request.run_key == run_key([(_name(CORRECTED_DAY), _sha(path))])
    # The corrected day and every later landing day: feature windows reach forward from it.
    assert (request.tags[RANGE_START_TAG], request.tags[RANGE_END_TAG]) == (
        CORRECTED_DAY.isoformat(),
        LAST_DAY.isoformat(),
    )
    assert second.requests == []
    assert home.run_corrected.success
    assert [t.requests for t in home.ticks["corrected_loaded"]] == [[]]
    # The raw table now holds the corrected version: one row fewer than generated.
    rows = len((home.source / _name(CORRECTED_DAY)).read_text().strip().splitlines()) - 2
    with duckdb.connect(str(home.settings.warehouse_path), read_only=True) as con:
        loaded = con.execute(
            f"select count(*), min(file_hash) from {RAW_TRANSACTIONS_TABLE} where source_file = ?",
            [_name(CORRECTED_DAY)],
        ).fetchone()
    assert loaded == (rows, _sha(path))


def test_the_daemon_launches_one_run_per_file_version(home: Home) -> None:
    requested = [r.run_key for phase in home.ticks for r in _requests(home, phase)]
    assert len(requested) == len(set(requested)) == 2
    assert home.launched_keys() == set(requested)


def test_a_locked_warehouse_skips_the_tick_with_a_reason(home: Home) -> None:
    """A writer in another process holds the warehouse: the tick skips, and requests the file once the lock is gone."""
    extra = home.settings.landing_dir / _name(LAST_DAY - dt.timedelta(days=1))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()",
            str(home.settings.warehouse_path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        # Nothing changed since every file was loaded: the warehouse is not even opened.
        unchanged = home.tick("locked")
        shutil.copy(extra, home.settings.landing_dir / f"late_delivery_{LAST_DAY - dt.timedelta(days=1)}.csv")
        locked = home.tick("locked")
    finally:
        holder.communicate("", timeout=60)
    assert (unchanged.requests, unchanged.skip) == ([], UNCHANGED)
    assert locked.requests == []
    assert "the warehouse cannot be read now" in locked.skip and "lock" in locked.skip
    after = home.tick("unlocked")
    assert [r.tags[RANGE_START_TAG] for r in after.requests] == [(LAST_DAY - dt.timedelta(days=1)).isoformat()]


def test_unchanged_files_are_not_read_again(tmp_path: Path) -> None:
    """A file whose size and modification time are the cursor's keeps the cursor's hash; a touched one is read."""
    path = tmp_path / _name(START)
    path.write_text("transaction_id\n1\n")
    found = survey(tmp_path, start_date=START).files
    assert [f.name for f in found] == [path.name]
    stat = path.stat()
    cached = {path.name: (stat.st_size, stat.st_mtime_ns, "hash-from-the-cursor")}
    assert file_versions(found, cached)[0] == {path.name: "hash-from-the-cursor"}
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    versions, seen = file_versions(found, cached)
    assert versions == {path.name: _sha(path)}
    assert seen[path.name][2] == _sha(path)
    missing = LandingFile(tmp_path / "gone_2025-01-02.csv", "gone_2025-01-02.csv", START, "csv")
    assert file_versions([missing], {})[0] == {missing.name: ""}


@pytest.mark.parametrize(
    ("cron", "message"),
    [("0 2 * *", "has 4 field"), ("0 25 * * *", "outside 0-23"), ("0 2 * * mon", "is not a cron field")],
)
def test_a_bad_landing_cron_is_refused_by_name(tmp_path: Path, cron: str, message: str) -> None:
    with pytest.raises(SettingsError, match=f"BALLAST_LANDING_CRON=.*{message}"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_LANDING_CRON": cron})
