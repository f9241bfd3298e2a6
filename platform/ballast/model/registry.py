"""Model registry on disk: one directory per version with the model, its hash and metadata.

Models are stored with skops, which does not execute code on load; loading verifies
the file's SHA-256 and accepts only scikit-learn and NumPy types.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ballast.common.atomic import write_atomic

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.")
_VERSION = re.compile(r"^v(\d{4,})$")


class RegistryError(Exception):
    """A model version is missing, tampered with, or holds types that are not trusted."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path
    metadata: dict[str, Any]


def _versions_dir(root: Path, name: str) -> Path:
    return root / name


def versions(root: Path, name: str) -> list[ModelVersion]:
    base = _versions_dir(root, name)
    if not base.is_dir():
        return []
    found = []
    for path in sorted(base.iterdir(), key=lambda p: p.name):
        if not _VERSION.match(path.name):
            continue
        fix = f"restore it, or move the folder {path} out of the registry"
        # save() renames a complete folder into place, so a version without metadata was damaged later.
        if not (path / METADATA_FILE).is_file():
            raise RegistryError(f"{path / METADATA_FILE} is missing; {fix}")
        found.append(ModelVersion(name, path.name, path, _read_json(path / METADATA_FILE, dict, fix)))
    return found


def _read_json(path: Path, kind: type, fix: str) -> Any:
    """A registry file's JSON, or a RegistryError naming the file and the fix; never a traceback."""
    try:
        value = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path} is damaged (not JSON: {exc}); {fix}") from None
    if not isinstance(value, kind):
        raise RegistryError(f"{path} is damaged (a JSON {type(value).__name__}, not an object); {fix}")
    return value


def latest(root: Path, name: str) -> ModelVersion | None:
    found = versions(root, name)
    return found[-1] if found else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _skops_io():
    # Imported where a model is written or read: importing skops lists every scikit-learn
    # type (about 3 s), which every process that builds the definitions would pay.
    import skops.io

    return skops.io


def save(root: Path, name: str, model: Any, metadata: dict[str, Any]) -> ModelVersion:
    """Write a new version; the directory appears complete or not at all."""
    base = _versions_dir(root, name)
    base.mkdir(parents=True, exist_ok=True)
    numbers = [int(_VERSION.match(v.version).group(1)) for v in versions(root, name)]
    version = f"v{(max(numbers) + 1 if numbers else 1):04d}"
    # A fresh staging folder: one left by a killed run must not block this save (recovery removes it).
    staging = Path(tempfile.mkdtemp(dir=base, prefix=f".{version}.", suffix=".tmp"))
    staging.chmod(0o755)  # mkdtemp's 0700 would make the version readable by its owner only
    sio = _skops_io()
    sio.dump(model, staging / MODEL_FILE)
    full = {
        **metadata,
        "name": name,
        "version": version,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "sha256": _sha256(staging / MODEL_FILE),
    }
    (staging / METADATA_FILE).write_text(json.dumps(full, indent=2, sort_keys=True))
    staging.rename(base / version)
    return ModelVersion(name, version, base / version, full)


def load(model_version: ModelVersion) -> Any:
    path = model_version.path / MODEL_FILE
    if not path.is_file():
        raise RegistryError(
            f"model {model_version.name} {model_version.version}: {path} is missing;"
            " restore it, or promote another version"
        )
    if _sha256(path) != model_version.metadata.get("sha256"):
        raise RegistryError(
            f"model {model_version.name} {model_version.version}: SHA-256 does not match its metadata ({path} is"
            " damaged or replaced); restore it, or promote another version"
        )
    sio = _skops_io()
    untrusted = sio.get_untrusted_types(file=path)
    refused = [t for t in untrusted if not t.startswith(TRUSTED_PREFIXES)]
    if refused:
        raise RegistryError(
            f"model {model_version.name} {model_version.version} holds untrusted types: {', '.join(refused)}"
        )
    return sio.load(path, trusted=untrusted)


CHAMPION_FILE = "champion.json"


def get(root: Path, name: str, version: str) -> ModelVersion:
    for found in versions(root, name):
        if found.version == version:
            return found
    known = ", ".join(v.version for v in versions(root, name)) or "none"
    raise RegistryError(f"model {name} has no version {version!r} (versions: {known})")


def annotate(model_version: ModelVersion, **fields: Any) -> ModelVersion:
    """Add fields (evaluation, gate results, overrides) to a version's metadata; the model file is untouched."""
    metadata = {**model_version.metadata, **fields}
    write_atomic(model_version.path / METADATA_FILE, json.dumps(metadata, indent=2, sort_keys=True, default=str))
    return ModelVersion(model_version.name, model_version.version, model_version.path, metadata)


def _pointer(root: Path, name: str) -> dict[str, Any]:
    path = _versions_dir(root, name) / CHAMPION_FILE
    if not path.is_file():
        return {"version": None, "history": []}
    fix = "restore it, or delete it and choose the champion again with `ballast model promote VERSION --reason ...`"
    pointer = _read_json(path, dict, fix)
    if not isinstance(pointer.get("history"), list) or "version" not in pointer:
        raise RegistryError(f"{path} is damaged (no version and history); {fix}")
    return pointer


def champion(root: Path, name: str) -> ModelVersion | None:
    version = _pointer(root, name)["version"]
    if version is None:
        return None
    found = {v.version: v for v in versions(root, name)}
    if version not in found:
        raise RegistryError(
            f"{_versions_dir(root, name) / CHAMPION_FILE} names champion {version!r}, but the registry has no such"
            " version; restore it, or choose the champion with `ballast model promote VERSION --reason ...`"
        )
    return found[version]


def champion_history(root: Path, name: str) -> list[dict[str, Any]]:
    return _pointer(root, name)["history"]


def promote(
    root: Path,
    name: str,
    version: str,
    reason: str,
    run_id: str | None = None,
    override: bool = False,
    rollback: bool = False,
) -> ModelVersion:
    """Make `version` the champion, recording who, why and whether gates were overridden; one atomic switch."""
    chosen = get(root, name, version)
    pointer = _pointer(root, name)
    entry = {
        "version": version,
        "previous": pointer["version"],
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "reason": reason,
        "run_id": run_id,
        "override": override,
        "rollback": rollback,
    }
    pointer = {"version": version, "history": [*pointer["history"], entry]}
    write_atomic(_versions_dir(root, name) / CHAMPION_FILE, json.dumps(pointer, indent=2))
    return chosen


def previous_champion(root: Path, name: str) -> ModelVersion:
    """The champion that the current one replaced when it was promoted: what a rollback restores."""
    pointer = _pointer(root, name)
    current = pointer["version"]
    promoted = [h for h in pointer["history"] if h["version"] == current and not h.get("rollback")]
    previous = promoted[-1]["previous"] if promoted else None
    if previous is None:
        raise RegistryError(f"model {name} has no previous champion to roll back to")
    return get(root, name, previous)


def rollback(root: Path, name: str, reason: str = "rollback") -> ModelVersion:
    """Restore the champion that the current one replaced when it was promoted (repeat to go further back)."""
    return promote(root, name, previous_champion(root, name).version, reason, rollback=True)
