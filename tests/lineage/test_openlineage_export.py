"""OpenLineage export on a real Dagster instance: tiny assets with column schema and lineage, a check that passes
and one that fails, a run that succeeds and one that fails; events to the JSONL file and to an HTTP server.

Validation: openlineage-python does not ship the OpenLineage JSON Schema files (the 1.54
wheel holds no .json), so every exported line is validated against the client's own spec
model instead: parsed back strictly into `openlineage.client.event_v2.RunEvent` and the
generated facet classes by facet key (an unknown or missing key, a wrong type, a
`_schemaURL` other than the class's, or what the classes' validators refuse — a runId
that is not a UUID, an eventTime without a time — fails), then serialized again and
compared with the line, so nothing was dropped. On top: eventTime carries a zone and
every facet has `_producer` and `_schemaURL`.
"""

import datetime as dt
import http.server
import json
import logging
import socket
import threading
import uuid
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
from openlineage.client.serde import Serde

from ballast.lineage.export import EXPORT_SENSOR, OpenLineageExport, Outbox, export_sensor, undelivered
from ballast.lineage.openlineage import EventFormatError, event_from_json
from ballast.settings import OPENLINEAGE_API_KEY_ENV, Settings, SettingsError
from tests.conftest import make_settings

ORDERS = dg.AssetKey(["raw", "orders"])
CLEAN = dg.AssetKey(["clean", "orders"])
JOB = "tiny_orders_job"
FAIL_TAG = "test/fail"
SECRET = "ol-secret-" + uuid.uuid4().hex
TERMINAL = {"COMPLETE", "FAIL", "ABORT"}


@dg.asset(
    key=ORDERS,
    description="Orders as delivered.",
    metadata={
        "dagster/table_name": "warehouse.raw.orders",
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn("order_id", "VARCHAR", description="The order."),
                dg.TableColumn("amount", "VARCHAR", description="The amount as received."),
            ]
        ),
    },
)
def raw_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"dagster/row_count": 3})


@dg.asset(
    key=CLEAN,
    deps=[ORDERS],
    description="Typed orders.",
    metadata={
        "dagster/table_name": "warehouse.clean.orders",
        "dagster/column_schema": dg.TableSchema(
            columns=[
                dg.TableColumn("order_id", "VARCHAR", description="The order."),
                dg.TableColumn("amount", "DECIMAL(18,2)", description="The amount, typed."),
            ]
        ),
        "dagster/column_lineage": dg.TableColumnLineage(
            deps_by_column={
                "order_id": [dg.TableColumnDep(ORDERS, "order_id")],
                "amount": [dg.TableColumnDep(ORDERS, "amount")],
            }
        ),
    },
)
def clean_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    if context.run.tags.get(FAIL_TAG):
        raise RuntimeError("the typing step broke on purpose")
    return dg.MaterializeResult(metadata={"dagster/row_count": 2})


@dg.asset_check(asset=CLEAN, description="Amounts are positive.")
def amount_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, metadata={"column": "amount"})


@dg.asset_check(asset=CLEAN, description="At least three orders.")
def enough_orders() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"rows": 2})


def _defs(settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[raw_orders, clean_orders],
        asset_checks=[amount_positive, enough_orders],
        jobs=[dg.define_asset_job(JOB, selection=dg.AssetSelection.all())],
        sensors=[export_sensor(settings)],
        resources={"openlineage": OpenLineageExport.from_settings(settings)},
    )


def _run(defs: dg.Definitions, instance: dg.DagsterInstance, fail: bool = False) -> str:
    tags = {FAIL_TAG: "yes"} if fail else {}
    result = defs.resolve_job_def(JOB).execute_in_process(instance=instance, tags=tags, raise_on_error=False)
    assert result.success != fail
    return result.run_id


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None) -> tuple[str, str]:
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, definitions=defs, resources={"openlineage": defs.resources["openlineage"]}
    )
    skip = defs.resolve_sensor_def(EXPORT_SENSOR)(context)
    return context.cursor, skip.skip_message


