"""`ballast dev` (what `make dev` runs) serves the code location with every layer, asset and check.

One dev server (about 30 s and 750 MB to start) serves every test here, through Dagster's
GraphQL API as the UI reads it: what it shows, and one partition launched through it.
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ballast.clean.tables import CLEAN_LAYER
from ballast.cli.generator import GenerateSpec, generate
from ballast.common.metadata import COLUMN_SCHEMA, TABLE_NAME
from ballast.definitions import AUTOMATION_SENSOR, REFRESH_JOB, build_defs, load_defs
from ballast.monitoring.freshness import FRESHNESS_SENSOR
from ballast.monitoring.sensors import ALERT_SENSOR, RETRAIN_SENSOR, RUN_ALERT_SENSOR
from ballast.raw.sensors import LANDING_SCHEDULE, LANDING_SENSOR
from ballast.raw.tables import RAW_LAYER
from ballast.settings import AUTOMATION_ENV, Settings
from tests.conftest import START
from tests.dagster_ui import free_port, graphql, stop_session, wait_for_asset_nodes
from tests.test_column_schemas import TABLE_ASSETS

pytestmark = pytest.mark.full  # the dev server: `ballast dev` started for real

QUERY = "{ assetNodes { assetKey { path } groupName assetChecksOrError { ... on AssetChecks { checks { name } } } } }"
STATUS_QUERY = (
    "{ repositoriesOrError { ... on RepositoryConnection { nodes {"
    " sensors { name sensorState { id status } } schedules { name scheduleState { id status } } } } } }"
)
LOCATION_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus"
    " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
)
CATALOG_QUERY = """{ assetNodes { assetKey { path }
    owners { ... on TeamAssetOwner { team } ... on UserAssetOwner { email } }
    metadataEntries { label ... on TableSchemaMetadataEntry { schema { columns { name type description } } } } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } } ... on Error { message } } }"""
RUN_QUERY = "query($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
RUN_CHECKS_QUERY = """query($id: ID!) { logsForRun(runId: $id, limit: 10000) { ... on EventConnection { events {
    __typename
    ... on AssetCheckEvaluationPlannedEvent { assetKey { path } checkName }
    ... on AssetCheckEvaluationEvent { evaluation { assetKey { path } checkName success } } } } } }"""
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
# The customers of the day launched through the UI: a small clean day (no faults) whose checks all pass.
UI_DAY_CUSTOMERS = 50


@dataclass(frozen=True)
class DevServer:
    port: int
    home: Path
    env: dict[str, str]
    nodes: list[dict]
    # Every sensor's and schedule's status as first served, before a test changes any.
    statuses: dict[str, str]


def _instigators(port: int) -> dict[str, dict]:
    """Every sensor's and schedule's state (id, status) as the UI shows it, with the mutation that stops it."""
    (repository,) = graphql(port, STATUS_QUERY)["repositoriesOrError"]["nodes"]
    found = {s["name"]: {**s["sensorState"], "stop": "stopSensor"} for s in repository["sensors"]}
    return found | {s["name"]: {**s["scheduleState"], "stop": "stopRunningSchedule"} for s in repository["schedules"]}


def _processes_of(home: Path) -> list[str]:
    """The processes still running whose command line names the home (dagster dev passes it to each)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f"{home}/" in text:
            found.append(f"{cmdline.parent.name}: {text[:120]}")
    return found


def _stop(proc: subprocess.Popen, home: Path) -> None:
    """Stop `dagster dev` and every process of its session, and check none outlives it."""
    stop_session(proc)
    deadline = time.monotonic() + 10
    while _processes_of(home) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _processes_of(home), "processes of the dev server outlived it"


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevServer]:
    """`ballast dev --automation` on an empty home, stopped with all its processes at the end."""
    home = tmp_path_factory.mktemp("dev_home")
    port = free_port()
    # Missing days are judged from the start date: the launched day is the first, whatever the shell sets.
    env = {**os.environ, "BALLAST_HOME": str(home), "BALLAST_START_DATE": START.isoformat()}
    env.pop(AUTOMATION_ENV, None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ballast"), "dev", "--automation", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # `dagster dev` and its children share this session: the teardown stops them all.
        start_new_session=True,
    )
    try:
        nodes = wait_for_asset_nodes(port, proc, QUERY, timeout_s=180)
        statuses = {name: state["status"] for name, state in _instigators(port).items()}
        yield DevServer(port, home, env, nodes, statuses)
    finally:
        _stop(proc, home)


