"""The debt scorecard as a pure function of a facts table: four dimensions per asset, a debt index, layers, overall.

Nothing here reads Dagster, dbt or files: `facts.py` gathers the facts, this module
scores them, so every formula is tested on hand-made facts. The formulas are written out
in the README ("Debt scorecard").
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import pandas as pd

DIMENSIONS = ("documentation", "coverage", "freshness", "error_handling")
INDEX = "debt_index"
# Dependency freshness: what one unrecorded warning site, or one register entry, in an asset's scope costs.
UNRECORDED_COST = 0.5
KNOWN_DEBT_COST = 0.05
# Mean time to recovery scores 1 for an instant recovery and 0 at a day or more.
MTTR_BUDGET_HOURS = 24.0
# Failure rate and recovery are judged over this many days of the instance's history.
WINDOW_DAYS = 30


@dataclass(frozen=True)
class AssetFacts:
    """What the scorecard knows of one asset. None / 0 counts mean "does not apply" where noted."""

    key: str
    layer: str
    described: bool
    checks: int
    checks_described: int
    touches_external: bool
    retry_handled: bool  # a retry policy on its op, or NO_RETRY_REASON metadata
    dbt_model_described: bool | None = None  # None: not a dbt model
    dbt_columns: int = 0
    dbt_columns_described: int = 0
    dbt_columns_tested: int = 0  # by a dbt test or by a check of the dataset's Soda contract
    contract_columns: int = 0  # 0: no Soda contract
    contract_columns_checked: int = 0
    features: int = 0  # the feature service's features, counted on the features layer's assets
    features_described: int = 0
    attempts: int = 0  # runs that tried to materialize it in the window
    failures: int = 0
    mttr_hours: float | None = None  # None: no failure in the window
    unrecorded_warnings: int = 0
    known_debt: int = 0


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def documentation(f: AssetFacts) -> float:
    items = [float(f.described)]
    if f.dbt_model_described is not None:
        items += [float(f.dbt_model_described), _share(f.dbt_columns_described, f.dbt_columns)]
    if f.features:
        items.append(_share(f.features_described, f.features))
    if f.checks:
        items.append(_share(f.checks_described, f.checks))
    return statistics.fmean(items)


def coverage(f: AssetFacts) -> float:
    items = [float(f.checks > 0)]
    if f.dbt_model_described is not None:
        items.append(_share(f.dbt_columns_tested, f.dbt_columns))
    if f.contract_columns:
        items.append(_share(f.contract_columns_checked, f.contract_columns))
    return statistics.fmean(items)


def freshness(f: AssetFacts) -> float:
    return max(0.0, 1.0 - UNRECORDED_COST * f.unrecorded_warnings - KNOWN_DEBT_COST * f.known_debt)


def error_handling(f: AssetFacts) -> float:
    items = [
        1.0 - _share(f.failures, f.attempts),
        1.0 if f.mttr_hours is None else max(0.0, 1.0 - f.mttr_hours / MTTR_BUDGET_HOURS),
    ]
    if f.touches_external:
        items.append(float(f.retry_handled))
    return statistics.fmean(items)


SCORERS = {
    "documentation": documentation,
    "coverage": coverage,
    "freshness": freshness,
    "error_handling": error_handling,
}


def score_assets(facts: Sequence[AssetFacts]) -> pd.DataFrame:
    """One row per asset: its facts, the four dimension scores and the index, worst index first."""
    rows = []
    for f in facts:
        scores = {name: scorer(f) for name, scorer in SCORERS.items()}
        rows.append({"asset": f.key, "layer": f.layer, **scores, INDEX: statistics.fmean(scores.values())})
    columns = ["asset", "layer", *DIMENSIONS, INDEX]
    card = pd.DataFrame(rows, columns=columns)
    return card.sort_values([INDEX, "asset"], kind="stable").reset_index(drop=True)


def by_layer(card: pd.DataFrame) -> pd.DataFrame:
    """One row per layer: the mean of its assets' scores, worst index first."""
    layers = card.groupby("layer", as_index=False)[[*DIMENSIONS, INDEX]].mean()
    return layers.sort_values([INDEX, "layer"], kind="stable").reset_index(drop=True)


def overall(card: pd.DataFrame) -> dict[str, float]:
    """The four dimensions and the index over every asset (each asset weighs the same)."""
    if card.empty:
        return dict.fromkeys((*DIMENSIONS, INDEX), 1.0)
    return {name: float(card[name].mean()) for name in (*DIMENSIONS, INDEX)}


def recovery(attempts: Sequence[tuple[float, bool]], now: float) -> tuple[int, int, float | None]:
    """Runs, failed runs and mean time to recovery (hours) from (timestamp, succeeded) per run.

    A recovery episode starts at the first failure after a success (or at the first
    attempt) and ends at the next success; one still open at `now` lasts until `now`.
    """
    ordered = sorted(attempts)
    failures = sum(1 for _, ok in ordered if not ok)
    durations: list[float] = []
    failing_since: float | None = None
    for at, ok in ordered:
        if not ok and failing_since is None:
            failing_since = at
        elif ok and failing_since is not None:
            durations.append(at - failing_since)
            failing_since = None
    if failing_since is not None:
        durations.append(now - failing_since)
    mttr = statistics.fmean(durations) / 3600 if durations else None
    return len(ordered), failures, mttr


def warning_scope(file: str, layers: Sequence[str]) -> str | None:
    """The layer whose assets a warning at `file` (relative to the package) weighs on; None: every asset."""
    head = file.split("/", 1)[0]
    return head if "/" in file and head in layers else None


@dataclass(frozen=True)
class Debt:
    """A finding of dependency freshness: a warning site or a register entry, and where it weighs."""

    what: str
    layer: str | None  # None: shared code, every asset
    known: bool


def with_debt(facts: Sequence[AssetFacts], debts: Sequence[Debt]) -> list[AssetFacts]:
    """The facts with each asset's unrecorded warnings and known debt in its scope counted."""
    out = []
    for f in facts:
        scoped = [d for d in debts if d.layer is None or d.layer == f.layer]
        out.append(
            AssetFacts(
                **{
                    **asdict(f),
                    "unrecorded_warnings": sum(1 for d in scoped if not d.known),
                    "known_debt": sum(1 for d in scoped if d.known),
                }
            )
        )
    return out


def gate_failures(
    totals: dict[str, float],
    targets: dict[str, float],
    min_index: float,
    unrecorded: int,
    fail_under: float | None = None,
) -> list[str]:
    """Why the scorecard fails its gate, one line each; empty when it passes.

    With `fail_under` the overall index is the only gate; without it the overall index
    must reach `min_index`, every dimension its target, and no warning may be unrecorded.
    """
    if fail_under is not None:
        index = totals[INDEX]
        return [f"overall debt index {index:.3f} is below --fail-under {fail_under:g}"] if index < fail_under else []
    failed = []
    if totals[INDEX] < min_index:
        failed.append(f"overall debt index {totals[INDEX]:.3f} is below {min_index:g}")
    for name in DIMENSIONS:
        if totals[name] < targets[name]:
            failed.append(f"{name} {totals[name]:.3f} misses its target {targets[name]:g}")
    if unrecorded:
        failed.append(
            f"{unrecorded} deprecation/Beta/Preview warning(s) raised through Ballast are not in the register"
        )
    return failed
