"""OpenLineage export: Dagster runs read from the instance, events sent exactly once through the OpenLineage client.

Every fact (a run's start, a materialization, a check evaluation, a run's end) is
recorded in an outbox under BALLAST_HOME together with the event that carries it, in
one transaction, before anything is sent. An event is sent once and marked sent; a
fact already in the outbox is never put in a new event, so a repeated sensor tick, an
overlapping cursor or the CLI exporting the same run sends nothing twice. An event whose
sending failed stays pending and is retried first on the next export.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import RunEvent, RunState
from openlineage.client.serde import Serde
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider
from openlineage.client.transport.noop import NoopConfig, NoopTransport

from ballast.lineage import openlineage as ol
from ballast.settings import OPENLINEAGE_API_KEY_ENV, Settings

EXPORT_SENSOR = "openlineage_export_sensor"
# Run starts and ends read per tick: a first tick on a long history stays well within a sensor's time limit.
STATUS_PAGE = 20
# A down endpoint fails every event alike: stop trying after this many failures in one export.
MAX_FAILURES = 3
TERMINAL = {
    dg.DagsterEventType.RUN_SUCCESS: RunState.COMPLETE,
    dg.DagsterEventType.RUN_FAILURE: RunState.FAIL,
    dg.DagsterEventType.RUN_CANCELED: RunState.ABORT,
}
EVENT_TYPES = {
    dg.DagsterEventType.RUN_START,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.STEP_FAILURE,
    *TERMINAL,
}
SCHEMA = """
create table if not exists events (
    seq integer primary key autoincrement,
    key text unique not null,
    run_id text not null,
    event_type text not null,
    body text not null,
    sent_at real,
    attempts integer not null default 0,
    last_error text
);
create table if not exists facts (key text primary key, run_id text not null, event_key text not null);
create index if not exists facts_by_run on facts (run_id);
"""


class DeliveryError(RuntimeError):
    """The transport could not take an event; the message names the kind of failure, never an address or a key."""


@dataclass
class ExportReport:
    built: int = 0
    sent: int = 0
    failed: list[str] = field(default_factory=list)
    finished_runs: set[str] = field(default_factory=set)

    def summary(self) -> str:
        return f"{self.built} OpenLineage event(s) built, {self.sent} sent, {len(self.failed)} waiting for a retry"


class OpenLineageExport(dg.ConfigurableResource):
    """Where OpenLineage events go (file, http or none) and the outbox that sends each once. The API key is an EnvVar."""

    transport: str
    outbox: str
    file_path: str
    warehouse: str
    namespace: str
    url: str | None = None
    endpoint: str = "api/v1/lineage"
    api_key: str | None = None
    timeout_seconds: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenLineageExport:
        return cls(
            transport=settings.openlineage_transport,
            outbox=str(settings.openlineage_outbox),
            file_path=str(settings.openlineage_file),
            warehouse=str(settings.warehouse_path),
            namespace=settings.openlineage_namespace,
            url=settings.openlineage_url,
            endpoint=settings.openlineage_endpoint,
            api_key=dg.EnvVar(OPENLINEAGE_API_KEY_ENV) if settings.openlineage_api_key_set else None,
        )

    @property
    def naming(self) -> ol.Naming:
        return ol.Naming(warehouse=Path(self.warehouse), namespace=self.namespace)

    def client(self) -> OpenLineageClient:
        if self.transport == "http":
            auth = ApiKeyTokenProvider({"apiKey": self.api_key}) if self.api_key else TokenProvider({})
            # One quick try per export: what fails waits in the outbox for the next one.
            retry = {"total": 1, "connect": 1, "read": 1, "backoff_factor": 0.1}
            config = HttpConfig(
                url=self.url or "", endpoint=self.endpoint, timeout=self.timeout_seconds, auth=auth, retry=retry
            )
            transport = HttpTransport(config)
        elif self.transport == "file":
            Path(self.file_path).parent.mkdir(parents=True, exist_ok=True)
            transport = FileTransport(FileConfig(log_file_path=self.file_path, append=True))
        else:
            transport = NoopTransport(NoopConfig())
        # The events carry what Ballast knows; the client adds no git or environment facets of the cwd.
        config = {"facets": {"source_code_location": {"disabled": True}, "environment_variables": []}}
        return OpenLineageClient(transport=transport, config=config)

    def export(
        self, instance: dg.DagsterInstance, specs: Mapping[dg.AssetKey, dg.AssetSpec], run_ids: Iterable[str]
    ) -> ExportReport:
        """Record the new facts of these runs as events, then send every pending event in order."""
        report = ExportReport()
        if self.transport == "none":
            return report
        outbox = Outbox(Path(self.outbox))
        for run_id in dict.fromkeys(run_ids):
            record = instance.get_run_record_by_id(run_id)
            if record is None:
                continue
            records = _records(instance, run_id)
            report.built += outbox.record(
                run_id, lambda known, r=record, rs=records: build_events(r, rs, known, specs, self.naming)
            )
            if record.dagster_run.is_finished:
                report.finished_runs.add(run_id)
        report.sent, report.failed = outbox.send(self.client)
        return report


def asset_specs(repository: dg.RepositoryDefinition) -> dict[dg.AssetKey, dg.AssetSpec]:
    """Every asset's spec (its metadata and deps), by key."""
    definitions = {id(a): a for a in repository.assets_defs_by_key.values()}
    return {spec.key: spec for a in definitions.values() for spec in a.specs}


