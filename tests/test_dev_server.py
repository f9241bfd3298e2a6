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

from ballast.definitions import build_defs
from ballast.settings import Settings

pytestmark = pytest.mark.full  # the dev server: `ballast dev` started for real

QUERY = "{ assetNodes { assetKey { path } groupName assetChecksOrError { ... on AssetChecks { checks { name } } } } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _asset_nodes(port: int) -> list[dict] | None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": QUERY}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["data"]["assetNodes"] or None
    except (OSError, KeyError, TypeError):
        return None


def test_dev_server_shows_every_layer(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "BALLAST_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ballast"), "dev", "--port", str(port)],
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
    assert len(nodes) == 19
    # Every check of the code location, as the Definitions built from the same settings have them.
    graph = build_defs(Settings.from_env(env)).resolve_asset_graph()
    served = {
        (tuple(n["assetKey"]["path"]), c["name"]) for n in nodes for c in n["assetChecksOrError"].get("checks", [])
    }
    assert served == {(tuple(k.asset_key.path), k.name) for k in graph.asset_check_keys}
    assert len(served) > 50
    assert (tmp_path / "dagster_home" / "dagster.yaml").is_file()
