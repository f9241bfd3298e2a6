"""Incremental `ballast run`: the partitions a new, changed or removed landing file refreshes, and tables equal to a full run.

Two small homes over the same generated files, materialized for real (Dagster, dbt,
DuckDB): home A runs in full on all but the last day, then incrementally after the last
day's file arrives; home B runs in full on every file. The cases below share them, in order.
"""

import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.cli.main import main
from ballast.definitions import build_defs
from ballast.features.assets import CUSTOMER_DAILY_FEATURES
from ballast.incremental import IncrementalPlan, contiguous, every_later_day, execute, plan_run
from ballast.raw.assets import RAW_TRANSACTIONS
from ballast.raw.landing import plan
from ballast.runs import instance
from ballast.settings import Settings
from tests.conftest import START, make_settings

DAYS = 40
CUSTOMERS = 50
LAST_DAY = START + dt.timedelta(days=DAYS - 1)
CHANGED_DAY = START + dt.timedelta(days=19)
# 2 % faults on ~20 rows a day: a day's share can pass the default limit by chance.
QUARANTINE_SHARE = 0.5
# Tables compared row for row between the homes, without the columns that name the run that wrote a row.
COMPARED = (
    "raw.transactions",
    "raw.rejected_files",
    "raw.ignored_files",
    "clean.transactions",
    "clean.transactions_quarantine",
    "features.customer_daily_features",
    "model.churn_labels",
    "model.training_set",
)
RUN_COLUMNS = ("load_id",)
# Three small graph runs share the module's homes: minutes on a busy machine, beyond the default timeout.
pytestmark = [pytest.mark.full, pytest.mark.timeout(3600)]


@dataclass
class Home:
    settings: Settings
    defs: dg.Definitions

    def plan(self, **options) -> IncrementalPlan:
        window = plan(self.settings.landing_dir, self.settings.start_date)
        dagster_instance = instance(self.settings)
        try:
            return plan_run(self.settings, self.defs, dagster_instance, (window.start, window.end), **options)
        finally:
            dagster_instance.dispose()

    def run(self, **options) -> tuple[IncrementalPlan, dict[dg.AssetKey, set[str | None]]]:
        """Plan and execute; the partitions each asset materialized, read back from the instance's events of those runs."""
        dagster_instance = instance(self.settings)
        try:
            window = plan(self.settings.landing_dir, self.settings.start_date)
            todo = plan_run(self.settings, self.defs, dagster_instance, (window.start, window.end), **options)
            results = execute(self.settings, self.defs, dagster_instance, todo)
            materialized: dict[dg.AssetKey, set[str | None]] = {}
            for result in results:
                for record in dagster_instance.all_logs(
                    result.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
                ):
                    event = record.dagster_event
                    materialized.setdefault(event.asset_key, set()).add(event.partition)
            return todo, materialized
        finally:
            dagster_instance.dispose()


def _days(first: dt.date, last: dt.date) -> set[str]:
    return {(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)}


def _home(root: Path, name: str, files: list[Path]) -> Home:
    settings = make_settings(root / name, max_quarantine_share=QUARANTINE_SHARE)
    settings.ensure_dirs()
    for f in files:
        shutil.copy(f, settings.landing_dir / f.name)
    return Home(settings, build_defs(settings))


@dataclass
class Homes:
    source: Path
    incremental: Home
    full: Home
    first_run: dict[dg.AssetKey, set[str | None]]
    added_plan: IncrementalPlan
    added_run: dict[dg.AssetKey, set[str | None]]


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory) -> Homes:
    root = tmp_path_factory.mktemp("incremental")
    source = root / "generated"
    generate(GenerateSpec(out=source, customers=CUSTOMERS, days=DAYS, start=START, seed=11, faults=0.02))
    files = sorted(source.glob("transactions_*.csv"))
    home_a = _home(root, "a", files[:-1])
    _, first_run = home_a.run(full=True)
    shutil.copy(files[-1], home_a.settings.landing_dir / files[-1].name)
    added_plan, added_run = home_a.run()
    home_b = _home(root, "b", files)
    home_b.run(full=True)
    return Homes(source, home_a, home_b, first_run, added_plan, added_run)


