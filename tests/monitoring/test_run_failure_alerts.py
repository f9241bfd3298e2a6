"""Run-failure alerts on a real Dagster instance: one alert per failed run and sink across repeated ticks, a reset
cursor and a webhook that was down."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from ballast.monitoring.sensors import (
    ALERT_SENSOR,
    RUN_ALERT_SENSOR,
    AlertSinks,
    alert_sensor,
    run_failure_alert_sensor,
)
from ballast.runs import instance
from tests.conftest import make_settings

JOB = "load_partner_feed_job"
SECRET = "s3cr3t-T0KEN"
LOADED = dg.AssetKey(["raw", "partner_feed"])


class _Receiver(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []  # the answers to come, then 200
    received: ClassVar[list] = []  # (status answered, body)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = type(self).statuses.pop(0) if type(self).statuses else 200
        type(self).received.append((status, body))
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    handler = type("Handler", (_Receiver,), {"received": [], "statuses": []})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield handler, f"http://127.0.0.1:{server.server_port}/hooks/{SECRET}"
    server.shutdown()
    server.server_close()
    thread.join()


class _Feed(dg.Config):
    day: str


def _defs(settings, webhook_url: str) -> dg.Definitions:
    @dg.asset(key=LOADED)
    def partner_feed(config: _Feed) -> None:
        """Stands in for a load that meets a file it cannot read (the error quotes a credential and an address)."""
        raise ValueError(
            f"partner_{config.day}.csv: not UTF-8 at byte 17 (fetched from https://feed.example/{SECRET}"
            f" with token={SECRET})\nsecond line of detail"
        )

    @dg.asset(deps=[partner_feed])
    def partner_summary() -> None:
        """Never runs: its input failed."""

    return dg.Definitions(
        assets=[partner_feed, partner_summary],
        jobs=[dg.define_asset_job(JOB)],
        sensors=[run_failure_alert_sensor(settings), alert_sensor(settings)],
        resources={"alert_sinks": AlertSinks(alert_log=str(settings.alert_log), webhook_url=webhook_url)},
    )


def test_a_failed_run_is_alerted_once_per_sink_across_ticks_resets_and_a_webhook_outage(
    tmp_path: Path, receiver
) -> None:
    handler, url = receiver
    settings = make_settings(tmp_path)
    defs = _defs(settings, url)
    job = defs.resolve_job_def(JOB)
    cursors: dict[str, str | None] = {RUN_ALERT_SENSOR: None, ALERT_SENSOR: None}
    dagster_instance = instance(settings)

    def tick(name: str, cursor: str | None = None):
        sensor = defs.resolve_sensor_def(name)
        context = dg.build_sensor_context(
            instance=dagster_instance, cursor=cursor or cursors[name], definitions=defs, resources=defs.resources
        )
        result = sensor.evaluate_tick(context)
        cursors[name] = result.cursor
        return result

    def fail(day: str) -> str:
        result = job.execute_in_process(
            run_config={"ops": {"raw__partner_feed": {"config": {"day": day}}}},
            instance=dagster_instance,
            raise_on_error=False,
        )
        assert not result.success
        return result.run_id

    def log() -> list[dict]:
        return [json.loads(line) for line in settings.alert_log.read_text().splitlines()]

    def posted() -> list[dict]:
        return [body for status, body in handler.received if status == 200]

    try:
        assert tick(RUN_ALERT_SENSOR).skip_message.startswith("Initiating")
        before_any_run = cursors[RUN_ALERT_SENSOR]
        handler.statuses = [500]  # the webhook is down for the first delivery
        first = fail("2025-03-01")
        for _ in range(3):
            tick(RUN_ALERT_SENSOR)
        [alert] = log()
        assert (alert["job"], alert["run_id"], alert["steps"], alert["severity"]) == (
            JOB,
            first,
            ["raw__partner_feed"],
            "ERROR",
        )
        assert alert["summary"] == (
            "raw__partner_feed: ValueError: partner_2025-03-01.csv: not UTF-8 at byte 17 (fetched from <url>"
            " with token=<redacted>"
        )
        assert alert["url"] == f"{settings.ui_url}/runs/{first}" and alert["key"] == f"run:{first}"
        assert len(handler.received) == 1 and posted() == []
        # A later tick of the alert sensors retries the delivery that failed: the webhook gets it once.
        tick(ALERT_SENSOR)
        tick(ALERT_SENSOR)
        assert [body["run_id"] for body in posted()] == [first] and posted()[0] == alert

        second = fail("2025-03-02")
        for _ in range(3):
            tick(RUN_ALERT_SENSOR)
        # A cursor replayed from before both runs (a reset, a restarted sensor) sends nothing twice.
        replayed = tick(RUN_ALERT_SENSOR, cursor=before_any_run)
        assert [r.dagster_run.run_id for r in replayed.dagster_run_reactions] == [first, second]
        tick(RUN_ALERT_SENSOR)
        tick(ALERT_SENSOR)
    finally:
        dagster_instance.dispose()
    assert [a["run_id"] for a in log()] == [first, second]
    assert [body["run_id"] for body in posted()] == [first, second]
    assert log()[1]["summary"].startswith("raw__partner_feed: ValueError: partner_2025-03-02.csv: not UTF-8")
    everything = settings.alert_log.read_text() + json.dumps(handler.received) + settings.alert_outbox.read_text()
    assert SECRET not in everything and "feed.example" not in everything
