"""The on-disk model registry: versions, integrity and safe loading."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ballast.model import registry


def _model() -> LogisticRegression:
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    return LogisticRegression().fit(x, [0, 0, 1, 1])


def test_versions_increase_and_round_trip(tmp_path: Path) -> None:
    first = registry.save(tmp_path, "m", _model(), {"metrics": {"roc_auc": 0.7}})
    second = registry.save(tmp_path, "m", _model(), {"metrics": {"roc_auc": 0.8}})
    assert (first.version, second.version) == ("v0001", "v0002")
    assert registry.latest(tmp_path, "m").version == "v0002"
    loaded = registry.load(second)
    assert loaded.predict([[3.0]])[0] == 1
    assert second.metadata["metrics"] == {"roc_auc": 0.8} and len(second.metadata["sha256"]) == 64


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    saved = registry.save(tmp_path, "m", _model(), {})
    (saved.path / registry.MODEL_FILE).write_bytes(b"not the model")
    with pytest.raises(registry.RegistryError, match="SHA-256"):
        registry.load(saved)


def test_metadata_file_is_json_with_provenance(tmp_path: Path) -> None:
    saved = registry.save(tmp_path, "m", _model(), {"dagster_run_id": "abc"})
    meta = json.loads((saved.path / registry.METADATA_FILE).read_text())
    assert meta["dagster_run_id"] == "abc" and meta["version"] == "v0001" and meta["created_at"]


def test_promote_switches_the_champion_and_rollback_restores_the_previous(tmp_path: Path) -> None:
    first = registry.save(tmp_path, "m", _model(), {})
    second = registry.save(tmp_path, "m", _model(), {})
    assert registry.champion(tmp_path, "m") is None
    registry.promote(tmp_path, "m", first.version, "first model", run_id="r1")
    registry.promote(tmp_path, "m", second.version, "gates passed", run_id="r2")
    assert registry.champion(tmp_path, "m").version == second.version
    assert registry.rollback(tmp_path, "m").version == first.version
    assert registry.champion(tmp_path, "m").version == first.version
    history = registry.champion_history(tmp_path, "m")
    assert [h["version"] for h in history] == ["v0001", "v0002", "v0001"]
    assert history[1] | {"promoted_at": None} == {
        "version": "v0002",
        "previous": "v0001",
        "promoted_at": None,
        "reason": "gates passed",
        "run_id": "r2",
        "override": False,
        "rollback": False,
    }
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")] == []


def test_repeated_rollbacks_walk_back_the_promotion_chain(tmp_path: Path) -> None:
    for number in (1, 2, 3):
        saved = registry.save(tmp_path, "m", _model(), {})
        registry.promote(tmp_path, "m", saved.version, f"promotion {number}")
    assert registry.rollback(tmp_path, "m").version == "v0002"
    assert registry.rollback(tmp_path, "m").version == "v0001"
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback(tmp_path, "m")
    assert registry.champion(tmp_path, "m").version == "v0001"


def test_rollback_without_a_previous_champion_is_a_clear_error(tmp_path: Path) -> None:
    only = registry.save(tmp_path, "m", _model(), {})
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback(tmp_path, "m")
    registry.promote(tmp_path, "m", only.version, "first")
    with pytest.raises(registry.RegistryError, match="no previous champion"):
        registry.rollback(tmp_path, "m")
    with pytest.raises(registry.RegistryError, match="has no version 'v0009'"):
        registry.promote(tmp_path, "m", "v0009", "typo")


def test_annotate_adds_fields_and_keeps_the_model_verifiable(tmp_path: Path) -> None:
    saved = registry.save(tmp_path, "m", _model(), {"metrics": {"roc_auc": 0.7}})
    annotated = registry.annotate(saved, gates=[{"name": "min_quality", "passed": True}])
    reread = registry.get(tmp_path, "m", saved.version)
    assert reread.metadata["gates"] == [{"name": "min_quality", "passed": True}]
    assert reread.metadata["metrics"] == {"roc_auc": 0.7} and annotated.metadata == reread.metadata
    assert registry.load(reread).predict([[0.0]])[0] == 0
