"""The debt register (register.yaml): dependencies and warnings Ballast knows about, each with a reason and a plan."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ballast.audit.scoring import Debt, warning_scope
from ballast.audit.warning_capture import WarningRecord

REGISTER_FILE = Path(__file__).with_name("register.yaml")
DEPENDENCY_FIELDS = ("package", "status", "reason", "plan")
WARNING_FIELDS = ("category", "match", "reason", "plan")


class RegisterError(ValueError):
    """The register file cannot be read; the message names the file and the entry."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML keeps the last of two equal keys; in the register that hides an entry's own reason or plan."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class Register:
    dependencies: tuple[dict, ...]
    warnings: tuple[dict, ...]

    def entry_for(self, record: WarningRecord) -> int | None:
        """The register's warning entry that records this warning (same category, message matching its pattern)."""
        for number, entry in enumerate(self.warnings):
            if entry["category"] == record.category and re.search(entry["match"], record.message):
                return number
        return None

    def known(self, record: WarningRecord) -> bool:
        return self.entry_for(record) is not None


def _entries(doc: dict, section: str, fields: tuple[str, ...], path: Path) -> tuple[dict, ...]:
    entries = doc.get(section) or []
    if not isinstance(entries, list):
        raise RegisterError(f"{path}: '{section}' must be a list")
    for number, entry in enumerate(entries, 1):
        missing = [f for f in fields if not isinstance(entry, dict) or not entry.get(f)]
        if missing:
            raise RegisterError(f"{path}: {section} entry {number} lacks {', '.join(missing)}")
    return tuple(entries)


def _one_line(exc: Exception) -> str:
    """A YAML error as its problem and line; PyYAML's own text quotes the source over several lines."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        return f"{exc.problem} at line {exc.problem_mark.line + 1}"
    return str(exc)


def load_register(path: Path = REGISTER_FILE) -> Register:
    try:
        doc = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RegisterError(f"the debt register {path} cannot be read ({_one_line(exc)})") from None
    if not isinstance(doc, dict):
        raise RegisterError(f"{path}: expected a mapping with 'dependencies' and 'warnings'")
    register = Register(
        dependencies=_entries(doc, "dependencies", DEPENDENCY_FIELDS, path),
        warnings=_entries(doc, "warnings", WARNING_FIELDS, path),
    )
    for entry in register.warnings:
        try:
            re.compile(entry["match"])
        except re.error as exc:
            raise RegisterError(
                f"{path}: warning pattern {entry['match']!r} is not a regular expression ({exc})"
            ) from None
    return register


def debts(records: Sequence[WarningRecord], register: Register, layers: Sequence[str]) -> list[Debt]:
    """Every dependency-freshness finding: each unrecorded warning site, and each register entry once per scope.

    A registered warning raised at five sites of one layer is one known debt of that
    layer: the register records it once, with one plan.
    """
    found: list[Debt] = []
    known: set[tuple[int, str | None]] = set()
    for r in records:
        if not r.attributed:
            continue
        scope = warning_scope(r.file, layers)
        entry = register.entry_for(r)
        if entry is None:
            found.append(Debt(f"{r.category} at {r.site}: {r.message}", scope, known=False))
        elif (entry, scope) not in known:
            known.add((entry, scope))
            found.append(Debt(f"{r.category}: {register.warnings[entry]['match']}", scope, known=True))
    for entry in register.dependencies:
        what = f"{entry['package']} ({entry['status']})"
        scopes = [layer for layer in entry.get("layers") or [] if layer in layers] or [None]
        found += [Debt(what, layer, known=True) for layer in scopes]
    return found
