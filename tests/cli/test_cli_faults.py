"""Faults in the environment and in Ballast's own state: one line naming the path or variable and the fix, before any work.

Each test breaks something for real (a setting, a folder, the warehouse file, the model
registry, the Feast registry) and runs the `ballast` command on it.
"""

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ballast.cli import main as cli
from ballast.cli.generator import GenerateSpec, generate
from ballast.features import feast_repo
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE
from ballast.model import registry, training
from ballast.settings import CONTRACTS_DIR
from ballast.transform import dbt_failures
from tests.cli.test_progress import progress_and_rest
from tests.conftest import START, make_settings

pytestmark = pytest.mark.full  # `ballast` commands run end to end

# A path nobody may create a folder in, root included (sysfs refuses new entries).
UNWRITABLE_HOME = Path("/sys/ballast-test-home")
FEATURE_DAY = dt.date(2025, 1, 10)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("BALLAST_"):
            monkeypatch.delenv(name)


def _ballast(capsys: pytest.CaptureFixture, *args: str, **env: str) -> tuple[int, str]:
    """Run the command in this process with `env` set; return its exit code and its stderr."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        code = cli.main(list(args))
    return code, capsys.readouterr().err


def _assert_one_line(code: int, err: str, *named: str) -> None:
    assert code != 0
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err
    assert err.startswith("ballast: error: "), err
    for text in named:
        assert text in err, (text, err)


def _future() -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=30)).isoformat()


BAD_SETTINGS = [
    ({"BALLAST_CURRENCIES": ""}, ["BALLAST_CURRENCIES", "lists no currency"]),
    ({"BALLAST_CURRENCIES": " , "}, ["BALLAST_CURRENCIES", "lists no currency"]),
    ({"BALLAST_CURRENCIES": "USD,EURO"}, ["BALLAST_CURRENCIES", "'EURO'", "3-letter"]),
    ({"BALLAST_CURRENCIES": "USD,U$D"}, ["BALLAST_CURRENCIES", "'U$D'"]),
    ({"BALLAST_DUCKDB_MEMORY_LIMIT": "2 GiBs"}, ["BALLAST_DUCKDB_MEMORY_LIMIT='2 GiBs'", "Unknown unit for memory"]),
    ({"BALLAST_DUCKDB_MEMORY_LIMIT": "lots"}, ["BALLAST_DUCKDB_MEMORY_LIMIT='lots'", "must have a number"]),
    ({"BALLAST_DUCKDB_MEMORY_LIMIT": "1MB"}, ["BALLAST_DUCKDB_MEMORY_LIMIT='1MB'", "too small"]),
    ({"BALLAST_DUCKDB_MEMORY_LIMIT": "-1GB"}, ["BALLAST_DUCKDB_MEMORY_LIMIT='-1GB'", "negative"]),
    ({"BALLAST_CONTRACTS_DIR": "/no/such/contracts"}, ["BALLAST_CONTRACTS_DIR=/no/such/contracts", "not a folder"]),
    ({"BALLAST_PSI_ERROR": "nan"}, ["BALLAST_PSI_ERROR=nan"]),
    ({"BALLAST_DRIFT_PSI": "-0.1"}, ["BALLAST_DRIFT_PSI=-0.1"]),
    ({"BALLAST_DRIFT_P_VALUE": "1.5"}, ["BALLAST_DRIFT_P_VALUE=1.5", "between 0 and 1"]),
    ({"BALLAST_DRIFT_SHARE_WARN": "inf"}, ["BALLAST_DRIFT_SHARE_WARN=inf"]),
    ({"BALLAST_RETRAIN_COOLDOWN_HOURS": "-1"}, ["BALLAST_RETRAIN_COOLDOWN_HOURS=-1"]),
    ({"BALLAST_MIN_AUC": "nan"}, ["BALLAST_MIN_AUC=nan"]),
    ({"BALLAST_MIN_BASELINE_MARGIN": "1.5"}, ["BALLAST_MIN_BASELINE_MARGIN=1.5", "at least -1 and below 1"]),
    ({"BALLAST_MIN_BASELINE_MARGIN": "a lot"}, ["BALLAST_MIN_BASELINE_MARGIN='a lot'", "is not a number"]),
    ({"BALLAST_HOLDOUT_FRACTION": "nan"}, ["BALLAST_HOLDOUT_FRACTION=nan"]),
    ({"BALLAST_START_DATE": "FUTURE"}, ["BALLAST_START_DATE=", "is in the future"]),
    ({"BALLAST_SPARK_MASTER": ""}, ["BALLAST_SPARK_MASTER", "is empty"]),
    ({"BALLAST_SEGMENT_COLUMN": " "}, ["BALLAST_SEGMENT_COLUMN", "is empty"]),
]


@pytest.mark.parametrize(
    ("env", "named"), BAD_SETTINGS, ids=[",".join(f"{k}={v}" for k, v in e.items()) for e, _ in BAD_SETTINGS]
)
def test_a_setting_that_cannot_work_is_refused_before_any_work(
    env: dict[str, str], named: list[str], tmp_path: Path, capsys
) -> None:
    home = tmp_path / "home"
    env = {k: (_future() if v == "FUTURE" else v) for k, v in env.items()}
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(home), **env)
    _assert_one_line(code, err, *named)
    assert not home.exists(), "nothing may be created before the settings are accepted"


def test_a_contracts_folder_without_the_contracts_names_the_missing_files(tmp_path: Path, capsys) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    shutil.copy(CONTRACTS_DIR / "raw_transactions.yml", contracts)
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(tmp_path / "home"), BALLAST_CONTRACTS_DIR=str(contracts))
    _assert_one_line(
        code, err, f"BALLAST_CONTRACTS_DIR={contracts}", "clean_transactions.yml", "customer_daily_features.yml"
    )
    assert "raw_transactions.yml" not in err


def test_a_contract_that_is_not_yaml_is_refused_before_the_run(tmp_path: Path, capsys) -> None:
    contracts = tmp_path / "contracts"
    shutil.copytree(CONTRACTS_DIR, contracts)
    (contracts / "clean_transactions.yml").write_text("dataset: clean/transactions\ncolumns: [\n  - name: x\n")
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(home), BALLAST_CONTRACTS_DIR=str(contracts))
    _assert_one_line(code, err, str(contracts / "clean_transactions.yml"), "not valid YAML", "line ")
    assert not (home / "warehouse.duckdb").exists()


@pytest.mark.parametrize("layout", ["home_is_a_file", "home_under_a_file", "landing_is_a_file"])
def test_a_home_or_landing_folder_that_is_a_file_is_named(layout: str, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a regular file\n")
    env = {
        "home_is_a_file": {"BALLAST_HOME": str(blocker)},
        "home_under_a_file": {"BALLAST_HOME": str(blocker / "home")},
        "landing_is_a_file": {"BALLAST_HOME": str(tmp_path / "home"), "BALLAST_LANDING_DIR": str(blocker)},
    }[layout]
    for command in (
        ["run"],
        ["report"],
        ["model", "list"],
        ["features", "get", "--customer", "C1"],
        ["lineage", "v0001"],
    ):
        code, err = _ballast(capsys, *command, **env)
        _assert_one_line(code, err, str(blocker), "a file, not a folder")
    assert blocker.read_text() == "a regular file\n"


def test_an_unwritable_home_is_named(tmp_path: Path, capsys) -> None:
    for command in (["run"], ["demo", "--customers", "5", "--days", "2"], ["dev"]):
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(UNWRITABLE_HOME), BALLAST_LANDING_DIR=str(tmp_path))
        _assert_one_line(code, err, f"BALLAST_HOME {UNWRITABLE_HOME} is not writable")


@pytest.mark.parametrize("under", ["a_file", "itself_a_file"])
def test_generate_out_under_a_file_is_named(under: str, tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "blocker.csv"
    blocker.write_text("keep me\n")
    out = blocker / "files" if under == "a_file" else blocker
    code, err = _ballast(
        capsys, "generate", "--out", str(out), "--customers", "5", "--days", "2", "--start", START.isoformat()
    )
    _assert_one_line(code, err, f"--out {out}", "a file, not a folder")
    assert blocker.read_text() == "keep me\n"


def _real_warehouse(path: Path) -> None:
    con = duckdb.connect(str(path))
    try:
        con.execute("create schema raw")
        con.execute(
            "create table raw.transactions as select range as line_number, 'x' || range as transaction_id from range(50000)"
        )
    finally:
        con.close()


def _damage_the_wal(warehouse: Path) -> None:
    # A process that dies after a write leaves the change in the write-ahead log, replayed on the next open.
    script = (
        f"import duckdb, os; c = duckdb.connect({str(warehouse)!r});"
        " c.execute('insert into raw.transactions values (-1, \\'late\\')'); os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
    wal = warehouse.with_name(warehouse.name + ".wal")
    data = bytearray(wal.read_bytes())
    data[20:60] = np.random.default_rng(4).bytes(40)
    wal.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["random_bytes", "truncated", "empty", "wal"])
def test_a_damaged_warehouse_is_named_with_what_to_do(damage: str, tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    (home / "landing").mkdir(parents=True)
    warehouse = home / "warehouse.duckdb"
    _real_warehouse(warehouse)
    good = warehouse.read_bytes()
    if damage == "wal":
        _damage_the_wal(warehouse)
    else:
        damaged = {
            "random_bytes": np.random.default_rng(1).bytes(len(good)),
            "truncated": good[: len(good) // 3],
            "empty": b"",
        }
        warehouse.write_bytes(damaged[damage])
    for command in (["report"], ["run"]):
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(home))
        _assert_one_line(code, err, f"the warehouse {warehouse} cannot be opened", "damaged", "move it aside")
    assert not (home / "dagster_home" / "history").exists(), "no run may start on a damaged warehouse"


def test_a_warehouse_locked_by_another_process_is_told_apart_from_a_damaged_one(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    warehouse = home / "warehouse.duckdb"
    _real_warehouse(warehouse)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); print('ready', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        code, err = _ballast(capsys, "report", BALLAST_HOME=str(home))
    finally:
        holder.kill()
        holder.wait()
    _assert_one_line(code, err, f"the warehouse {warehouse} is in use by process {holder.pid}", "try again")
    assert "damaged" not in err
    code, _ = _ballast(capsys, "report", BALLAST_HOME=str(home))
    assert code == 0, "the same warehouse reads fine once the other process is gone"


@pytest.fixture
def registry_home(tmp_path: Path) -> Path:
    """A home whose registry holds two real versions of the churn model, v0002 the champion."""
    home = tmp_path / "home"
    root = make_settings(home).registry_dir
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2)), np.arange(40) % 2
    for _ in range(2):
        saved = registry.save(root, training.MODEL_NAME, LogisticRegression().fit(x, y), {"features": ["a", "b"]})
        registry.promote(root, training.MODEL_NAME, saved.version, "test")
    assert saved.version == "v0002"
    return home


def _champion(home: Path) -> str:
    return registry.champion(make_settings(home).registry_dir, training.MODEL_NAME).version


def _version_dir(home: Path, version: str) -> Path:
    return make_settings(home).registry_dir / training.MODEL_NAME / version


REGISTRY_COMMANDS = (["model", "list"], ["report"], ["model", "show", "v0002"], ["lineage", "v0002"])


def test_the_registry_fixture_works_before_it_is_broken(registry_home: Path, capsys) -> None:
    for command in REGISTRY_COMMANDS:
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(registry_home))
        assert code == 0 and err == "", (command, err)
    assert _ballast(capsys, "model", "rollback", BALLAST_HOME=str(registry_home))[0] == 0


@pytest.mark.parametrize("content", ["{not json", "", "[1, 2]", "\xff\xfe binary", None])
def test_damaged_or_missing_version_metadata_is_named(content: str | None, registry_home: Path, capsys) -> None:
    metadata = _version_dir(registry_home, "v0002") / registry.METADATA_FILE
    if content is None:
        metadata.unlink()
    else:
        metadata.write_bytes(content.encode("latin-1"))
    for command in REGISTRY_COMMANDS:
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(registry_home))
        _assert_one_line(code, err, str(metadata), "is missing" if content is None else "is damaged")


@pytest.mark.parametrize("content", ['{"version": ', "[]", '{"history": []}', '"v0002"'])
def test_a_damaged_champion_file_is_named(content: str, registry_home: Path, capsys) -> None:
    pointer = _version_dir(registry_home, "v0002").parent / registry.CHAMPION_FILE
    pointer.write_text(content)
    for command in (
        ["model", "list"],
        ["report"],
        ["model", "rollback"],
        ["model", "promote", "v0001", "--reason", "x"],
    ):
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(registry_home))
        _assert_one_line(code, err, str(pointer), "is damaged")
    assert pointer.read_text() == content, "a damaged pointer is reported, not overwritten"


def test_a_champion_file_naming_a_lost_version_is_named_and_promote_repairs_it(registry_home: Path, capsys) -> None:
    pointer = _version_dir(registry_home, "v0002").parent / registry.CHAMPION_FILE
    shutil.rmtree(_version_dir(registry_home, "v0002"))
    for command in (["model", "list"], ["report"], ["model", "rollback"]):
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(registry_home))
        _assert_one_line(code, err, str(pointer), "names champion 'v0002'", "ballast model promote")
    assert (
        _ballast(capsys, "model", "promote", "v0001", "--reason", "v0002 was lost", BALLAST_HOME=str(registry_home))[0]
        == 0
    )
    assert _champion(registry_home) == "v0001"


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_a_missing_or_damaged_model_artifact_is_named(damage: str, registry_home: Path, capsys) -> None:
    artifact = _version_dir(registry_home, "v0001") / registry.MODEL_FILE
    if damage == "missing":
        artifact.unlink()
    else:
        artifact.write_bytes(artifact.read_bytes()[:100])
    for command in (["model", "promote", "v0001", "--reason", "x"], ["model", "rollback"]):
        code, err = _ballast(capsys, *command, BALLAST_HOME=str(registry_home))
        _assert_one_line(code, err, str(artifact), "missing" if damage == "missing" else "SHA-256 does not match")
    assert _champion(registry_home) == "v0002", "a refused promotion or rollback leaves the champion as it was"


@pytest.fixture(scope="module")
def feast_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home with a real Feast registry and online store holding customer C1 (about 20 s: Feast itself)."""
    from ballast.features import feast_store as fs

    settings = make_settings(tmp_path_factory.mktemp("feast_home"))
    settings.ensure_dirs()
    integers = {
        "txn_count_7d",
        "txn_count_30d",
        "txn_count_90d",
        "days_since_last_txn",
        "tenure_days",
        "distinct_merchants_30d",
    }
    columns = ", ".join(
        f"'DE' as {c}" if c == "home_country" else f"{i}::{'int' if c in integers else 'double'} as {c}"
        for i, c in enumerate(training.FEATURES)
    )
    con = duckdb.connect()
    try:
        con.execute("create schema features")
        con.execute(
            f"create table {CUSTOMER_DAILY_FEATURES_TABLE} as select 'C1' as customer_id, $day::date as feature_date,"
            f" ($day::date + 1)::timestamp as feature_timestamp, {columns}",
            {"day": FEATURE_DAY},
        )
        feast_repo.export_features(con, settings.lake_dir, FEATURE_DAY, FEATURE_DAY, dt.datetime.now(dt.UTC))
    finally:
        con.close()
    store = fs.open_store(settings.home)
    fs.apply(store, fs.definitions(settings.home))
    fs.materialize(store, FEATURE_DAY, FEATURE_DAY)
    return settings.home