def _facets(event: dict) -> list[dict]:
    datasets = [*event["inputs"], *event["outputs"]]
    groups = [event["run"].get("facets", {}), event["job"].get("facets", {})]
    for d in datasets:
        groups += [d.get("facets", {}), d.get("inputFacets", {}), d.get("outputFacets", {})]
    return [facet for group in groups for facet in group.values()]


def validated(lines: list[str]) -> list[dict]:
    """Each line as a dict, after checking it against the client's spec model (see the module docstring)."""
    events = []
    for line in lines:
        data = json.loads(line)
        assert Serde.to_dict(event_from_json(line)) == data
        assert dt.datetime.fromisoformat(data["eventTime"]).tzinfo is not None
        uuid.UUID(data["run"]["runId"])
        for facet in _facets(data):
            assert facet["_producer"] and facet["_schemaURL"].startswith("https://openlineage.io/spec/")
        events.append(data)
    return events


def _file_events(settings) -> list[dict]:
    return validated(settings.openlineage_file.read_text().splitlines())


def _instance(tmp_path: Path):
    (tmp_path / "dagster").mkdir(exist_ok=True)
    return dg.instance_for_test(temp_dir=str(tmp_path / "dagster"))


@pytest.fixture
def home(tmp_path: Path):
    settings = make_settings(tmp_path / "home")
    settings.ensure_dirs()
    with _instance(tmp_path) as instance:
        yield settings, _defs(settings), instance


def test_one_start_and_one_terminal_event_per_run_with_the_run_id(home) -> None:
    settings, defs, instance = home
    passed, failed = _run(defs, instance), _run(defs, instance, fail=True)
    _tick(defs, instance, None)
    events = _file_events(settings)
    by_run = {run: [e for e in events if e["run"]["runId"] == run] for run in (passed, failed)}
    assert sum(len(v) for v in by_run.values()) == len(events)
    for run_events in by_run.values():
        kinds = [e["eventType"] for e in run_events]
        assert kinds[0] == "START" and kinds.count("START") == 1
        assert kinds[-1] in TERMINAL and sum(k in TERMINAL for k in kinds) == 1
        assert {e["job"]["name"] for e in run_events} == {JOB}
        assert {e["job"]["namespace"] for e in run_events} == {settings.openlineage_namespace}
    assert by_run[passed][-1]["eventType"] == "COMPLETE"
    end = by_run[failed][-1]
    assert end["eventType"] == "FAIL"
    assert "the typing step broke on purpose" in end["run"]["facets"]["errorMessage"]["message"]


def test_datasets_carry_schema_column_lineage_and_check_assertions(home) -> None:
    settings, defs, instance = home
    run = _run(defs, instance)
    _tick(defs, instance, None)
    events = [e for e in _file_events(settings) if e["run"]["runId"] == run]
    namespace = f"duckdb://{settings.warehouse_path}"
    outputs = {o["name"]: (e, o) for e in events for o in e["outputs"]}
    assert set(outputs) == {"warehouse.raw.orders", "warehouse.clean.orders"}
    event, clean = outputs["warehouse.clean.orders"]
    assert clean["namespace"] == namespace
    assert [(i["namespace"], i["name"]) for i in event["inputs"]] == [(namespace, "warehouse.raw.orders")]
    fields = clean["facets"]["schema"]["fields"]
    assert [(f["name"], f["type"], f["ordinal_position"]) for f in fields] == [
        ("order_id", "VARCHAR", 1),
        ("amount", "DECIMAL(18,2)", 2),
    ]
    assert clean["facets"]["columnLineage"]["fields"]["amount"]["inputFields"] == [
        {"namespace": namespace, "name": "warehouse.raw.orders", "field": "amount", "transformations": []}
    ]
    assert clean["outputFacets"]["outputStatistics"]["rowCount"] == 2
    assert "columnLineage" not in outputs["warehouse.raw.orders"][1]["facets"]
    checked = [i for e in events for i in e["inputs"] if "dataQualityAssertions" in i.get("inputFacets", {})]
    assert [i["name"] for i in checked] == ["warehouse.clean.orders"]
    assertions = {a["assertion"]: a for a in checked[0]["inputFacets"]["dataQualityAssertions"]["assertions"]}
    assert assertions["amount_positive"]["success"] is True and assertions["amount_positive"]["column"] == "amount"
    assert assertions["enough_orders"]["success"] is False and assertions["enough_orders"]["severity"] == "warn"
    assert "column" not in assertions["enough_orders"]