def test_dev_server_shows_every_layer(dev_server: DevServer) -> None:
    """`ballast dev --automation`: every layer, asset and check, and Ballast's sensors and schedule on."""
    nodes = dev_server.nodes
    groups = {n["groupName"] for n in nodes}
    assert groups == {"raw", "clean", "features", "model", "monitoring", "audit"}
    # Every asset and check of the code location (freshness checks included), as the
    # Definitions `dagster dev` loads from the same settings have them.
    graph = load_defs(Settings.from_env(dev_server.env))[0].resolve_asset_graph()
    assert {tuple(n["assetKey"]["path"]) for n in nodes} == {tuple(k.path) for k in graph.get_all_asset_keys()}
    assert len(nodes) >= 20
    served = {
        (tuple(n["assetKey"]["path"]), c["name"]) for n in nodes for c in n["assetChecksOrError"].get("checks", [])
    }
    assert served == {(tuple(k.asset_key.path), k.name) for k in graph.asset_check_keys}
    assert len(served) > 50
    assert (dev_server.home / "dagster_home" / "dagster.yaml").is_file()
    # Started with --automation: all on but the declarative automation sensor, a choice made in the UI.
    statuses = dev_server.statuses
    assert {
        LANDING_SENSOR,
        LANDING_SCHEDULE,
        RETRAIN_SENSOR,
        ALERT_SENSOR,
        RUN_ALERT_SENSOR,
        FRESHNESS_SENSOR,
    } <= statuses.keys()
    assert {name for name, status in statuses.items() if status != "RUNNING"} == {AUTOMATION_SENSOR}


def _owner(owner: dict) -> str:
    """An owner as Dagster's definitions spell it: `team:<name>` or an e-mail address."""
    return f"team:{owner['team']}" if "team" in owner else owner["email"]


def _served(server: DevServer) -> dict[str, dict]:
    """The catalogue's asset nodes by key, from a code location that loaded without error."""
    (location,) = graphql(server.port, LOCATION_QUERY)["workspaceOrError"]["locationEntries"]
    assert (location["loadStatus"], location["locationOrLoadError"]["__typename"]) == ("LOADED", "RepositoryLocation")
    return {"/".join(n["assetKey"]["path"]): n for n in graphql(server.port, CATALOG_QUERY)["assetNodes"]}


def test_ui_shows_configured_owners(dev_server: DevServer) -> None:
    """Every asset in the catalogue has owners, the ones the settings give the code location."""
    owners = {key: sorted(_owner(o) for o in node["owners"]) for key, node in _served(dev_server).items()}
    assert {key for key, found in owners.items() if not found} == set()
    graph = load_defs(Settings.from_env(dev_server.env))[0].resolve_asset_graph()
    assert owners == {n.key.to_user_string(): sorted(n.owners) for n in graph.asset_nodes}


def _columns(schema: dg.TableSchema | dg.TableSchemaMetadataValue) -> list[dg.TableColumn]:
    return list((schema.schema if isinstance(schema, dg.TableSchemaMetadataValue) else schema).columns)