@pytest.mark.parametrize("damage", ["none", "registry_missing", "registry_random_bytes", "online_store_random_bytes"])
def test_features_get_names_a_missing_or_damaged_feast_file(
    damage: str, feast_home: Path, tmp_path: Path, capsys
) -> None:
    home = tmp_path / "home"
    shutil.copytree(feast_home, home)
    registry_file, online_file = feast_repo.registry_path(home), feast_repo.online_store_path(home)
    if damage == "registry_missing":
        registry_file.unlink()
    elif damage == "registry_random_bytes":
        registry_file.write_bytes(np.random.default_rng(2).bytes(4096))
    elif damage == "online_store_random_bytes":
        online_file.write_bytes(np.random.default_rng(3).bytes(8192))
    code, err = _ballast(capsys, "features", "get", "--customer", "C1", BALLAST_HOME=str(home))
    if damage == "none":
        assert code == 0 and err == ""
        return
    named = {
        "registry_missing": [f"the Feast registry {registry_file} is missing"],
        "registry_random_bytes": [f"the Feast registry {registry_file} is damaged", "delete it"],
        "online_store_random_bytes": [f"the online store {online_file} cannot be read", "delete it"],
    }[damage]
    _assert_one_line(code, err, *named, "ballast run")
    if damage == "registry_missing":
        assert not registry_file.exists(), "looking up features must not create an empty registry"
    if damage == "registry_random_bytes":
        from ballast.features import feast_store as fs

        # The run's registry step says the same, instead of protobuf's DecodeError.
        with pytest.raises(fs.FeatureStoreError, match=f"the Feast registry {registry_file} is damaged"):
            fs.apply(fs.open_store(home), fs.definitions(home))


