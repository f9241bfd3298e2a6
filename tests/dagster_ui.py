"""Reading a Dagster UI server (`ballast dev`, `dagster-webserver`) through its GraphQL API, as the UI does."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port: int, query: str, variables: dict | None = None) -> dict:
    """The server's whole answer (data and errors) to one GraphQL query."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """The answer's data; a GraphQL error fails the test with its messages."""
    answer = post(port, query, variables)
    assert not answer.get("errors"), [e["message"] for e in answer["errors"]]
    return answer["data"]


def asset_nodes(port: int, query: str) -> list[dict] | None:
    """The served asset nodes of `query`, or None while the server is not up yet."""
    try:
        return post(port, query)["data"]["assetNodes"] or None
    except (OSError, KeyError, TypeError):
        return None


def wait_for_asset_nodes(port: int, proc: subprocess.Popen, query: str, timeout_s: float) -> list[dict]:
    """The asset nodes once the server serves the code location; fails if it does not within `timeout_s`."""
    nodes = None
    deadline = time.monotonic() + timeout_s
    while nodes is None and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(1)
        nodes = asset_nodes(port, query)
    assert nodes, f"the server did not serve the code location within {timeout_s:.0f} s"
    return nodes


def stop_session(proc: subprocess.Popen, first: signal.Signals = signal.SIGINT) -> None:
    """Stop a server started in its own session, and every process of it: `first`, then SIGKILL after 20 s."""
    os.killpg(proc.pid, first)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=20)
