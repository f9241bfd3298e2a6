"""The Feast feature store, for real: registry, Parquet export, materialization, point-in-time retrieval, parity."""

import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from feast.protos.feast.types.Value_pb2 import Value as ValueProto

from ballast.cli import main as cli
from ballast.definitions import build_defs
from ballast.features import feast_repo
from ballast.features import feast_store as fs
from ballast.features.assets import FEATURE_REGISTRY, ONLINE_STORE, PARITY_CHECK
from ballast.model import training
from ballast.runs import instance, refresh
from ballast.settings import Settings
from tests.conftest import Platform, make_settings

PARITY_KEY = dg.AssetCheckKey(ONLINE_STORE, PARITY_CHECK)


def _lake_rows(settings: Settings, where: str = "true") -> pd.DataFrame:
    pattern = str(feast_repo.feature_dir(settings.lake_dir) / "*" / "*.parquet")
    con = duckdb.connect()
    try:
        return con.execute(f"select * from read_parquet(?, hive_partitioning = true) where {where}", [pattern]).df()
    finally:
        con.close()


def test_the_registry_holds_the_repo_definitions(platform: Platform) -> None:
    store = fs.open_store(platform.settings.home)
    service = store.get_feature_service(feast_repo.FEATURE_SERVICE)
    served = [f.name for p in service.feature_view_projections for f in p.features]
    assert served == list(training.FEATURES)
    assert [e.name for e in store.list_entities()] == ["customer"]
    view = store.get_feature_view(feast_repo.FEATURE_VIEW)
    assert view.entities == ["customer"] and view.batch_source.name == "customer_daily_features_source"
    assert Path(view.batch_source.path) == feast_repo.feature_dir(platform.settings.lake_dir)


def test_the_export_is_the_feature_table_one_folder_per_day(platform: Platform) -> None:
    lake = _lake_rows(platform.settings)
    table = platform.df("select * from features.customer_daily_features")
    assert len(lake) == len(table) > 0
    folders = sorted(p.name for p in feast_repo.feature_dir(platform.settings.lake_dir).iterdir())
    days = sorted(f"feature_date={d}" for d in table["feature_date"].dt.date.astype(str).unique())
    assert folders == days
    merged = table.merge(lake, on=["customer_id", "feature_timestamp"], suffixes=("", "_lake"))
    assert len(merged) == len(table)
    for column in training.FEATURES:
        same = (merged[column] == merged[f"{column}_lake"]) | (merged[column].isna() & merged[f"{column}_lake"].isna())
        assert same.all(), column


def test_the_run_materialized_every_customer_and_the_parity_check_passed(platform: Platform) -> None:
    status = feast_repo.online_status(platform.settings.home)
    [(customers,)] = platform.query("select count(distinct customer_id) from features.customer_daily_features")
    assert status["entities_online"] == customers
    assert status["last_materialized_partition"] == platform.end.isoformat()
    [evaluation] = [e for e in platform.result.get_asset_check_evaluations() if e.asset_check_key == PARITY_KEY]
    assert evaluation.passed
    assert evaluation.metadata["customers_sampled"].value > 100
    assert evaluation.metadata["feature_date"].value == platform.end.isoformat()


def test_the_training_set_has_each_snapshot_days_own_features(platform: Platform) -> None:
    # Snapshot time = end of the snapshot day, so the point-in-time join must land on that day's row exactly.
    checks = ", ".join(f"count(*) filter (where t.{c} is not distinct from f.{c})" for c in training.FEATURES)
    [(rows, matched, *per_feature)] = platform.query(
        f"""
        select count(*), count(f.customer_id), {checks}
        from model.training_set as t
        left join features.customer_daily_features as f
            on t.customer_id = f.customer_id and t.snapshot_date = f.feature_date
        """
    )
    assert rows > 1000 and matched == rows
    assert per_feature == [rows] * len(training.FEATURES)
    [(late,)] = platform.query(
        "select count(*) from model.training_set where snapshot_time <> cast(snapshot_date + interval 1 day as timestamp)"
    )
    assert late == 0