def test_ui_shows_typed_described_column_schemas(dev_server: DevServer) -> None:
    """Every table asset in the catalogue has its declared column schema, each column with a type and a description."""
    schemas = {
        key: [
            (c["name"], c["type"], c["description"])
            for e in node["metadataEntries"]
            if e["label"] == COLUMN_SCHEMA
            for c in e["schema"]["columns"]
        ]
        for key, node in _served(dev_server).items()
        if any(e["label"] == TABLE_NAME for e in node["metadataEntries"])
    }
    assert schemas.keys() == TABLE_ASSETS["duckdb"]
    # dagster-dbt writes "?" for a column whose yml states no data_type.
    lacking = {
        key: [name for name, kind, description in columns if kind in ("", "?") or not description]
        for key, columns in schemas.items()
    }
    assert {key: names for key, names in lacking.items() if names or not schemas[key]} == {}
    graph = load_defs(Settings.from_env(dev_server.env))[0].resolve_asset_graph()
    assert schemas == {
        n.key.to_user_string(): [(c.name, c.type, c.description) for c in _columns(n.metadata[COLUMN_SCHEMA])]
        for n in graph.asset_nodes
        if TABLE_NAME in n.metadata
    }


def _stop_automation(port: int) -> None:
    """Stop every running sensor and schedule, as a user who launches by hand would: the run is then the only one."""
    for state in _instigators(port).values():
        if state["status"] == "RUNNING":
            graphql(
                port, f"mutation($id: String!) {{ {state['stop']}(id: $id) {{ __typename }} }}", {"id": state["id"]}
            )
    assert {name for name, state in _instigators(port).items() if state["status"] == "RUNNING"} == set()


def _wait_for_run(port: int, run_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = graphql(port, RUN_QUERY, {"id": run_id})["runOrError"]["status"]
        if status in DONE:
            return status
        time.sleep(2)
    raise AssertionError(f"run {run_id} still {status} after {timeout:.0f} s")


def test_ui_launches_a_partition_whose_checks_pass(dev_server: DevServer) -> None:
    """One day of the raw and clean layers launched through the UI's API: the run succeeds and every check passes."""
    port = dev_server.port
    _stop_automation(port)
    settings = Settings.from_env(dev_server.env)
    generate(GenerateSpec(out=settings.landing_dir, customers=UI_DAY_CUSTOMERS, days=1, start=START))
    # The checks the refresh job runs on these assets: freshness, judged on the wall clock, is its sensor's.
    graph = build_defs(settings).resolve_asset_graph()
    assets = {n.key for n in graph.asset_nodes if n.group_name in (RAW_LAYER, CLEAN_LAYER)}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys if k.asset_key in assets}
    assert len(checks) > 20
    params = {
        "selector": {
            "repositoryLocationName": "ballast",
            "repositoryName": "__repository__",
            "jobName": REFRESH_JOB,
            "assetSelection": [{"path": list(k.path)} for k in sorted(assets)],
            "assetCheckSelection": [
                {"assetKey": {"path": key.split("/")}, "name": name} for key, name in sorted(checks)
            ],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": START.isoformat()}]},
    }
    launched = graphql(port, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert _wait_for_run(port, run_id) == "SUCCESS"
    events = graphql(port, RUN_CHECKS_QUERY, {"id": run_id})["logsForRun"]["events"]
    planned = {
        ("/".join(e["assetKey"]["path"]), e["checkName"])
        for e in events
        if e["__typename"] == "AssetCheckEvaluationPlannedEvent"
    }
    evaluated = {
        ("/".join(e["evaluation"]["assetKey"]["path"]), e["evaluation"]["checkName"]): e["evaluation"]["success"]
        for e in events
        if e["__typename"] == "AssetCheckEvaluationEvent"
    }
    assert planned == checks
    assert evaluated.keys() == checks
    assert {check for check, passed in evaluated.items() if not passed} == set()
    # The latest execution of each check, as the UI's check pages show it: this run's, SUCCEEDED.
    aliases = {f"c{i}": check for i, check in enumerate(sorted(checks))}
    query = " ".join(
        f'{alias}: assetCheckExecutions(assetKey: {{path: {json.dumps(key.split("/"))}}}, checkName: "{name}",'
        " limit: 1) { runId status }"
        for alias, (key, name) in aliases.items()
    )
    latest = {aliases[alias]: found for alias, found in graphql(port, f"{{ {query} }}").items()}
    assert {
        check: found for check, found in latest.items() if found != [{"runId": run_id, "status": "SUCCEEDED"}]
    } == {}
