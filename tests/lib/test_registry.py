"""The on-disk model registry: versions, integrity and safe loading."""

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from ballast.lib import registry


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
