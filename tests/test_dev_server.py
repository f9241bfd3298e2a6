"""`ballast dev` (what `make dev` runs) serves the code location with every layer, asset and check."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ballast.definitions import AUTOMATION_SENSOR, load_defs
from ballast.monitoring.freshness import FRESHNESS_SENSOR
from ballast.monitoring.sensors import ALERT_SENSOR, RETRAIN_SENSOR, RUN_ALERT_SENSOR
from ballast.raw.sensors import LANDING_SCHEDULE, LANDING_SENSOR
from ballast.settings import AUTOMATION_ENV, Settings

pytestmark = pytest.mark.full  # the dev server: `ballast dev` started for real

QUERY = "{ assetNodes { assetKey { path } groupName assetChecksOrError { ... on AssetChecks { checks { name } } } } }"
STATUS_QUERY = (
    "{ repositoriesOrError { ... on RepositoryConnection { nodes {"
    " sensors { name sensorState { status } } schedules { name scheduleState { status } } } } } }"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["data"]
    except (OSError, KeyError, TypeError):
        return None


def _asset_nodes(port: int) -> list[dict] | None:
    data = _graphql(port, QUERY)
    return (data or {}).get("assetNodes") or None


def _statuses(port: int) -> dict[str, str]:
    """Every sensor's and schedule's status as the UI shows it."""
    (repository,) = _graphql(port, STATUS_QUERY)["repositoriesOrError"]["nodes"]
    found = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
    return found | {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}


def test_dev_server_shows_every_layer(tmp_path: Path) -> None:
    """`ballast dev --automation`: every layer, asset and check, and Ballast's sensors and schedule on."""
    port = _free_port()
    env = {**os.environ, "BALLAST_HOME": str(tmp_path)}
    env.pop(AUTOMATION_ENV, None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ballast"), "dev", "--automation", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        nodes = None
        deadline = time.monotonic() + 180
        while nodes is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            nodes = _asset_nodes(port)
        assert nodes, "the UI did not serve the code location within 180 s"
        statuses = _statuses(port)
    finally:
        # `dagster dev` and its children share the session started above: stop them all.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=20)
    groups = {n["groupName"] for n in nodes}
    assert groups == {"raw", "clean", "features", "model", "monitoring", "audit"}
    # Every asset and check of the code location (freshness checks included), as the
    # Definitions `dagster dev` loads from the same settings have them.
    graph = load_defs(Settings.from_env(env))[0].resolve_asset_graph()
    assert {tuple(n["assetKey"]["path"]) for n in nodes} == {tuple(k.path) for k in graph.get_all_asset_keys()}
    assert len(nodes) >= 20
    served = {
        (tuple(n["assetKey"]["path"]), c["name"]) for n in nodes for c in n["assetChecksOrError"].get("checks", [])
    }
    assert served == {(tuple(k.asset_key.path), k.name) for k in graph.asset_check_keys}
    assert len(served) > 50
    assert (tmp_path / "dagster_home" / "dagster.yaml").is_file()
    # Started with --automation: all on but the declarative automation sensor, a choice made in the UI.
    assert {
        LANDING_SENSOR,
        LANDING_SCHEDULE,
        RETRAIN_SENSOR,
        ALERT_SENSOR,
        RUN_ALERT_SENSOR,
        FRESHNESS_SENSOR,
    } <= statuses.keys()
    assert {name for name, status in statuses.items() if status != "RUNNING"} == {AUTOMATION_SENSOR}
