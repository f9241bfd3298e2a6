"""`ballast dev`'s file server: the home's drift reports and plots, and dbt's docs site, for links in the UI.

Read-only, on 127.0.0.1 only, and nothing outside the served folders: a browser cannot
open a server's file path, so the metadata links to this server instead.
"""

from __future__ import annotations

import html
import json
import mimetypes
import os
import subprocess
import threading
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ballast.common.metadata import served_folders
from ballast.resources import DBT_EXECUTABLE, seed_partial_parse, write_dbt_profile
from ballast.settings import DBT_PROJECT_DIR, Settings

DBT_DOCS = "dbt-docs"
# What dbt's static site reads; the rest of its target folder (compiled SQL, run results) is not served.
DBT_DOCS_FILES = ("index.html", "manifest.json", "catalog.json")
# The drift reports the index page lists, newest first.
INDEX_REPORTS = 30


def resolve(folders: dict[str, Path], url_path: str) -> Path | None:
    """The file a URL path names inside a served folder, or None (unknown, a folder, or anywhere outside)."""
    prefix, _, rest = unquote(url_path).lstrip("/").partition("/")
    folder = folders.get(prefix)
    if folder is None or "\x00" in rest or "\\" in rest:
        return None
    root = folder.resolve()
    # Symlinks and `..` are resolved first: what lands outside the folder is refused.
    found = (root / (rest or "index.html")).resolve()
    if not found.is_relative_to(root) or not found.is_file():
        return None
    if prefix == DBT_DOCS and (found.parent != root or found.name not in DBT_DOCS_FILES):
        return None
    return found


def index_page(folders: dict[str, Path]) -> bytes:
    """Links to dbt's docs and the latest drift reports."""
    reports = sorted(folders["drift"].glob("*.html"), reverse=True)[:INDEX_REPORTS] if folders["drift"].is_dir() else []
    items = "".join(f"<li><a href='/drift/{html.escape(p.name)}'>{html.escape(p.stem)}</a></li>" for p in reports)
    return (
        "<!doctype html><meta charset='utf-8'><title>Ballast reports</title><h1>Ballast reports</h1>"
        f"<p><a href='/{DBT_DOCS}/'>dbt docs</a></p><h2>Drift reports</h2><ul>{items or '<li>none yet</li>'}</ul>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    def __init__(self, *args, folders: dict[str, Path], **kwargs) -> None:
        self.folders = folders
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _answer(self, body: bool) -> None:
        path = urlsplit(self.path).path
        if path == f"/{DBT_DOCS}":
            # dbt's page reads manifest.json relative to its own address.
            self.send_response(HTTPStatus.MOVED_PERMANENTLY)
            self.send_header("Location", f"/{DBT_DOCS}/")
            self.end_headers()
            return
        if path == "/":
            self._send(index_page(self.folders), "text/html; charset=utf-8", body)
            return
        found = resolve(self.folders, path)
        if found is None:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        kind = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
        self._send(found.read_bytes(), kind, body)

    def _send(self, data: bytes, kind: str, body: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, format: str, *args) -> None:
        """Quiet: dagster dev's own log is what the terminal shows."""


def bound_server(settings: Settings, port: int) -> ThreadingHTTPServer:
    """The server of the home's reports and dbt docs, listening on 127.0.0.1:`port`; OSError if the port is taken."""
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(_Handler, folders=served_folders(settings)))
    server.daemon_threads = True
    return server


def serve_in_background(server: ThreadingHTTPServer) -> None:
    # A short poll: shutdown() waits for the loop to notice.
    threading.Thread(target=server.serve_forever, args=(0.1,), name="ballast-files", daemon=True).start()


def dbt_docs_command(settings: Settings) -> list[str]:
    """`dbt docs generate` for the home: its profile and vars, the site written to settings.dbt_docs_dir."""
    return [
        DBT_EXECUTABLE,
        "docs",
        "generate",
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(settings.dbt_profiles_dir),
        "--target-path",
        str(settings.dbt_docs_dir),
        "--log-path",
        str(settings.home / "logs"),
        "--vars",
        json.dumps(settings.dbt_vars()),
    ]


def generate_dbt_docs(settings: Settings) -> str | None:
    """Build dbt's docs site of the home; a one-line reason when it cannot (no warehouse yet, dbt failed)."""
    if not settings.warehouse_path.is_file():
        return "no warehouse yet: dbt docs are generated once `ballast run` has built one (restart `ballast dev`)"
    write_dbt_profile(settings)
    # A dbt target folder beside the layers' own: it starts from their parse instead of parsing again.
    seed_partial_parse(settings.dbt_docs_dir)
    env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    done = subprocess.run(dbt_docs_command(settings), env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return f"dbt docs generate failed (exit {done.returncode}); see {settings.home / 'logs' / 'dbt.log'}"
    return None
