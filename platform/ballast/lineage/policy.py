"""The lineage policy: every feature a feature service serves has a description and a column path back to raw."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from tabulate import tabulate

from ballast.features.assets import FEATURE_REGISTRY, FeatureStoreResource
from ballast.features.feast_repo import FEATURE_SERVICE
from ballast.lineage.columns import ColumnGraph, ServiceFeature, service_features
from ballast.raw.assets import RAW_TRANSACTIONS
from ballast.settings import Settings

LINEAGE_POLICY_CHECK = "feature_lineage_documented"
RAW_TABLE = ".".join(RAW_TRANSACTIONS.path)


@dataclass(frozen=True)
class FeatureLineage:
    """One feature under the policy: is it described, does its lineage reach raw, from which landing columns."""

    feature: ServiceFeature
    described: bool
    reaches_raw: bool
    landing_columns: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.described and self.reaches_raw


def evaluate(defs_or_graph: dg.Definitions | ColumnGraph, features: Sequence[ServiceFeature]) -> list[FeatureLineage]:
    """Every feature with its description and lineage verdicts (pure: no instance, no warehouse, no Feast)."""
    graph = defs_or_graph if isinstance(defs_or_graph, ColumnGraph) else ColumnGraph.from_defs(defs_or_graph)
    verdicts = []
    for feature in features:
        trace = graph.trace_feature(feature)
        verdicts.append(
            FeatureLineage(
                feature,
                described=bool(feature.description.strip()),
                reaches_raw=trace.reaches(RAW_TRANSACTIONS),
                landing_columns=tuple(sorted(trace.landing_columns())),
            )
        )
    return verdicts


def violations(defs_or_graph: dg.Definitions | ColumnGraph, features: Sequence[ServiceFeature]) -> list[FeatureLineage]:
    """The features that lack a description or a lineage path back to raw/transactions."""
    return [verdict for verdict in evaluate(defs_or_graph, features) if not verdict.passed]


def markdown(verdicts: Sequence[FeatureLineage]) -> str:
    rows = [
        (
            str(v.feature),
            "yes" if v.described else "**no**",
            "yes" if v.reaches_raw else "**no**",
            ", ".join(v.landing_columns),
        )
        for v in verdicts
    ]
    return tabulate(
        rows, headers=["feature", "description", f"path reaches {RAW_TABLE}", "landing columns"], tablefmt="github"
    )


def lineage_policy_check(graph: ColumnGraph, settings: Settings) -> dg.AssetChecksDefinition:
    """The policy as an asset check on the feature registry: the graph is the definitions', Feast gives the features."""
    lake_dir: Path = settings.lake_dir

    @dg.asset_check(
        asset=FEATURE_REGISTRY,
        name=LINEAGE_POLICY_CHECK,
        description=f"Every feature of the feature service {FEATURE_SERVICE} has a description and a column lineage"
        f" path back to {RAW_TABLE} (and so to the landing columns).",
    )
    def feature_lineage_documented(feature_store: FeatureStoreResource) -> dg.AssetCheckResult:
        """Every feature of the feature service has a description and a column lineage path back to raw."""
        verdicts = evaluate(graph, service_features(feature_store.definitions(), lake_dir))
        failing = [str(v.feature) for v in verdicts if not v.passed]
        problem = f"without a description or a path to raw: {', '.join(failing)}" if failing else None
        return dg.AssetCheckResult(
            passed=bool(verdicts) and not failing,
            severity=dg.AssetCheckSeverity.ERROR,
            description=problem if verdicts else "feature_repo/ defines no feature service",
            metadata={
                "features": len(verdicts),
                "features_failing": len(failing),
                "lineage": dg.MetadataValue.md(markdown(verdicts)),
            },
        )

    return feature_lineage_documented