def test_features_get_prints_online_features_as_json(platform: Platform, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BALLAST_HOME", str(platform.settings.home))
    [(customer, *_)] = platform.query(
        "select customer_id from features.customer_daily_features where feature_date = ? order by customer_id limit 1",
        [platform.end],
    )
    assert cli.main(["features", "get", "--customer", customer]) == 0
    printed = json.loads(capsys.readouterr().out)
    [row] = printed["customers"]
    expected = platform.df(
        "select * from features.customer_daily_features where customer_id = ? and feature_date = ?",
        [customer, platform.end],
    ).iloc[0]
    assert printed["feature_service"] == "churn_v1" and row["customer_id"] == customer
    for column in training.FEATURES:
        assert row[column] == expected[column], column
    assert row["event_timestamp"] == feast_repo.feature_time(platform.end).isoformat()


def test_features_get_names_unknown_customers_without_a_traceback(platform: Platform, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BALLAST_HOME", str(platform.settings.home))
    assert cli.main(["features", "get", "--customer", "NOBODY-1", "--customer", "NOBODY-2"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["customers"] == []
    assert captured.err.strip() == (
        "ballast: error: not in the online store: NOBODY-1, NOBODY-2 (unknown customer, or not active in the last 90 days)"
    )


def test_features_get_before_any_materialization_says_what_to_run(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BALLAST_HOME", str(tmp_path))
    assert cli.main(["features", "get", "--customer", "C1"]) == 1
    err = capsys.readouterr().err
    assert "online store" in err and "ballast demo" in err and "Traceback" not in err


def test_report_json_has_the_feature_store(platform: Platform, monkeypatch, capsys) -> None:
    monkeypatch.setenv("BALLAST_HOME", str(platform.settings.home))
    assert cli.main(["report", "--json"]) == 0
    store = json.loads(capsys.readouterr().out)["feature_store"]
    assert store["last_materialized_partition"] == platform.end.isoformat()
    assert store["entities_online"] > 1000 and store["feature_service"] == "churn_v1"


@pytest.fixture
def feast_home(platform: Platform, tmp_path: Path) -> Settings:
    """A home of its own with a copy of the platform's Parquet export and nothing in Feast yet."""
    settings = make_settings(tmp_path / "home")
    settings.ensure_dirs()
    shutil.copytree(feast_repo.feature_dir(platform.settings.lake_dir), feast_repo.feature_dir(settings.lake_dir))
    return settings


def _run_feast_assets(settings: Settings, first: dt.date, last: dt.date, dagster_instance) -> dg.ExecuteInProcessResult:
    result = refresh(
        settings,
        first,
        last,
        dagster_instance=dagster_instance,
        selection=dg.AssetSelection.assets(FEATURE_REGISTRY, ONLINE_STORE),
        log_level="WARNING",
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    return result


def _tamper(settings: Settings, customer: str, feature: str, value: float) -> None:
    con = sqlite3.connect(feast_repo.online_store_path(settings.home))
    try:
        rows = con.execute(
            f'select entity_key, value from "{feast_repo.ONLINE_TABLE}" where feature_name = ?', [feature]
        ).fetchall()
        key = next(k for k, _ in rows if customer.encode() in k)
        proto = ValueProto()
        proto.double_val = value
        with con:
            con.execute(
                f'update "{feast_repo.ONLINE_TABLE}" set value = ? where entity_key = ? and feature_name = ?',
                [proto.SerializeToString(), key, feature],
            )
    finally:
        con.close()


def test_incremental_materialization_parity_and_tampering(feast_home: Settings, platform: Platform) -> None:
    settings = feast_home
    start = platform.start
    dagster_instance = instance(settings)
    try:
        # Three runs over consecutive windows, then one over an older window (a backfill).
        for first, last in ((0, 9), (10, 19), (20, 29)):
            _run_feast_assets(settings, start + dt.timedelta(first), start + dt.timedelta(last), dagster_instance)
            status = feast_repo.online_status(settings.home)
            assert status["last_materialized_partition"] == (start + dt.timedelta(last)).isoformat()
            assert fs.parity(fs.open_store(settings.home), settings.lake_dir, 10_000).mismatches.empty
        newest = start + dt.timedelta(29)
        store = fs.open_store(settings.home)
        intervals = store.get_feature_view(feast_repo.FEATURE_VIEW).materialization_intervals
        assert len(intervals) == 3
        _run_feast_assets(settings, start, start + dt.timedelta(4), dagster_instance)
        # Latest wins: the old window did not put old values back online.
        assert feast_repo.online_status(settings.home)["last_materialized_partition"] == newest.isoformat()
        assert fs.materialized_through(fs.open_store(settings.home)) == newest
        parity = fs.parity(fs.open_store(settings.home), settings.lake_dir, 10_000)
        assert parity.mismatches.empty and parity.feature_date == newest

        online_customers = feast_repo.online_status(settings.home)["entities_online"]
        [(expected,)] = platform.query(
            "select count(distinct customer_id) from features.customer_daily_features where feature_date <= ?", [newest]
        )
        assert online_customers == expected

        check_job = "parity_only"
        defs = dg.Definitions.merge(
            build_defs(settings),
            dg.Definitions(jobs=[dg.define_asset_job(check_job, selection=dg.AssetSelection.checks(PARITY_KEY))]),
        )

        def run_check() -> dg.AssetCheckEvaluation:
            result = defs.resolve_job_def(check_job).execute_in_process(instance=dagster_instance, raise_on_error=False)
            [evaluation] = result.get_asset_check_evaluations()
            return evaluation

        assert run_check().passed
        sampled = feast_repo.offline_latest(settings.lake_dir, newest, settings.parity_sample_size)
        victim = sampled["customer_id"].iloc[0]
        _tamper(settings, victim, "spend_30d", float(sampled["spend_30d"].iloc[0]) + 0.01)
        evaluation = run_check()
        assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
        assert evaluation.metadata["customers_mismatched"].value == 1
        assert evaluation.metadata["values_mismatched"].value == 1
        assert (
            victim in evaluation.metadata["mismatches"].value and "spend_30d" in evaluation.metadata["mismatches"].value
        )
    finally:
        dagster_instance.dispose()


def test_historical_retrieval_is_point_in_time(feast_home: Settings, platform: Platform) -> None:
    settings = feast_home
    store = fs.open_store(settings.home)
    fs.apply(store, fs.definitions(settings.home))
    day = platform.start + dt.timedelta(days=40)
    snapshot = feast_repo.feature_time(day)
    rows = _lake_rows(settings, f"feature_date = '{day}'").sort_values("customer_id")
    before = _lake_rows(settings, f"feature_date = '{day - dt.timedelta(days=1)}'")
    truth = rows[rows["customer_id"].isin(before["customer_id"])].iloc[0]
    customer = truth["customer_id"]
    # Values written after the snapshot time, with created timestamps later than anything else;
    # same columns and types as the export, so they read as part of the source.
    late = pd.concat([rows[rows["customer_id"] == customer]] * 2, ignore_index=True).drop(columns=["feature_date"])
    late["feature_timestamp"] = [snapshot + dt.timedelta(microseconds=1), snapshot + dt.timedelta(hours=12)]
    late["created_timestamp"] = [snapshot + dt.timedelta(days=400), snapshot + dt.timedelta(days=500)]
    for column in ("feature_timestamp", "created_timestamp"):
        late[column] = late[column].dt.tz_localize(None).astype(rows[column].dtype)
    late["spend_30d"] = [-1.0, -2.0]
    late["txn_count_7d"] = pd.array([-1, -2], dtype=rows["txn_count_7d"].dtype)
    for frame, folder in ((late.iloc[[0]], day), (late.iloc[[1]], day + dt.timedelta(days=1))):
        target = feast_repo.feature_dir(settings.lake_dir) / f"feature_date={folder}" / "late_correction.parquet"
        frame.to_parquet(target, index=False)

    entities = pd.DataFrame(
        {
            "customer_id": [customer, customer, customer],
            "event_timestamp": [snapshot, snapshot + dt.timedelta(microseconds=1), snapshot - dt.timedelta(seconds=1)],
            "probe": ["at snapshot", "just after", "just before"],
        }
    )
    got = fs.historical_features(store, entities).set_index("probe")
    assert got.loc["at snapshot", "spend_30d"] == truth["spend_30d"]
    assert got.loc["at snapshot", "txn_count_7d"] == truth["txn_count_7d"]
    # The controls show the late rows are readable: a lookup after their time does get them.
    assert got.loc["just after", "spend_30d"] == -1.0
    assert got.loc["just before", "spend_30d"] == before.set_index("customer_id").loc[customer, "spend_30d"]


def test_a_later_created_timestamp_wins_a_tie(feast_home: Settings, platform: Platform) -> None:
    settings = feast_home
    store = fs.open_store(settings.home)
    fs.apply(store, fs.definitions(settings.home))
    day = platform.start + dt.timedelta(days=50)
    snapshot = feast_repo.feature_time(day)
    rows = _lake_rows(settings, f"feature_date = '{day}'").sort_values("customer_id")
    correction = rows.iloc[[0]].drop(columns=["feature_date"]).copy()
    correction["spend_30d"] = 12345.67
    correction["created_timestamp"] = correction["created_timestamp"] + pd.Timedelta(hours=1)
    correction.to_parquet(
        feast_repo.feature_dir(settings.lake_dir) / f"feature_date={day}" / "correction.parquet", index=False
    )
    entities = pd.DataFrame({"customer_id": [correction["customer_id"].iloc[0]], "event_timestamp": [snapshot]})
    assert fs.historical_features(store, entities)["spend_30d"].iloc[0] == 12345.67
    fs.materialize(store, day, day)
    online, missing = fs.online_features(store, [correction["customer_id"].iloc[0]])
    assert missing == [] and online["spend_30d"].iloc[0] == 12345.67


def test_applying_again_removes_objects_the_repo_no_longer_declares(feast_home: Settings) -> None:
    from feast import FeatureService

    store = fs.open_store(feast_home.home)
    objects = fs.definitions(feast_home.home)
    view = next(o for o in objects if o.name == feast_repo.FEATURE_VIEW)
    extra = FeatureService(name="churn_experiment", features=[view])
    fs.apply(store, [*objects, extra])
    assert {s.name for s in store.list_feature_services()} == {"churn_v1", "churn_experiment"}
    summary = fs.apply(store, objects)
    assert summary["removed"] == ["FeatureService churn_experiment"]
    assert {s.name for s in store.list_feature_services()} == {"churn_v1"}
    registry = feast_repo.registry_path(feast_home.home)
    assert [p.name for p in registry.parent.iterdir() if p.name.startswith(f".{registry.name}")] == []


def test_applying_unchanged_definitions_leaves_the_registry_as_it_is(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings.ensure_dirs()
    store = fs.open_store(settings.home)
    assert fs.apply(store, fs.definitions(settings.home))["changed"] == ["yes"]
    # A materialization records its interval on the registered view: the definitions are still the same.
    view = store.registry.get_feature_view(feast_repo.FEATURE_VIEW, store.project, allow_cache=False)
    view.materialization_intervals.append(
        (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), dt.datetime(2025, 1, 2, tzinfo=dt.UTC))
    )
    store.registry.apply_feature_view(view, store.project, commit=True)
    registry = feast_repo.registry_path(settings.home)
    before = registry.read_bytes()
    store = fs.open_store(settings.home)
    summary = fs.apply(store, fs.definitions(settings.home))
    assert summary["changed"] == ["no"] and summary["removed"] == []
    assert registry.read_bytes() == before
    changed = fs.definitions(settings.home)
    longer = next(o for o in changed if o.name == feast_repo.FEATURE_VIEW)
    longer.ttl += dt.timedelta(days=1)
    assert fs.apply(store, changed)["changed"] == ["yes"]
    assert registry.read_bytes() != before


def test_the_production_config_validates(monkeypatch, tmp_path: Path) -> None:
    for name, value in {
        "FEAST_REGISTRY_USER": "feast",
        "FEAST_REGISTRY_PASSWORD": "secret",
        "FEAST_REGISTRY_HOST": "registry.internal",
        "FEAST_REDIS_CONNECTION_STRING": "redis.internal:6379,ssl=true",
    }.items():
        monkeypatch.setenv(name, value)
    config = fs.repo_config(tmp_path, feast_repo.FEATURE_REPO_DIR / "production" / "feature_store.yaml")
    assert config.online_store.type == "redis"
    assert config.online_store.connection_string == "redis.internal:6379,ssl=true"
    assert config.registry.registry_type == "sql"
    assert config.registry.path == "postgresql+psycopg://feast:secret@registry.internal:5432/feast"
    assert config.offline_store.type == "duckdb"
    assert config.entity_key_serialization_version == 3


def test_the_feast_cli_works_from_the_repo_folder(feast_home: Settings, platform: Platform) -> None:
    """`feast apply`, `materialize`, `materialize-incremental` and `serve`, as the README shows them."""
    feast = str(Path(sys.executable).parent / "feast")
    env = {**os.environ, "BALLAST_HOME": str(feast_home.home)}

    def run(*args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [feast, *args], cwd=feast_repo.FEATURE_REPO_DIR, env=env, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    run("apply")
    first_week_end = platform.start + dt.timedelta(days=6)
    run("materialize", f"{platform.start}T00:00:00", f"{first_week_end + dt.timedelta(days=1)}T00:00:00")
    assert feast_repo.online_status(feast_home.home)["last_materialized_partition"] == first_week_end.isoformat()
    run("materialize-incremental", f"{platform.start + dt.timedelta(days=14)}T00:00:00")
    assert (
        feast_repo.online_status(feast_home.home)["last_materialized_partition"]
        == (platform.start + dt.timedelta(days=13)).isoformat()
    )

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [feast, "serve", "-h", "127.0.0.1", "-p", str(port)],
        cwd=feast_repo.FEATURE_REPO_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        customer = _lake_rows(feast_home, f"feature_date = '{platform.start + dt.timedelta(days=13)}'")[
            "customer_id"
        ].min()
        body = json.dumps({"feature_service": "churn_v1", "entities": {"customer_id": [customer]}}).encode()
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/get-online-features",
                    data=body,
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
                break
            except OSError:
                assert server.poll() is None, "feast serve exited"
                assert time.monotonic() < deadline, "feast serve did not answer within 120 s"
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)
    names = answer["metadata"]["feature_names"]
    values = {name: result["values"][0] for name, result in zip(names, answer["results"], strict=True)}
    assert values["customer_id"] == customer
    assert set(names) == {"customer_id", *training.FEATURES}


def test_the_registry_is_reapplied_when_its_definitions_change(tmp_path: Path, monkeypatch) -> None:
    settings = make_settings(tmp_path)
    dagster_instance = dg.DagsterInstance.ephemeral()
    selection = dg.AssetSelection.assets(FEATURE_REGISTRY)

    def tick(cursor):
        result = dg.evaluate_automation_conditions(
            defs=build_defs(settings), instance=dagster_instance, asset_selection=selection, cursor=cursor
        )
        return result.total_requested, result.cursor

    dagster_instance.report_runless_asset_event(dg.AssetMaterialization(FEATURE_REGISTRY))
    _, cursor = tick(None)
    unchanged, cursor = tick(cursor)
    assert unchanged == 0
    monkeypatch.setattr(feast_repo, "code_version", lambda: "edited-definitions")
    changed, cursor = tick(cursor)
    assert changed == 1
    again, _ = tick(cursor)
    assert again == 0
