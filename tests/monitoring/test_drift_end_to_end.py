"""Drift end to end: data drifting from a known date, drift checks, one retraining run, alerts at a webhook.

Real whylogs profiles, real Dagster sensors (evaluated without a daemon), a real HTTP
server for the webhook.
"""

import datetime as dt
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import dagster as dg
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.definitions import build_defs
from ballast.model import registry, training
from ballast.monitoring.assets import DRIFT_REPORT, FEATURE_PSI_CHECK, drift_path
from ballast.monitoring.sensors import ALERT_SENSOR, RETRAIN_JOB, RETRAIN_SENSOR, AlertSinks
from ballast.runs import instance, refresh
from ballast.settings import Settings
from tests.conftest import START, make_settings

pytestmark = pytest.mark.full  # a whole-graph run on 180 days of drifting data

DAYS = 180
DRIFT_FROM = START + dt.timedelta(days=134)  # 2025-05-15
SECRET = "hooks/T0KEN-do-not-log"


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list] = []

    def do_POST(self) -> None:
        type(self).received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def drifted(tmp_path_factory: pytest.TempPathFactory):
    settings = make_settings(tmp_path_factory.mktemp("drift_home"))
    settings.ensure_dirs()
    generate(
        GenerateSpec(out=settings.landing_dir, customers=2000, days=DAYS, start=START, seed=7, drift_from=DRIFT_FROM)
    )
    dagster_instance = instance(settings)
    result = refresh(
        settings, START, START + dt.timedelta(days=DAYS - 1), dagster_instance=dagster_instance, log_level="WARNING"
    )
    yield settings, dagster_instance, result
    dagster_instance.dispose()


def _daily(settings: Settings) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted((settings.monitoring_dir / "drift").glob("*.json"))}


def test_error_drift_only_after_the_drift_date(drifted) -> None:
    settings, _, result = drifted
    # The run fails only because of the drift checks (non-blocking): every asset materialized.
    assert not [e for e in result.all_events if e.is_step_failure]
    daily = _daily(settings)
    before = [d for d in daily if d < DRIFT_FROM.isoformat()]
    after = [d for d in daily if d >= (DRIFT_FROM + dt.timedelta(days=30)).isoformat()]
    assert len(before) >= 40 and len(after) >= 10
    assert all(daily[d]["max_psi"] <= settings.psi_error for d in before), {d: daily[d]["max_psi"] for d in before}
    assert all(daily[d]["max_psi"] > settings.psi_error for d in after)
    assert {"avg_amount_30d", "web_share_30d"} & set(daily[after[-1]]["drifted"])
    [psi] = [e for e in result.get_asset_check_evaluations() if e.check_name == FEATURE_PSI_CHECK]
    assert not psi.passed and psi.severity == dg.AssetCheckSeverity.ERROR
    assert psi.metadata["first_partition_over"].value >= DRIFT_FROM.isoformat()
    assert drift_path(settings, DRIFT_FROM, "html").read_text().startswith("<!doctype html>")


def test_the_retraining_sensor_requests_exactly_one_run_and_it_goes_through_the_gates(drifted) -> None:
    settings, dagster_instance, _ = drifted
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def(RETRAIN_SENSOR)
    cursor, requests = None, []
    for _ in range(3):
        tick = sensor.evaluate_tick(dg.build_sensor_context(instance=dagster_instance, cursor=cursor, definitions=defs))
        requests += tick.run_requests
        cursor = tick.cursor
    [request] = requests
    champion = registry.champion(settings.registry_dir, training.MODEL_NAME)
    assert request.run_key.startswith(f"retrain:{champion.version}:") and request.job_name == RETRAIN_JOB
    run = defs.resolve_job_def(RETRAIN_JOB).execute_in_process(
        instance=dagster_instance, tags={**request.tags, "dagster/run_key": request.run_key}, raise_on_error=False
    )
    assert run.success
    candidate = registry.latest(settings.registry_dir, training.MODEL_NAME)
    assert candidate.version != champion.version and candidate.metadata["dagster_run_id"] == run.run_id
    assert [g["name"] for g in candidate.metadata["gates"]] == [
        "min_quality",
        "beats_baseline",
        "challenger",
        "fairness",
    ]
    # The new champion is a new episode's owner, but the drift evaluation has not changed: no new run.
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=dagster_instance, cursor=cursor, definitions=defs))
    assert again.run_requests == []


def test_drift_alerts_reach_the_webhook_once_and_its_address_is_never_written(drifted, monkeypatch, caplog) -> None:
    settings, dagster_instance, _ = drifted
    server = HTTPServer(("127.0.0.1", 0), type("Hook", (_Hook,), {"received": []}))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{SECRET}"
    monkeypatch.setenv("BALLAST_ALERT_WEBHOOK_URL", url)
    sinks = AlertSinks(
        alert_log=str(settings.alert_log),
        webhook_url=dg.EnvVar("BALLAST_ALERT_WEBHOOK_URL"),
    )
    defs = build_defs(settings)
    sensor = defs.resolve_sensor_def(ALERT_SENSOR)
    try:
        with caplog.at_level(logging.DEBUG):
            first = sensor.evaluate_tick(
                dg.build_sensor_context(instance=dagster_instance, definitions=defs, resources={"alert_sinks": sinks})
            )
            second = sensor.evaluate_tick(
                dg.build_sensor_context(
                    instance=dagster_instance, cursor=first.cursor, definitions=defs, resources={"alert_sinks": sinks}
                )
            )
    finally:
        server.shutdown()
        server.server_close()
    received = server.RequestHandlerClass.received
    psi_alerts = [a for a in received if a["check"] == FEATURE_PSI_CHECK]
    assert len(psi_alerts) == 1 and psi_alerts[0]["severity"] == "ERROR"
    assert psi_alerts[0]["asset"] == DRIFT_REPORT.to_user_string() and "PSI above" in psi_alerts[0]["summary"]
    assert psi_alerts[0]["url"].endswith("/assets/monitoring/drift_report?view=checks")
    assert second.skip_message == "0 new failed check(s); 0 delivered, 0 waiting for a retry"
    assert len(received) == len({a["key"] for a in received}) >= 2
    written = [
        settings.alert_log.read_text(),
        settings.alert_outbox.read_text(),
        caplog.text,
        first.skip_message or "",
        *(Path(p).read_text() for p in (settings.home / "logs").glob("*") if Path(p).is_file()),
    ]
    assert all(SECRET not in text for text in written)
