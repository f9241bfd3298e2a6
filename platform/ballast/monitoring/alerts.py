"""Check-failure alerts: what an alert says, where it goes, and delivery that never drops one (no Dagster here).

Dagster OSS has no alerting on asset-check failures. The sensor in monitoring/ turns
failed check evaluations into `Alert`s; `Outbox` delivers them to every sink, remembers
what each sink has received (one alert per check and partition, ever), and keeps what
failed for the next tick. Sink addresses are secrets: they never appear in an alert, a
log line or an error message.
"""

from __future__ import annotations

import json
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


class DeliveryError(RuntimeError):
    """A sink could not take an alert; the message names the sink, never its address."""


class Sink(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


@dataclass
class JsonlSink:
    """The default sink: one JSON line per alert in a local file."""

    path: Path
    name: str = "alert_log"

    def send(self, alert: Alert) -> None:
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

    def body(self, alert: Alert) -> dict:
        return alert.as_dict()

    def send(self, alert: Alert) -> None:
        _post(self.name, self.url, self.body(alert), self.timeout)


@dataclass
class SlackSink(WebhookSink):
    """A Slack incoming webhook: the alert as a message."""

    name: str = "slack"

    def body(self, alert: Alert) -> dict:
        text = (
            f":rotating_light: *{alert.severity}* `{alert.check}` failed on `{alert.asset}`"
            f" ({alert.partition})\n{alert.summary}\n<{alert.url}|Open in Dagster>"
        )
        return {"text": text}


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

    def deliver(self, new: list[Alert], sinks: list[Sink]) -> tuple[list[str], list[str]]:
        """Send new alerts and retry pending ones on every sink; returns (sent, failed) as 'sink: key' lines."""
        state = self._load()
        for alert in new:
            state["pending"].setdefault(alert.key, alert.as_dict())
        sent, failed = [], []
        for key, record in sorted(state["pending"].items()):
            alert = Alert(**{k: v for k, v in record.items() if k != "key"})
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