def _records(instance: dg.DagsterInstance, run_id: str) -> list[dg.EventLogRecord]:
    found, cursor = [], None
    while True:
        page = instance.get_records_for_run(run_id, cursor=cursor, of_type=EVENT_TYPES, limit=1000)
        found += page.records
        if not page.has_more:
            return found
        cursor = page.cursor


def _fact_key(run_id: str, record: dg.EventLogRecord) -> str | None:
    kind = record.event_log_entry.dagster_event_type
    if kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
        return f"{run_id}/materialization/{record.storage_id}"
    if kind == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
        return f"{run_id}/check/{record.storage_id}"
    return None


def _error(end: dg.EventLogRecord, records: list[dg.EventLogRecord]) -> str:
    """The run's failure message and each failed step's error (class and message; no stack trace)."""
    lines = [end.event_log_entry.message or "the run failed"]
    for record in records:
        event = record.event_log_entry.dagster_event
        if record.event_log_entry.dagster_event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error if event.step_failure_data else None
            # Dagster wraps the step's own exception: its cause is what went wrong.
            while error is not None and error.cause is not None:
                error = error.cause
            lines.append(f"{event.step_key}: {error.message.strip()}" if error else event.step_key)
    return "\n".join(lines)


def build_events(
    run: dg.RunRecord,
    records: list[dg.EventLogRecord],
    known: set[str],
    specs: Mapping[dg.AssetKey, dg.AssetSpec],
    naming: ol.Naming,
) -> list[tuple[list[str], RunEvent]]:
    """The events that carry the run's facts not yet `known`, in order, each with the fact keys it covers."""
    run_id = run.dagster_run.run_id
    start = next((r for r in records if r.event_log_entry.dagster_event_type == dg.DagsterEventType.RUN_START), None)
    facts = ol.RunFacts(
        run_id=run_id,
        job_name=run.dagster_run.job_name,
        started=start.timestamp if start else run.create_timestamp.timestamp(),
    )
    events = []
    if f"{run_id}/start" not in known:
        events.append(([f"{run_id}/start"], ol.start_event(facts, naming)))
    materialized: dict[dg.AssetKey, list] = {}
    checked: dict[dg.AssetKey, list] = {}
    for record in records:
        key = _fact_key(run_id, record)
        if key is None or key in known:
            continue
        data = record.event_log_entry.dagster_event.event_specific_data
        if isinstance(data, dg.AssetCheckEvaluation):
            checked.setdefault(data.asset_key, []).append((key, record.timestamp, data))
        else:
            materialized.setdefault(data.materialization.asset_key, []).append(
                (key, record.timestamp, data.materialization)
            )
    for found in materialized.values():
        pairs = [(t, m) for _, t, m in found]
        events.append(([k for k, _, _ in found], ol.materialization_event(facts, naming, pairs, specs)))
    for found in checked.values():
        pairs = [(t, e) for _, t, e in found]
        events.append(([k for k, _, _ in found], ol.check_event(facts, naming, pairs, specs)))
    end = next((r for r in reversed(records) if r.event_log_entry.dagster_event_type in TERMINAL), None)
    if end is not None and f"{run_id}/end" not in known:
        state = TERMINAL[end.event_log_entry.dagster_event_type]
        error = _error(end, records) if state == RunState.FAIL else None
        ended = ol.RunFacts(run_id, facts.job_name, facts.started, end.timestamp, state, error)
        events.append(([f"{run_id}/end"], ol.terminal_event(ended, naming)))
    return events


