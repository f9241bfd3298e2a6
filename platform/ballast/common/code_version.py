"""Code versions for Python assets: a hash of the source files that compute them.

dbt assets get theirs from dagster-dbt (the model's SQL); Python assets get one here,
so a model's lineage names the exact code of every step behind it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType


def of_sources(*sources: ModuleType | Path) -> str:
    digest = hashlib.sha256()
    for source in sources:
        path = Path(source.__file__) if isinstance(source, ModuleType) else source
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
