"""Check-failure and run-failure alerts: what an alert says, where it goes, and delivery that never drops one (no Dagster here).

Dagster OSS has no alerting on asset-check failures. The sensors in monitoring/ turn
failed check evaluations into `Alert`s and failed runs into `RunFailureAlert`s; `Outbox`
delivers them to every sink, remembers what each sink has received (one alert per check
and partition, one per run, ever), and keeps what failed for the next tick. Sink
addresses are secrets: they never appear in an alert, a log line or an error message.
"""

from __future__ import annotations

import fcntl
import json
import re
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ballast.common.atomic import write_atomic


@dataclass(frozen=True)
class Alert:
    asset: str
    check: str
    partition: str
    severity: str
    summary: str
    url: str
    run_id: str

    @property
    def key(self) -> str:
        """One alert per check and partition: re-runs that fail again are not news."""
        return f"{self.asset}:{self.check}@{self.partition}"

    def as_dict(self) -> dict:
        return asdict(self) | {"key": self.key}

    def slack_text(self) -> str:
        return (
            f":rotating_light: *{self.severity}* `{self.check}` failed on `{self.asset}`"
            f" ({self.partition})\n{self.summary}\n<{self.url}|Open in Dagster>"
        )


RUN_FAILURE = "run_failure"
# Bounds of a run-failure summary: a line per failed step, and the whole text.
STEP_LINE_CHARS = 200
SUMMARY_CHARS = 1000
# An error message may quote an address or a credential; neither leaves in an alert.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://\S+")
_CREDENTIAL = re.compile(r"(?i)\b(token|password|passwd|secret|api[_-]?key|authorization)\b(\s*[=:]\s*)\S+")


def redact(text: str) -> str:
    """The text with addresses and `name=value` credentials replaced."""
    return _CREDENTIAL.sub(r"\1\2<redacted>", _URL.sub("<url>", text))


def error_line(step: str, error_class: str, message: str) -> str:
    """One bounded, redacted line for a failed step: the step, the error type, its message's first line."""
    first = next((line.strip() for line in message.splitlines() if line.strip()), "")
    line = f"{step}: {error_class}: {redact(first)}" if error_class else f"{step}: {redact(first)}"
    return line if len(line) <= STEP_LINE_CHARS else line[: STEP_LINE_CHARS - 1] + "…"


@dataclass(frozen=True)
class RunFailureAlert:
    """A failed run: its job, id, failed steps, an error line per step and a link; one per run, ever."""

    job: str
    run_id: str
    steps: tuple[str, ...]
    summary: str
    url: str
    severity: str = "ERROR"

    @property
    def key(self) -> str:
        return f"run:{self.run_id}"

    def as_dict(self) -> dict:
        return asdict(self) | {"steps": list(self.steps), "key": self.key, "kind": RUN_FAILURE}

    def slack_text(self) -> str:
        steps = ", ".join(f"`{s}`" for s in self.steps) or "no step (the run failed outside its steps)"
        return (
            f":rotating_light: *{self.severity}* run of `{self.job}` failed ({self.run_id})\n"
            f"Failed steps: {steps}\n{self.summary}\n<{self.url}|Open in Dagster>"
        )


def from_record(record: dict) -> Alert | RunFailureAlert:
    """The alert an outbox record holds (records written before run-failure alerts have no kind)."""
    fields = {k: v for k, v in record.items() if k not in ("key", "kind")}
    if record.get("kind") == RUN_FAILURE:
        return RunFailureAlert(**fields | {"steps": tuple(fields["steps"])})
    return Alert(**fields)


class DeliveryError(RuntimeError):
    """A sink could not take an alert; the message names the sink, never its address."""


class Sink(Protocol):
    name: str

    def send(self, alert: Alert | RunFailureAlert) -> None: ...


@dataclass
class JsonlSink:
    """The default sink: one JSON line per alert in a local file."""

    path: Path
    name: str = "alert_log"

    def send(self, alert: Alert | RunFailureAlert) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(alert.as_dict(), sort_keys=True) + "\n")


def _post(name: str, url: str, body: dict, timeout: float) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status >= 300:
                raise DeliveryError(f"{name}: HTTP {response.status}")
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"{name}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        # The reason of a URLError can quote the address; keep only its kind.
        raise DeliveryError(f"{name}: {type(reason).__name__}") from None


@dataclass
class WebhookSink:
    """A generic webhook: the alert as a JSON POST."""

    url: str = field(repr=False)
    name: str = "webhook"
    timeout: float = 5.0

    def body(self, alert: Alert | RunFailureAlert) -> dict:
        return alert.as_dict()

    def send(self, alert: Alert | RunFailureAlert) -> None:
        _post(self.name, self.url, self.body(alert), self.timeout)


@dataclass
class SlackSink(WebhookSink):
    """A Slack incoming webhook: the alert as a message."""

    name: str = "slack"

    def body(self, alert: Alert | RunFailureAlert) -> dict:
        return {"text": alert.slack_text()}


@dataclass
class Outbox:
    """Delivery state on disk: which sink has which alert, and what waits for a retry."""

    path: Path

    def _load(self) -> dict:
        if self.path.is_file():
            return json.loads(self.path.read_text())
        return {"delivered": {}, "pending": {}}

    def _save(self, state: dict) -> None:
        write_atomic(self.path, json.dumps(state, sort_keys=True))

    def deliver(self, new: list[Alert | RunFailureAlert], sinks: list[Sink]) -> tuple[list[str], list[str]]:
        """Send new alerts and retry pending ones on every sink; returns (sent, failed) as 'sink: key' lines."""
        # Two alert sensors share this outbox and may tick at once: one delivers at a time.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._deliver(new, sinks)

    def _deliver(self, new: list[Alert | RunFailureAlert], sinks: list[Sink]) -> tuple[list[str], list[str]]:
        state = self._load()
        for alert in new:
            state["pending"].setdefault(alert.key, alert.as_dict())
        sent, failed = [], []
        for key, record in sorted(state["pending"].items()):
            alert = from_record(record)
            remaining = False
            for sink in sinks:
                done = state["delivered"].setdefault(sink.name, [])
                if key in done:
                    continue
                try:
                    sink.send(alert)
                except DeliveryError as exc:
                    failed.append(f"{exc} ({key})")
                    remaining = True
                    continue
                done.append(key)
                sent.append(f"{sink.name}: {key}")
            if not remaining:
                del state["pending"][key]
        self._save(state)
        return sent, failed