def test_a_new_file_refreshes_its_day_in_every_partitioned_asset(homes: Homes) -> None:
    assert [f.name for f in homes.added_plan.files.new] == [f"transactions_{LAST_DAY}.csv"]
    assert homes.added_plan.files.changed == ()
    partitioned = {k for k, parts in homes.first_run.items() if parts != {None}}
    assert RAW_TRANSACTIONS in partitioned and CUSTOMER_DAILY_FEATURES in partitioned
    # Every partitioned asset the full run built is refreshed for the new day and no other.
    assert {k: homes.added_run.get(k) for k in partitioned} == {k: {LAST_DAY.isoformat()} for k in partitioned}
    # The full run of all but the last day covered its days once each.
    assert homes.first_run[RAW_TRANSACTIONS] == _days(START, LAST_DAY - dt.timedelta(days=1))


def test_the_unpartitioned_assets_downstream_are_rebuilt(homes: Homes) -> None:
    # On this little data the model may refuse to train (one class); what the full run built is built again.
    built_before = {k for k, parts in homes.first_run.items() if parts == {None}}
    rebuilt = {k for k, parts in homes.added_run.items() if parts == {None}}
    assert dg.AssetKey.from_user_string("model/churn_labels") in built_before
    assert dg.AssetKey.from_user_string("model/training_set") in built_before
    # The Feast registry's definitions did not change: it is not applied again.
    assert built_before - rebuilt == {dg.AssetKey.from_user_string("features/feature_registry")}


def _last_dbt_invocation(log: Path) -> list[str]:
    """The messages dbt logged (JSON lines, appended per invocation) in its last invocation with this target."""
    messages = [json.loads(line)["info"]["msg"] for line in log.read_text().splitlines() if line.startswith("{")]
    starts = [i for i, m in enumerate(messages) if m.startswith("running dbt with arguments")]
    return messages[starts[-1] :]


def _assert_parsed_nothing(target: Path) -> None:
    """dbt's last invocation with this target started from a parse that still held: it parsed no file."""
    messages = _last_dbt_invocation(target / "dbt.log")
    assert any(m.startswith("Partial parsing enabled") for m in messages), messages[:5]
    assert not [m for m in messages if "Unable to do partial parsing" in m or "updated file" in m]


@pytest.mark.parametrize("layer", ["clean", "features"])
def test_a_new_window_costs_dbt_no_parsing(homes: Homes, layer: str) -> None:
    # The window reaches dbt as environment variables read only when executing: the layer's
    # dbt step, run before for the other days, parses nothing for the new day.
    target = homes.incremental.settings.dbt_runs_dir / layer
    _assert_parsed_nothing(target)
    # The new day, which no earlier window reached, is in the SQL dbt ran.
    window = f"date '{LAST_DAY}'"
    assert any(window in sql.read_text() for sql in (target / "compiled").rglob("*.sql"))


@pytest.mark.parametrize("layer", ["features", "model"])
def test_a_fresh_home_parses_the_dbt_project_once(homes: Homes, layer: str) -> None:
    # The clean layer's invocation, the first in the home, parses the project; the later
    # layers start from its parse instead of parsing the whole project again.
    _assert_parsed_nothing(homes.full.settings.dbt_runs_dir / layer)


def test_an_incremental_run_gives_the_tables_of_a_full_run(homes: Homes) -> None:
    con = duckdb.connect()
    try:
        con.execute(f"attach '{homes.incremental.settings.warehouse_path}' as a (read_only)")
        con.execute(f"attach '{homes.full.settings.warehouse_path}' as b (read_only)")
        for table in COMPARED:
            columns = [
                c
                for (c,) in con.execute(
                    "select column_name from duckdb_columns() where database_name = 'a'"
                    " and schema_name || '.' || table_name = ? order by column_index",
                    [table],
                ).fetchall()
                if c not in RUN_COLUMNS
            ]
            select = ", ".join(f'"{c}"' for c in columns)
            rows = con.execute(f"select count(*) from a.{table}").fetchone()[0]
            differ = con.execute(
                f"select count(*) from ((select {select} from a.{table} except all select {select} from b.{table})"
                f" union all (select {select} from b.{table} except all select {select} from a.{table}))"
            ).fetchone()[0]
            assert (table, differ) == (table, 0), f"{table}: {differ} of {rows} rows differ"
        assert con.execute("select count(*) from a.features.customer_daily_features").fetchone()[0] > 0
    finally:
        con.close()


