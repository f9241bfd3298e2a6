"""One evaluation of the debt scorecard: facts gathered, warnings and register joined, every scope scored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from ballast.audit import facts as facts_module
from ballast.audit.register import REGISTER_FILE, debts, load_register
from ballast.audit.scoring import (
    DIMENSIONS,
    INDEX,
    WINDOW_DAYS,
    by_layer,
    gate_failures,
    overall,
    score_assets,
    with_debt,
)
from ballast.audit.warning_capture import WarningRecord, read_run_warnings
from ballast.model.keys import MODEL_KEY
from ballast.settings import Settings


def targets(settings: Settings) -> dict[str, float]:
    return {
        "documentation": settings.audit_target_documentation,
        "coverage": settings.audit_target_coverage,
        "freshness": settings.audit_target_freshness,
        "error_handling": settings.audit_target_error_handling,
    }


@dataclass(frozen=True)
class Scorecard:
    evaluated_at: dt.datetime
    assets: pd.DataFrame  # one row per asset, worst index first
    layers: pd.DataFrame
    totals: dict[str, float]
    targets: dict[str, float]
    min_index: float
    warnings: list[WarningRecord]  # attributed, one per distinct warning and site
    known: list[bool]  # per warning: recorded in the register
    unattributed: list[WarningRecord]
    dependencies: list[str]  # register entries: "package (status)"
    unchecked_model_path: list[str]  # assets upstream of the model without any check

    @property
    def unrecorded(self) -> int:
        return sum(1 for k in self.known if not k)

    def gate(self, fail_under: float | None = None) -> list[str]:
        return gate_failures(self.totals, self.targets, self.min_index, self.unrecorded, fail_under)

    def history_rows(self, evaluation_id: str) -> pd.DataFrame:
        """One row per scope (asset, layer, overall) for audit.debt_index_history."""
        scores = [*DIMENSIONS, INDEX]
        frames = [
            self.assets.assign(scope_kind="asset", scope_name=self.assets["asset"]),
            self.layers.assign(scope_kind="layer", scope_name=self.layers["layer"]),
            pd.DataFrame([{**self.totals, "scope_kind": "overall", "scope_name": "overall"}]),
        ]
        rows = pd.concat([f[["scope_kind", "scope_name", *scores]] for f in frames], ignore_index=True)
        rows.insert(0, "evaluated_at", pd.Timestamp(self.evaluated_at.astimezone(dt.UTC).replace(tzinfo=None)))
        rows.insert(0, "evaluation_id", evaluation_id)
        return rows


def _distinct(records: Sequence[WarningRecord]) -> list[WarningRecord]:
    found: dict[tuple, WarningRecord] = {}
    for record in records:
        found.setdefault(record.identity(), record)
    return list(found.values())


def evaluate(
    repo: dg.RepositoryDefinition,
    settings: Settings,
    manifest_path: Path,
    load_warnings: Sequence[WarningRecord],
    instance: dg.DagsterInstance | None,
    now: dt.datetime | None = None,
    register_file: Path = REGISTER_FILE,
) -> Scorecard:
    """Score every asset of `repo` with the warnings of loading it and of the CLI runs of the last WINDOW_DAYS days."""
    now = now or dt.datetime.now(dt.UTC)
    since = now - dt.timedelta(days=WINDOW_DAYS)
    records = _distinct([*load_warnings, *read_run_warnings(settings.run_warnings_log, since)])
    attributed = [r for r in records if r.attributed]
    register = load_register(register_file)
    found = facts_module.collect(repo, facts_module.read_manifest(manifest_path), settings.contracts_dir, instance, now)
    layers = sorted({f.layer for f in found})
    card = score_assets(with_debt(found, debts(attributed, register, layers)))
    checked = {k for k, v in facts_module.check_descriptions(repo).items() if v}
    upstream = facts_module.ancestors(repo, MODEL_KEY)
    return Scorecard(
        evaluated_at=now,
        assets=card,
        layers=by_layer(card),
        totals=overall(card),
        targets=targets(settings),
        min_index=settings.audit_min_index,
        warnings=attributed,
        known=[register.known(r) for r in attributed],
        unattributed=[r for r in records if not r.attributed],
        dependencies=[f"{e['package']} ({e['status']})" for e in register.dependencies],
        unchecked_model_path=sorted(k.to_user_string() for k in upstream - checked),
    )