def test_repeated_and_overlapping_ticks_send_nothing_twice(home) -> None:
    settings, defs, instance = home
    first = _run(defs, instance)
    cursor, _ = _tick(defs, instance, None)
    count = len(_file_events(settings))
    assert count > 2
    # The same tick again, with the old cursor, and an export from the CLI's side of the same run.
    _tick(defs, instance, None)
    _tick(defs, instance, cursor)
    _tick(defs, instance, cursor)
    OpenLineageExport.from_settings(settings).export(instance, {}, [first])
    assert len(_file_events(settings)) == count
    # A new run after the cursor: only its events are added, once.
    second = _run(defs, instance, fail=True)
    cursor, message = _tick(defs, instance, cursor)
    _tick(defs, instance, None)
    _tick(defs, instance, cursor)
    events = _file_events(settings)
    assert "0 waiting for a retry" in message
    assert len(events) > count
    keys = Counter(json.dumps(e, sort_keys=True) for e in events)
    assert max(keys.values()) == 1
    runs = Counter((e["run"]["runId"], e["eventType"]) for e in events if e["eventType"] != "RUNNING")
    assert runs == {(first, "START"): 1, (first, "COMPLETE"): 1, (second, "START"): 1, (second, "FAIL"): 1}
    assert json.loads(cursor)["open"] == []


def test_the_validation_refuses_what_the_spec_does_not_allow(home) -> None:
    settings, defs, instance = home
    _run(defs, instance)
    _tick(defs, instance, None)
    line = settings.openlineage_file.read_text().splitlines()[-1]
    validated([line])
    broken = []
    for change in (
        lambda e: e["run"].update(runId="not-a-uuid"),
        lambda e: e.update(eventTime="2025-01-01"),
        lambda e: e.update(extra=1),
        lambda e: e["job"].pop("name"),
        lambda e: e["run"]["facets"].update(madeUp={"_producer": "x", "_schemaURL": "y"}),
        lambda e: e["run"]["facets"]["processing_engine"].update(_schemaURL="https://example.com/other.json"),
    ):
        event = json.loads(line)
        change(event)
        broken.append(event)
    for event in broken:
        with pytest.raises(EventFormatError):
            event_from_json(json.dumps(event))


class _Collector(http.server.BaseHTTPRequestHandler):
    received: list

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, dict(self.headers), body.decode()))
        self.send_response(201)
        self.end_headers()

    def log_message(self, format, *args) -> None:
        pass


def _serve(port: int = 0) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Collector)
    server.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_home(tmp_path: Path, port: int, monkeypatch):
    monkeypatch.setenv(OPENLINEAGE_API_KEY_ENV, SECRET)
    settings = make_settings(
        tmp_path / "home",
        openlineage_transport="http",
        openlineage_url=f"http://127.0.0.1:{port}",
        openlineage_api_key_set=True,
    )
    settings.ensure_dirs()
    return settings, _defs(settings)