def test_nothing_changed_runs_nothing(homes: Homes, capsys, monkeypatch) -> None:
    todo = homes.incremental.plan()
    assert todo.empty and todo.steps == () and not todo.partitions
    monkeypatch.setenv("BALLAST_HOME", str(homes.incremental.settings.home))
    monkeypatch.setenv("BALLAST_START_DATE", START.isoformat())
    monkeypatch.setenv("BALLAST_MAX_QUARANTINE_SHARE", str(QUARANTINE_SHARE))
    assert main(["run"]) == 0
    out = capsys.readouterr().out
    assert "nothing changed since the last run" in out
    assert "run log:" not in out


def test_dates_refresh_those_days_and_every_later_feature_day(homes: Homes) -> None:
    first, last = START + dt.timedelta(days=3), START + dt.timedelta(days=5)
    todo = homes.incremental.plan(dates=(first, last))
    assert todo.partitions[RAW_TRANSACTIONS] == {dt.date.fromisoformat(d) for d in _days(first, last)}
    reach = LAST_DAY  # tenure reads the whole history: every later feature day
    assert todo.partitions[CUSTOMER_DAILY_FEATURES] == {dt.date.fromisoformat(d) for d in _days(first, reach)}
    # One run for the landing days, one for the feature days (and everything built from them).
    assert [(s.start, s.end) for s in todo.steps] == [(first, last), (first, reach)]


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("2025-01-05", "is not a range"),
        ("2025-01-05:2025-01-02", "is after"),
        ("2025-01-05:soon", "is not a date"),
    ],
)
def test_dates_that_are_not_a_range_are_refused(argument: str, message: str, capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--dates", argument])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err


def test_dates_outside_the_landing_days_are_refused(homes: Homes, capsys, monkeypatch) -> None:
    monkeypatch.setenv("BALLAST_HOME", str(homes.incremental.settings.home))
    monkeypatch.setenv("BALLAST_START_DATE", START.isoformat())
    monkeypatch.setenv("BALLAST_MAX_QUARANTINE_SHARE", str(QUARANTINE_SHARE))
    assert main(["run", "--dates", "2030-01-01:2030-01-31"]) == 1
    err = capsys.readouterr().err
    assert "outside the landing files' days" in err and "Traceback" not in err


def test_a_removed_loaded_file_keeps_its_rows_and_runs_nothing(homes: Homes) -> None:
    name = f"transactions_{START + dt.timedelta(days=4)}.csv"
    moved = homes.source / "removed.csv"
    shutil.move(homes.incremental.settings.landing_dir / name, moved)
    try:
        todo = homes.incremental.plan()
    finally:
        shutil.move(moved, homes.incremental.settings.landing_dir / name)
    assert todo.files.removed_loaded == (name,)
    assert todo.empty
    assert any("no longer in the landing folder; their rows stay" in line for line in todo.summary())


def test_a_changed_file_refreshes_its_day_and_the_days_that_depend_on_it(homes: Homes) -> None:
    path = homes.incremental.settings.landing_dir / f"transactions_{CHANGED_DAY}.csv"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # the corrected delivery drops its last record
    todo, materialized = homes.incremental.run()
    assert [f.name for f in todo.files.changed] == [path.name] and todo.files.new == ()
    assert materialized[RAW_TRANSACTIONS] == {CHANGED_DAY.isoformat()}
    assert materialized[dg.AssetKey(["clean", "transactions"])] == {CHANGED_DAY.isoformat()}
    reach = LAST_DAY
    assert materialized[CUSTOMER_DAILY_FEATURES] == _days(CHANGED_DAY, reach)
    assert contiguous([dt.date.fromisoformat(d) for d in materialized[CUSTOMER_DAILY_FEATURES]]) == [
        (CHANGED_DAY, reach)
    ]
    con = duckdb.connect(str(homes.incremental.settings.warehouse_path), read_only=True)
    try:
        rows = con.execute("select count(*) from raw.transactions where source_file = ?", [path.name]).fetchone()[0]
    finally:
        con.close()
    assert rows == len(lines) - 2  # the header and the dropped record


def test_a_change_reaches_every_later_feature_day_beyond_the_longest_window() -> None:
    """Tenure counts from the first transaction: a change 200 days back reaches today's features."""
    end = dt.date(2025, 12, 31)
    changed = {end - dt.timedelta(days=200), end - dt.timedelta(days=150)}
    reached = every_later_day(changed, end)
    assert min(reached) == min(changed) and max(reached) == end and len(reached) == 201
    assert every_later_day({end}, end) == {end}
    assert every_later_day(set(), end) == set()
