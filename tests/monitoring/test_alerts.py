"""Alert delivery: every sink gets each alert once, a failing sink keeps it for the next tick, no address leaks."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from ballast.monitoring.alerts import Alert, JsonlSink, Outbox, RunFailureAlert, SlackSink, WebhookSink

SECRET = "T0KEN-s3cr3t"


class _Receiver(BaseHTTPRequestHandler):
    status = 200
    received: ClassVar[list] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).received.append((self.path, body))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    handler = type("Handler", (_Receiver,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}/hooks/{SECRET}"
    server.shutdown()
    server.server_close()


def _state(outbox: Outbox) -> dict:
    """The delivery state the outbox keeps on disk."""
    return json.loads(outbox.path.read_text())


def _alert(partition: str = "2025-03-01") -> Alert:
    return Alert(
        asset="monitoring/drift_report",
        check="feature_psi",
        partition=partition,
        severity="ERROR",
        summary="spend_30d PSI 0.41 > 0.2",
        url="http://localhost:3000/assets/monitoring/drift_report",
        run_id="r1",
    )


def test_each_sink_gets_each_alert_once(tmp_path: Path, receiver) -> None:
    handler, url = receiver
    outbox = Outbox(tmp_path / "outbox.json")
    sinks = [JsonlSink(tmp_path / "alerts.jsonl"), WebhookSink(url), SlackSink(url)]
    sent, failed = outbox.deliver([_alert()], sinks)
    assert failed == [] and len(sent) == 3
    sent, failed = outbox.deliver([_alert()], sinks)
    assert sent == [] and failed == []
    assert len(handler.received) == 2
    [(_, webhook), (_, slack)] = handler.received
    assert webhook["check"] == "feature_psi" and webhook["partition"] == "2025-03-01"
    assert "feature_psi" in slack["text"]
    assert len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1


def test_a_failing_sink_keeps_the_alert_until_it_is_delivered(tmp_path: Path, receiver) -> None:
    handler, url = receiver
    outbox = Outbox(tmp_path / "outbox.json")
    sinks = [JsonlSink(tmp_path / "alerts.jsonl"), WebhookSink(url)]
    handler.status = 500
    sent, failed = outbox.deliver([_alert()], sinks)
    assert sent == ["alert_log: monitoring/drift_report:feature_psi@2025-03-01"]
    assert failed == ["webhook: HTTP 500 (monitoring/drift_report:feature_psi@2025-03-01)"]
    assert list(_state(outbox)["pending"]) == ["monitoring/drift_report:feature_psi@2025-03-01"]
    assert _state(outbox)["delivered"] == {
        "alert_log": ["monitoring/drift_report:feature_psi@2025-03-01"],
        "webhook": [],
    }
    handler.status = 200
    sent, failed = outbox.deliver([], sinks)
    assert sent == ["webhook: monitoring/drift_report:feature_psi@2025-03-01"] and failed == []
    assert _state(outbox)["pending"] == {} and len((tmp_path / "alerts.jsonl").read_text().splitlines()) == 1


def test_an_unreachable_sink_error_does_not_name_the_address(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.json")
    url = f"http://127.0.0.1:9/hooks/{SECRET}"
    sent, failed = outbox.deliver([_alert()], [WebhookSink(url, timeout=1), JsonlSink(tmp_path / "alerts.jsonl")])
    assert len(failed) == 1 and failed[0].startswith("webhook: ")
    for text in (*failed, *sent, (tmp_path / "alerts.jsonl").read_text(), (tmp_path / "outbox.json").read_text()):
        assert SECRET not in text and "127.0.0.1:9" not in text
    assert SECRET not in repr(WebhookSink(url))


def _run_failure(run_id: str = "r9") -> RunFailureAlert:
    return RunFailureAlert(
        job="refresh_platform_job",
        run_id=run_id,
        steps=("raw_transactions", "clean_dbt_models"),
        summary="raw_transactions: IOException: Could not set lock on file",
        url=f"http://localhost:3000/runs/{run_id}",
    )


def test_run_failures_and_check_failures_share_the_outbox_and_slack_names_the_steps(tmp_path: Path, receiver) -> None:
    handler, url = receiver
    outbox = Outbox(tmp_path / "outbox.json")
    # A pending check alert written before run-failure alerts existed (no kind) is still delivered.
    outbox.path.write_text(json.dumps({"delivered": {}, "pending": {_alert().key: _alert().as_dict()}}))
    sinks = [JsonlSink(tmp_path / "alerts.jsonl"), SlackSink(url)]
    sent, failed = outbox.deliver([_run_failure(), _run_failure()], sinks)
    assert failed == [] and sorted(sent) == sorted(
        f"{sink}: {key}" for sink in ("alert_log", "slack") for key in ("run:r9", _alert().key)
    )
    lines = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert {line["key"] for line in lines} == {"run:r9", _alert().key}
    [run] = [line for line in lines if line.get("kind") == "run_failure"]
    assert run["steps"] == ["raw_transactions", "clean_dbt_models"] and run["severity"] == "ERROR"
    [check] = [line for line in lines if "kind" not in line]
    assert check == _alert().as_dict()
    [slack] = [body["text"] for _, body in handler.received if "refresh_platform_job" in body["text"]]
    assert "`raw_transactions`, `clean_dbt_models`" in slack and "<http://localhost:3000/runs/r9|" in slack
    assert outbox.deliver([_run_failure()], sinks) == ([], [])
