"""Screenshots of the Dagster UI's main pages on a home, for a person to review (what `make ui-check` runs).

Starts `ballast dev` on BALLAST_HOME (the demo's home under `make`), has headless Chromium
(Debian's `chromium` package) load each page and waits for the JavaScript app to draw it,
then stops the server with all its processes. The pages: overview, catalogue, lineage,
an asset's overview, partitions, checks and lineage, a model asset's metadata, runs, the
latest run and automation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ballast.settings import Settings

# The asset whose tabs are shown (a partitioned dbt table with many checks) and a model asset (metrics, plots).
ASSET = "clean/transactions"
MODEL_ASSET = "model/churn_evaluation"
PAGES = (
    ("overview", "/overview"),
    ("catalog", "/assets"),
    ("lineage", "/asset-groups"),
    ("asset", f"/assets/{ASSET}"),
    ("asset-partitions", f"/assets/{ASSET}?view=partitions"),
    ("asset-checks", f"/assets/{ASSET}?view=checks"),
    ("asset-lineage", f"/assets/{ASSET}?view=lineage"),
    ("model-asset", f"/assets/{MODEL_ASSET}"),
    ("runs", "/runs"),
    ("automation", "/automation"),
)
# A 1600 x 1000 PNG of a blank page is a few KB; every page drawn here weighs tens of KB.
BLANK_BYTES = 15_000
SERVE_TIMEOUT_S = 180


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
            return json.load(response).get("data")
    except OSError:
        return None


def _wait_served(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        if (_graphql(port, "{ assetNodes { id } }") or {}).get("assetNodes"):
            return
        time.sleep(2)
    raise SystemExit(f"ui-check: the UI did not serve the code location within {SERVE_TIMEOUT_S} s; see the dev log")


def _stop(proc: subprocess.Popen) -> None:
    """SIGINT to `dagster dev`'s whole session, SIGKILL after 20 s."""
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


def _screenshot(chromium: str, url: str, out: Path, profile: Path, wait_ms: int) -> None:
    # --virtual-time-budget lets the app fetch and draw before the picture is taken;
    # --no-sandbox because Chromium refuses to run as root with its sandbox (containers, CI).
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1600,1000",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={out}",
            url,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=120,
        check=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="folder for the screenshots (default: BALLAST_HOME/ui-check)")
    parser.add_argument("--wait-ms", type=int, default=15_000, help="virtual time each page gets to draw")
    args = parser.parse_args()
    settings = Settings.from_env()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("ui-check: no `chromium` on PATH; install Debian's chromium package (make ui-check does)")
    if not settings.warehouse_path.exists():
        raise SystemExit(f"ui-check: no warehouse under BALLAST_HOME={settings.home}; run `make demo` first")
    out = (args.out or settings.home / "ui-check").resolve()
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with (out / "dev.log").open("w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "ballast"), "dev", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait_served(port, proc)
        # Dagster's "join the community" dialog would cover every page.
        _graphql(port, "mutation { setNuxSeen }")
        runs = (_graphql(port, "{ runsOrError(limit: 1) { ... on Runs { results { runId } } } }") or {}).get(
            "runsOrError", {}
        )
        latest = [("run", f"/runs/{r['runId']}") for r in runs.get("results", [])]
        pages = [*PAGES, *latest]
        blank = []
        with tempfile.TemporaryDirectory() as profile:
            for number, (name, path) in enumerate(pages, start=1):
                shot = out / f"{number:02d}-{name}.png"
                _screenshot(chromium, f"http://127.0.0.1:{port}{path}", shot, Path(profile), args.wait_ms)
                print(f"{shot}  {path}")
                if shot.stat().st_size < BLANK_BYTES:
                    blank.append(shot.name)
    finally:
        _stop(proc)
    if blank:
        raise SystemExit(f"ui-check: {len(blank)} page(s) look blank: {', '.join(blank)}")
    print(f"ui-check: {len(pages)} screenshots in {out}")


if __name__ == "__main__":
    main()
