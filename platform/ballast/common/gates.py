"""Checks that withhold their asset when they fail, instead of failing the run.

A check declared blocking fails its step, hence the run, and Dagster then shows every check
the run never reached as "Execution failed". A gate is verified in the step that builds its
asset: when one of its checks fails with ERROR severity the step records the results but not
the asset, so the steps below are skipped (their checks read "Skipped"), the run succeeds,
and the asset's partitions stay missing: the next run builds them, and verifies them, again.
"""

from collections.abc import Sequence
from typing import Any, Protocol

import dagster as dg

# On a failed check of a gate: what it withheld. `ballast run` reads it to report the run blocked.
WITHHELD = "withheld"


class Gate(Protocol):
    asset_key: dg.AssetKey
    specs: Sequence[dg.AssetCheckSpec]

    def verify(self, run_tags: dict[str, str], warehouse: Any) -> list[dg.AssetCheckResult]: ...


def gate_spec(name: str, asset_key: dg.AssetKey, description: str) -> dg.AssetCheckSpec:
    """A gate's check. Dagster's UI calls it "non-blocking" (it does not fail the run): its description says what it stops."""
    return dg.AssetCheckSpec(
        name,
        asset=asset_key,
        description=f"{description} Gate: when it fails, {asset_key.to_user_string()} is withheld"
        " for the run's days and what depends on it is skipped.",
    )


def judge(asset_key: dg.AssetKey, results: Sequence[dg.AssetCheckResult]) -> tuple[bool, list[dg.AssetCheckResult]]:
    """Whether the results withhold `asset_key`, and the results with each failed one saying so."""
    blocked = any(not r.passed and r.severity == dg.AssetCheckSeverity.ERROR for r in results)
    note = f"{asset_key.to_user_string()} not materialized for this run's days; what depends on it was skipped"
    return blocked, [
        dg.AssetCheckResult(
            asset_key=r.asset_key,
            check_name=r.check_name,
            passed=r.passed,
            severity=r.severity,
            description=r.description,
            metadata={**r.metadata, WITHHELD: note},
        )
        if blocked and not r.passed and r.severity == dg.AssetCheckSeverity.ERROR
        else r
        for r in results
    ]


def withholding_checks(result: dg.ExecuteInProcessResult) -> list[dg.AssetCheckEvaluation]:
    """The checks of gates that failed in a run and withheld their asset (the run itself succeeded)."""
    return [e for e in result.get_asset_check_evaluations() if not e.passed and WITHHELD in e.metadata]