def test_a_failed_run_prints_its_root_cause_and_the_log(tmp_path: Path, capsys) -> None:
    # A clean table left behind with columns of another shape: dbt's incremental insert fails on it.
    settings = make_settings(tmp_path / "home")
    settings.ensure_dirs()
    generate(GenerateSpec(out=settings.landing_dir, customers=20, days=3, start=START, seed=5))
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute("create schema clean")
        con.execute("create table clean.transactions (event_date date, legacy_flag integer)")
    finally:
        con.close()
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(settings.home), BALLAST_START_DATE=START.isoformat())
    log = settings.home / "logs" / "last_run.log"
    assert code == 1 and "Traceback" not in err
    progress, lines = progress_and_rest(err)
    assert [m["step"] for m in progress if m["what"].startswith("failed")] == ["clean/transactions +1"]
    assert lines[-1] == f"ballast: error: the run failed (1 failed step(s)); full log: {log}"
    [step] = lines[:-1]
    assert step.startswith("ballast: error: step clean_dbt_models failed: dbt build of the clean layer failed")
    assert "model transactions error:" in step and "legacy_flag" in step
    assert "DagsterExecutionStepExecutionError" not in err
    assert "legacy_flag" in log.read_text()


def test_a_run_stopped_by_a_blocking_check_names_the_check_and_the_days(tmp_path: Path, capsys) -> None:
    # Half of one day's rows have a third decimal: the quarantine-share check stops the run before features.
    settings = make_settings(tmp_path / "home")
    settings.ensure_dirs()
    generate(GenerateSpec(out=settings.landing_dir, customers=20, days=2, start=START, seed=5))
    day = START + dt.timedelta(days=1)
    header = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
    rows = [f"X{i},C{i},M1,12.345,USD,{day}T10:00:00Z,web,US" for i in range(200)]
    (settings.landing_dir / f"resend_{day}.csv").write_text("\n".join([header, *rows]) + "\n")
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(settings.home), BALLAST_START_DATE=START.isoformat())
    assert code == 1 and "Traceback" not in err
    progress, lines = progress_and_rest(err)
    assert not [m["step"] for m in progress if m["what"].startswith("failed")]
    assert lines[-1].startswith("ballast: error: the run was stopped by 1 blocking check(s); full log: ")
    [check] = lines[:-1]
    assert check == (
        "ballast: error: blocking check"
        f" clean/transactions:quarantine_share_within_limit failed (quarantined share above 5.0% on {day})"
    )
    assert "DagsterAssetCheckFailedError" not in err