def test_the_http_transport_posts_every_event_with_the_api_key_never_logged(tmp_path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server = _serve()
    try:
        settings, defs = _http_home(tmp_path, server.server_address[1], monkeypatch)
        with _instance(tmp_path) as instance:
            run = _run(defs, instance)
            _, message = _tick(defs, instance, None)
            _tick(defs, instance, None)
    finally:
        server.shutdown()
        server.server_close()
    assert "0 waiting for a retry" in message
    paths = {path for path, _, _ in server.received}
    assert paths == {"/api/v1/lineage"}
    assert {headers["Authorization"] for _, headers, _ in server.received} == {f"Bearer {SECRET}"}
    events = validated([body for _, _, body in server.received])
    kinds = [e["eventType"] for e in events if e["run"]["runId"] == run]
    assert kinds[0] == "START" and kinds[-1] == "COMPLETE" and len(kinds) == len(events) == 5
    assert not settings.openlineage_file.exists()
    assert SECRET not in caplog.text
    assert SECRET not in settings.openlineage_outbox.read_bytes().decode(errors="replace")


def test_a_down_endpoint_keeps_events_pending_until_a_later_tick(tmp_path, monkeypatch, caplog) -> None:
    port = _free_port()
    settings, defs = _http_home(tmp_path, port, monkeypatch)
    with _instance(tmp_path) as instance:
        run = _run(defs, instance)
        cursor, message = _tick(defs, instance, None)
        pending = [e for e in Outbox(settings.openlineage_outbox).events() if not e["sent"]]
        assert len(pending) == 5 and "0 sent" in message
        assert {e["last_error"] for e in pending} - {None} == {"http: ConnectionError"}
        # What `ballast run` prints then: how many wait and why, never the endpoint's address.
        waiting = undelivered(settings)
        assert waiting.startswith("5 OpenLineage event(s) not yet delivered by the http transport")
        assert "http: ConnectionError" in waiting and str(port) not in waiting
        server = _serve(port)
        try:
            _tick(defs, instance, cursor)
            _tick(defs, instance, cursor)
        finally:
            server.shutdown()
            server.server_close()
    assert all(e["sent"] for e in Outbox(settings.openlineage_outbox).events())
    assert undelivered(settings) is None
    events = validated([body for _, _, body in server.received])
    assert [e["eventType"] for e in events] == ["START", "RUNNING", "RUNNING", "RUNNING", "COMPLETE"]
    assert {e["run"]["runId"] for e in events} == {run}
    assert SECRET not in caplog.text


def test_the_transport_comes_from_the_environment_and_the_api_key_only_through_envvar(tmp_path: Path) -> None:
    env = {
        "BALLAST_HOME": str(tmp_path),
        "BALLAST_OPENLINEAGE_TRANSPORT": "HTTP",
        "BALLAST_OPENLINEAGE_URL": "http://localhost:5000",
        OPENLINEAGE_API_KEY_ENV: SECRET,
    }
    settings = Settings.from_env(env)
    assert (settings.openlineage_transport, settings.openlineage_url) == ("http", "http://localhost:5000")
    assert SECRET not in repr(settings)
    export = OpenLineageExport.from_settings(settings)
    assert isinstance(export.api_key, dg.EnvVar) and export.api_key.env_var_name == OPENLINEAGE_API_KEY_ENV
    assert (
        Settings.from_env({"BALLAST_HOME": str(tmp_path)}).openlineage_file
        == tmp_path / "lineage" / "openlineage.jsonl"
    )
    with pytest.raises(SettingsError, match="BALLAST_OPENLINEAGE_URL"):
        Settings.from_env({**env, "BALLAST_OPENLINEAGE_URL": "localhost:5000"})
    with pytest.raises(SettingsError, match="BALLAST_OPENLINEAGE_TRANSPORT='kafka' is not one of file, http, none"):
        Settings.from_env({**env, "BALLAST_OPENLINEAGE_TRANSPORT": "kafka"})


def test_transport_none_exports_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", openlineage_transport="none")
    settings.ensure_dirs()
    defs = _defs(settings)
    with _instance(tmp_path) as instance:
        _run(defs, instance)
        _, message = _tick(defs, instance, None)
    assert message.startswith("0 OpenLineage event(s) built")
    assert not settings.openlineage_file.exists() and not settings.openlineage_outbox.exists()
