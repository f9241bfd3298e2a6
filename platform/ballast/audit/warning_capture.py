"""Deprecation, superseded-API, Beta and Preview warnings raised through Ballast's own calls, with their call sites.

`capture()` records every such warning raised inside it, whatever the filters outside
say, and attributes it to the innermost frame in the Ballast package: the line of
Ballast that called the API. A warning raised with no Ballast frame on the stack (a
library warning about itself) is kept as unattributed: reported, not counted.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import inspect
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dagster as dg

# The categories that mean "this API is going away, changing or not yet stable".
CATEGORIES: tuple[type[Warning], ...] = (
    DeprecationWarning,
    PendingDeprecationWarning,
    FutureWarning,
    dg.BetaWarning,
    dg.PreviewWarning,
    dg.SupersessionWarning,
)
PACKAGE_DIR = Path(__file__).resolve().parents[1]
_THIS_FILE = Path(__file__).resolve()
UNATTRIBUTED = ""


@dataclass(frozen=True)
class WarningRecord:
    """One warning at one Ballast call site; `file` is relative to the package, empty when unattributed."""

    category: str
    message: str
    file: str
    line: int
    function: str
    source: str = "load"
    run_id: str = ""
    raised_at: str = ""

    @property
    def attributed(self) -> bool:
        return self.file != UNATTRIBUTED

    @property
    def site(self) -> str:
        return f"{self.file}:{self.line}" if self.attributed else "(no Ballast frame)"

    def identity(self) -> tuple[str, str, str, int]:
        """What makes two records the same warning: many raises at one site are one finding."""
        return (self.category, self.message, self.file, self.line)


@dataclass
class Captured:
    """The records of one capture, one per distinct warning and site, in the order first raised."""

    records: list[WarningRecord] = field(default_factory=list)

    @property
    def attributed(self) -> list[WarningRecord]:
        return [r for r in self.records if r.attributed]

    @property
    def unattributed(self) -> list[WarningRecord]:
        return [r for r in self.records if not r.attributed]


def _ballast_frame() -> inspect.FrameInfo | None:
    """The innermost frame of the stack that lies in the Ballast package, this module excepted."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            path = Path(frame.f_code.co_filename)
            if path.is_absolute() and path != _THIS_FILE and path.is_relative_to(PACKAGE_DIR):
                return inspect.FrameInfo(frame, str(path), frame.f_lineno, frame.f_code.co_name, None, None)
            frame = frame.f_back
    finally:
        del frame
    return None


@contextmanager
def capture(source: str = "load") -> Iterator[Captured]:
    """Record the warnings of CATEGORIES raised inside the block, each at its innermost Ballast call site.

    Other warnings go to the handler that was in place; the filters and handler are
    restored on exit (warnings.catch_warnings).
    """
    found = Captured()
    seen: set[tuple[str, str, str, int]] = set()
    with warnings.catch_warnings():
        previous = warnings.showwarning
        for category in CATEGORIES:
            warnings.simplefilter("always", category)

        def record(message, category, filename, lineno, file=None, line=None) -> None:
            if not issubclass(category, CATEGORIES):
                previous(message, category, filename, lineno, file, line)
                return
            frame = _ballast_frame()
            entry = WarningRecord(
                category=category.__name__,
                message=str(message),
                file=Path(frame.filename).relative_to(PACKAGE_DIR).as_posix() if frame else UNATTRIBUTED,
                line=frame.lineno if frame else 0,
                function=frame.function if frame else "",
                source=source,
                raised_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            )
            if entry.identity() not in seen:
                seen.add(entry.identity())
                found.records.append(entry)

        warnings.showwarning = record
        yield found


def append_run_warnings(path: Path, records: list[WarningRecord], run_id: str) -> None:
    """Append a run's attributed records to the JSONL log, one line each, under an exclusive lock.

    One write per record batch with O_APPEND: a reader sees whole lines or, after a crash,
    at most one torn last line, which `read_run_warnings` skips.
    """
    lines = "".join(json.dumps(asdict(r) | {"run_id": run_id, "source": "run"}) + "\n" for r in records if r.attributed)
    if not lines:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A torn last line from a crashed writer would swallow this batch's first line.
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            lines = "\n" + lines
        os.write(fd, lines.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_run_warnings(path: Path, since: dt.datetime) -> list[WarningRecord]:
    """The run warnings raised at or after `since`, one per distinct warning and site; damaged lines are skipped."""
    if not path.is_file():
        return []
    found: dict[tuple[str, str, str, int], WarningRecord] = {}
    for text in path.read_text(errors="replace").splitlines():
        try:
            record = WarningRecord(**json.loads(text))
            raised = dt.datetime.fromisoformat(record.raised_at)
        except (ValueError, TypeError):
            continue
        if raised >= since:
            found.setdefault(record.identity(), record)
    return list(found.values())