def test_the_root_cause_of_a_python_error_in_a_step_is_the_users_exception() -> None:
    @dg.op
    def load_rates() -> None:
        try:
            {}["EUR"]
        except KeyError:
            raise ValueError("no exchange rate for EUR on 2025-01-02\nsecond line of detail") from None

    @dg.job
    def rates_job() -> None:
        load_rates()

    result = rates_job.execute_in_process(raise_on_error=False)
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_failure_data.error.cls_name == "DagsterExecutionStepExecutionError"
    assert cli._failure_reason(failure.step_failure_data) == "ValueError: no exchange rate for EUR on 2025-01-02"


def _run_results(path: Path, generated_at: dt.datetime, results: list[dict]) -> Path:
    path.write_text(
        json.dumps({"metadata": {"generated_at": generated_at.isoformat().replace("+00:00", "Z")}, "results": results})
    )
    return path


def test_dbt_failures_name_dbts_own_nodes_and_ignore_a_stale_file(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    results = [
        {
            "unique_id": "model.ballast.transactions",
            "status": "error",
            "message": "Runtime Error in model transactions (models/clean/transactions.sql)\n  Binder Error: no column x\n  LINE 4",
        },
        {
            "unique_id": "test.ballast.unique_transactions_transaction_id.35c9fb1fc1",
            "status": "fail",
            "message": "Got 3 results, configured to fail if != 0",
        },
        {"unique_id": "model.ballast.transactions_quarantine", "status": "success", "message": "OK"},
    ]
    path = _run_results(tmp_path / "run_results.json", now, results)
    assert dbt_failures(path, now - dt.timedelta(seconds=5)) == (
        "model transactions error: Binder Error: no column x;"
        " test unique_transactions_transaction_id fail: Got 3 results, configured to fail if != 0"
    )
    assert dbt_failures(path, now - dt.timedelta(seconds=5), limit=1).endswith("(and 1 more)")
    assert dbt_failures(path, now + dt.timedelta(seconds=5)) is None, (
        "a file older than the invocation is not its result"
    )
    assert dbt_failures(tmp_path / "absent.json", now) is None
    (tmp_path / "torn.json").write_text('{"metadata": {"generated')
    assert dbt_failures(tmp_path / "torn.json", now) is None


@pytest.mark.parametrize("damage", ["drift_report_torn", "drift_report_a_list", "alert_line_torn"])
def test_a_damaged_monitoring_file_is_named_by_report(damage: str, tmp_path: Path, capsys) -> None:
    settings = make_settings(tmp_path / "home")
    drift = settings.monitoring_dir / "drift" / "2025-01-10.json"
    alerts = settings.alert_log
    drift.parent.mkdir(parents=True)
    alerts.parent.mkdir(parents=True)
    drift.write_text(
        json.dumps(
            {
                "date": "2025-01-10",
                "champion": "v0001",
                "drift_share": 0.0,
                "drifted": [],
                "max_psi": 0.01,
                "max_psi_feature": "spend_7d",
            }
        )
    )
    alerts.write_text('{"severity": "WARN"}\n{"severity": "ERROR"}\n')
    assert _ballast(capsys, "report", BALLAST_HOME=str(settings.home)) == (0, "")
    if damage == "drift_report_torn":
        drift.write_text(drift.read_text()[:30])
    elif damage == "drift_report_a_list":
        drift.write_text("[]")
    else:
        alerts.write_text(alerts.read_text() + '{"severity": "WA')
    code, err = _ballast(capsys, "report", BALLAST_HOME=str(settings.home))
    named = [str(alerts), "line 3"] if damage == "alert_line_torn" else [str(drift), "ballast run"]
    _assert_one_line(code, err, *named, "is damaged")


def test_an_unexpected_error_is_one_line_with_the_traceback_kept_in_a_file(tmp_path: Path, capsys) -> None:
    settings = make_settings(tmp_path / "home")
    try:
        {}["missing"]
    except KeyError as exc:
        code = cli._internal_error(exc, settings)
    err = capsys.readouterr().err
    assert code == cli.INTERNAL_ERROR and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("ballast: internal error: KeyError: 'missing' (traceback in ")
    [log] = (settings.home / "logs").glob("error-*.log")
    assert str(log) in err
    assert log.read_text().startswith("Traceback (most recent call last):") and "KeyError: 'missing'" in log.read_text()


def test_a_filesystem_fault_after_the_checks_is_still_one_line_naming_the_path(tmp_path: Path, capsys) -> None:
    settings = make_settings(tmp_path / "home")
    generate(GenerateSpec(out=settings.landing_dir, customers=3, days=1, start=START, seed=1))
    # The run log's folder is a file: found only when the run opens its log.
    (settings.home / "logs").write_text("not a folder\n")
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(settings.home), BALLAST_START_DATE=START.isoformat())
    _assert_one_line(code, err, f"{settings.home / 'logs'}", "is a folder where one is expected")


def test_a_damaged_dagster_instance_database_is_named(tmp_path: Path, capsys) -> None:
    settings = make_settings(tmp_path / "home")
    runs_db = settings.dagster_home / "history" / "runs.db"
    runs_db.parent.mkdir(parents=True)
    settings.landing_dir.mkdir()
    runs_db.write_bytes(np.random.default_rng(5).bytes(8192))
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(settings.home))
    _assert_one_line(
        code, err, f"the Dagster instance database {runs_db} is damaged", f"move {settings.dagster_home} aside"
    )


def test_a_missing_landing_folder_is_named_and_not_created(tmp_path: Path, capsys) -> None:
    landing = tmp_path / "mistyped" / "landing"
    code, err = _ballast(capsys, "run", BALLAST_HOME=str(tmp_path / "home"), BALLAST_LANDING_DIR=str(landing))
    _assert_one_line(code, err, f"the landing folder {landing} does not exist", "BALLAST_LANDING_DIR")
    assert not (tmp_path / "mistyped").exists() and not (tmp_path / "home").exists()