class Outbox:
    """Events on disk (SQLite): what each covers, what was sent, what waits for a retry."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode with explicit transactions: BEGIN IMMEDIATE makes a second
        # exporter (the sensor and a CLI run) wait rather than send the same event.
        con = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        con.execute("pragma journal_mode=wal")
        con.executescript(SCHEMA)
        return con

    def record(self, run_id: str, build) -> int:
        """Store the events `build(known fact keys)` returns for the run; returns how many were stored.

        Reading what is known and storing the new events is one transaction: two exporters
        never put the same fact in two events.
        """
        with closing(self._connect()) as con:
            con.execute("begin immediate")
            try:
                known = {k for (k,) in con.execute("select key from facts where run_id = ?", (run_id,))}
                events = build(known)
                for fact_keys, event in events:
                    con.execute(
                        "insert into events (key, run_id, event_type, body) values (?, ?, ?, ?)",
                        (fact_keys[0], run_id, event.eventType.value, Serde.to_json(event)),
                    )
                    con.executemany(
                        "insert into facts values (?, ?, ?)", [(k, run_id, fact_keys[0]) for k in fact_keys]
                    )
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return len(events)

    def send(self, make_client: Callable[[], OpenLineageClient]) -> tuple[int, list[str]]:
        """Send pending events oldest first; a run whose event failed waits, the other runs go on."""
        with closing(self._connect()) as con:
            pending = con.execute("select seq, key, run_id from events where sent_at is null order by seq").fetchall()
            if not pending:
                return 0, []
            client = make_client()
            try:
                return self._deliver(con, client, pending)
            finally:
                client.close()

    @staticmethod
    def _deliver(con: sqlite3.Connection, client: OpenLineageClient, pending: list) -> tuple[int, list[str]]:
        sent, failed, blocked = 0, [], set()
        for seq, key, run_id in pending:
            if run_id in blocked or len(failed) >= MAX_FAILURES:
                blocked.add(run_id)
                continue
            # Re-read under the write lock: another exporter may have sent it meanwhile.
            con.execute("begin immediate")
            try:
                row = con.execute("select body from events where seq = ? and sent_at is null", (seq,)).fetchone()
                if row is not None:
                    try:
                        _emit(client, row[0])
                    except DeliveryError as exc:
                        con.execute(
                            "update events set attempts = attempts + 1, last_error = ? where seq = ?", (str(exc), seq)
                        )
                        failed.append(f"{exc} ({key})")
                        blocked.add(run_id)
                    else:
                        con.execute(
                            "update events set sent_at = ?, attempts = attempts + 1, last_error = null where seq = ?",
                            (time.time(), seq),
                        )
                        sent += 1
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        return sent, failed

    def undelivered(self) -> tuple[int, str | None]:
        """How many events wait for a retry, and the last error of the most recent failed attempt."""
        if not self.path.exists():
            return 0, None
        with closing(self._connect()) as con:
            [(count,)] = con.execute("select count(*) from events where sent_at is null").fetchall()
            last = con.execute(
                "select last_error from events where sent_at is null and last_error is not null order by seq desc limit 1"
            ).fetchone()
        return count, last[0] if last else None

    def events(self) -> list[dict]:
        """Every event in the outbox, oldest first, with its delivery state."""
        with closing(self._connect()) as con:
            rows = con.execute(
                "select key, run_id, body, sent_at, attempts, last_error from events order by seq"
            ).fetchall()
        return [
            {"key": k, "run_id": r, "event": json.loads(b), "sent": s is not None, "attempts": a, "last_error": e}
            for k, r, b, s, a, e in rows
        ]


def _emit(client: OpenLineageClient, body: str) -> None:
    event = ol.event_from_json(body)
    if client.transport.kind == NoopTransport.kind:
        # OPENLINEAGE_DISABLED turns the client off: nothing is sent, so nothing is marked sent.
        raise DeliveryError("the OpenLineage client is disabled (OPENLINEAGE_DISABLED)")
    try:
        client.emit(event)
    except Exception as exc:
        response = getattr(exc, "response", None)
        if response is not None and getattr(response, "status_code", None):
            raise DeliveryError(f"{client.transport.kind}: HTTP {response.status_code}") from None
        # Exception texts can quote the address; keep only the kind.
        raise DeliveryError(f"{client.transport.kind}: {type(exc).__name__}") from None


STATUS_CHANGES = (dg.DagsterEventType.RUN_START, *TERMINAL)


def _status_changes(instance: dg.DagsterInstance, after: int) -> tuple[list[dg.EventLogRecord], int]:
    """Run starts and ends after storage id `after`, at most a page of each, and the id up to which none is missed."""
    pages = [
        instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type=kind, after_storage_id=after), limit=STATUS_PAGE, ascending=True
        ).records
        for kind in STATUS_CHANGES
    ]
    found = sorted((r for page in pages for r in page), key=lambda r: r.storage_id)
    if not found:
        return [], after
    # A full page may have more beyond it: read only up to the lowest last id of a full page.
    full = [page[-1].storage_id for page in pages if len(page) == STATUS_PAGE]
    cut = min(full) if full else found[-1].storage_id
    return [r for r in found if r.storage_id <= cut], cut


def export_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name=EXPORT_SENSOR,
        minimum_interval_seconds=30,
        # On by default: it starts no runs and, unless BALLAST_OPENLINEAGE_TRANSPORT says otherwise, writes a local file.
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Exports every run, materialization and check evaluation once as OpenLineage events"
        f" (BALLAST_OPENLINEAGE_TRANSPORT={settings.openlineage_transport}).",
    )
    def openlineage_export_sensor(context: dg.SensorEvaluationContext, openlineage: OpenLineageExport):
        cursor = json.loads(context.cursor) if context.cursor else {"after": 0, "open": []}
        changes, after = _status_changes(context.instance, cursor["after"])
        # Runs still going are read again each tick, so their materializations go out as they happen.
        run_ids = list(dict.fromkeys([*cursor["open"], *(r.run_id for r in changes)]))
        report = openlineage.export(context.instance, asset_specs(context.repository_def), run_ids)
        still_open = [
            run_id
            for run_id in run_ids
            if run_id not in report.finished_runs and context.instance.get_run_record_by_id(run_id) is not None
        ]
        context.update_cursor(json.dumps({"after": after, "open": still_open}))
        for line in report.failed:
            context.log.warning(f"OpenLineage delivery failed, retried next tick: {line}")
        return dg.SkipReason(report.summary())

    return openlineage_export_sensor


def undelivered(settings: Settings) -> str | None:
    """One line for the CLI when events wait in the outbox (the transport's address is not shown: it may hold a secret)."""
    if settings.openlineage_transport == "none":
        return None
    count, error = Outbox(settings.openlineage_outbox).undelivered()
    if not count:
        return None
    cause = f" (last error: {error})" if error else ""
    return (
        f"{count} OpenLineage event(s) not yet delivered by the {settings.openlineage_transport} transport{cause};"
        f" they wait in {settings.openlineage_outbox} and go out with the next run or the export sensor"
    )


def export_runs(
    settings: Settings, instance: dg.DagsterInstance, repository: dg.RepositoryDefinition, run_ids: Iterable[str]
) -> ExportReport:
    """Export these runs now (the CLI does it after each run): the same outbox as the sensor, so nothing goes twice."""
    export = OpenLineageExport.from_settings(settings).process_config_and_initialize()
    return export.export(instance, asset_specs(repository), run_ids)
