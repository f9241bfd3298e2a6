"""`ballast dev`'s file server: the home's drift reports, plots and dbt docs over HTTP, nothing else; and its stop."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from ballast.cli import files
from ballast.cli import main as cli
from ballast.monitoring.assets import DRIFT_REPORT
from ballast.settings import Settings
from tests.conftest import Platform, make_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@contextmanager
def _serving(settings: Settings) -> Iterator[str]:
    port = _free_port()
    server = files.bound_server(settings, port)
    files.serve_in_background(server)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def home(tmp_path: Path) -> Settings:
    """A home with a drift report, a plot, dbt's site beside its other artifacts, and secrets next to them."""
    settings = make_settings(tmp_path / "home")
    (settings.monitoring_dir / "drift").mkdir(parents=True)
    (settings.monitoring_dir / "drift" / "2025-02-01.html").write_text("<h1>Drift on 2025-02-01</h1>")
    settings.plots_dir.mkdir()
    (settings.plots_dir / "churn_model_v0001_evaluation.png").write_bytes(b"\x89PNG plot")
    settings.dbt_docs_dir.mkdir(parents=True)
    for name in (*files.DBT_DOCS_FILES, "run_results.json"):
        (settings.dbt_docs_dir / name).write_text(name)
    (settings.home / "secret.txt").write_text("secret")
    (settings.monitoring_dir / "drift" / "link.html").symlink_to(settings.home / "secret.txt")
    return settings


def test_the_server_serves_reports_plots_and_dbt_docs(home: Settings) -> None:
    with _serving(home) as base:
        assert _get(f"{base}/drift/2025-02-01.html") == (200, b"<h1>Drift on 2025-02-01</h1>")
        assert _get(f"{base}/plots/churn_model_v0001_evaluation.png") == (200, b"\x89PNG plot")
        assert _get(f"{base}/dbt-docs/") == (200, b"index.html")
        assert _get(f"{base}/dbt-docs") == (200, b"index.html")  # redirected to the folder
        assert _get(f"{base}/dbt-docs/catalog.json") == (200, b"catalog.json")
        status, index = _get(f"{base}/")
        assert status == 200 and b"/drift/2025-02-01.html" in index


@pytest.mark.parametrize(
    "path",
    [
        "/secret.txt",
        "/drift/../secret.txt",
        "/drift/%2e%2e/secret.txt",
        "/drift/..%2f..%2fhome/secret.txt",
        "/drift/link.html",  # a symlink out of the folder
        "/drift/",  # no listing
        "/dbt-docs/run_results.json",  # only what dbt's site reads
        "/registry/churn_model/champion.json",
        "/drift/%00.html",
    ],
)
def test_nothing_outside_the_served_files_is_served(home: Settings, path: str) -> None:
    with _serving(home) as base:
        request = urllib.request.Request(f"{base}{path}")
        # urllib would normalise `..` away; send the path as written.
        with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10) as conn:
            conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {request.host}\r\n\r\n".encode())
            status_line = conn.makefile("rb").readline()
    assert status_line.split()[1] == b"404"


def test_a_taken_port_is_a_warning_and_the_ui_starts_without_files(
    home: Settings, capsys: pytest.CaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli._file_server(home, port) is None
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


def test_the_drift_report_opens_at_the_url_in_its_metadata(platform: Platform) -> None:
    [drift] = [
        e.event_specific_data.materialization.metadata
        for e in platform.result.all_events
        if e.is_step_materialization and e.event_specific_data.materialization.asset_key == DRIFT_REPORT
    ][-1:]
    url = drift["latest_report_url"].value
    assert url.startswith(platform.settings.files_base_url) and url.endswith(f"/drift/{platform.end}.html")
    with _serving(platform.settings) as base:
        status, body = _get(base + url.removeprefix(platform.settings.files_base_url))
    assert status == 200 and body == Path(drift["latest_report"].value).read_bytes()
    assert f"Drift on {platform.end}".encode() in body


def test_dbt_docs_are_generated_for_the_home_and_served(platform: Platform) -> None:
    assert files.generate_dbt_docs(platform.settings) is None
    with _serving(platform.settings) as base:
        status, page = _get(f"{base}/dbt-docs/")
        assert status == 200 and b"dbt" in page
        status, catalog = _get(f"{base}/dbt-docs/catalog.json")
    # The catalog holds the warehouse's tables as built in this home.
    assert status == 200 and "model.ballast.transactions" in json.loads(catalog)["nodes"]


def test_dbt_docs_wait_for_a_warehouse(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert "no warehouse yet" in files.generate_dbt_docs(settings)
    assert not settings.warehouse_path.exists()


def _serving_ui(port: int) -> bool:
    """The webserver answers (dagster dev started the code servers before it)."""
    try:
        return _get(f"http://127.0.0.1:{port}/server_info")[0] == 200
    except OSError:
        return False


@pytest.mark.full
@pytest.mark.parametrize("stop", ["SIGINT to the group (Ctrl-C)", "SIGTERM to the process"])
def test_ballast_dev_stops_cleanly_with_its_children(tmp_path: Path, stop: str) -> None:
    """The file server answers while the UI runs; one signal stops dagster dev, its services and the server."""
    port, files_port = _free_port(), _free_port()
    env = {**os.environ, "BALLAST_HOME": str(tmp_path)}
    for name in ("BALLAST_UI_URL", "BALLAST_FILES_URL", "BALLAST_FILES_PORT"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "ballast"), "dev", "--port", str(port), "--files-port", str(files_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        # As a script's background job (`ballast dev &`) starts: SIGINT ignored, which exec passes on.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(2)
            if _serving_ui(port):
                break
        assert _get(f"http://127.0.0.1:{files_port}/")[0] == 200
        children = psutil.Process(proc.pid).children(recursive=True)
        [dagster_dev] = [c for c in children if c.ppid() == proc.pid]
        # Alerts link to this UI and metadata to this file server: the code location's Settings read these.
        assert dagster_dev.environ()["BALLAST_UI_URL"] == f"http://127.0.0.1:{port}"
        assert Settings.from_env(dagster_dev.environ()).files_base_url == f"http://127.0.0.1:{files_port}"
        assert len(children) >= 3  # dagster dev, its webserver and daemon (and the code servers)
        if stop.startswith("SIGINT"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _, alive = psutil.wait_procs(children, timeout=60)
        assert alive == []
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{files_port}/", timeout=5)
    finally:
        for child in [*children, psutil.Process(proc.pid) if proc.poll() is None else None]:
            if child is not None:
                try:
                    child.kill()
                except psutil.NoSuchProcess:
                    pass
        proc.wait(timeout=20)
    assert "Traceback" not in proc.stderr.read().decode()
