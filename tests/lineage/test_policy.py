"""The lineage policy: a served feature without a description or a path back to raw fails it, at definitions time and as a check."""

import copy
import dataclasses
import time

import dagster as dg
from feast import FeatureService

from ballast.common.metadata import COLUMN_LINEAGE, column_lineage
from ballast.features.assets import FEATURE_REGISTRY, FEATURES_PARQUET, FeatureStoreResource
from ballast.lineage.columns import ColumnGraph, service_features
from ballast.lineage.policy import LINEAGE_POLICY_CHECK, evaluate, lineage_policy_check, violations
from tests.lineage.conftest import Lineage


def test_the_repository_passes_the_policy(lineage: Lineage) -> None:
    verdicts = evaluate(lineage.defs, lineage.features)
    assert len(verdicts) == len(lineage.features) > 0
    assert violations(lineage.defs, lineage.features) == []


def test_a_feature_without_description_fails_the_policy(lineage: Lineage) -> None:
    # A copy of feature_repo/'s objects, one Field's description removed; the files stay as they are.
    objects = copy.deepcopy(lineage.feast_objects)
    service = next(o for o in objects if isinstance(o, FeatureService))
    field = next(f for p in service.feature_view_projections for f in p.features if f.name == "avg_amount_30d")
    field.description = ""
    failing = violations(lineage.defs, service_features(objects, lineage.settings.lake_dir))
    assert [(str(v.feature), v.described, v.reaches_raw) for v in failing] == [("churn_v1:avg_amount_30d", False, True)]


def test_a_feature_whose_lineage_stops_short_of_raw_fails_the_policy(lineage: Lineage) -> None:
    # The lake export with no column lineage: no served feature can be followed to raw any more.
    def drop_lineage(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key != FEATURES_PARQUET:
            return spec
        return spec.merge_attributes(metadata={COLUMN_LINEAGE: column_lineage({})})

    broken = dg.Definitions(assets=dg.map_asset_specs(drop_lineage, lineage.defs.assets or []))
    failing = violations(broken, lineage.features)
    assert {v.feature.name for v in failing} == {f.name for f in lineage.features}
    assert not any(v.reaches_raw for v in failing) and all(v.described for v in failing)
    # A feature served from a source that is no asset has no path either.
    orphan = dataclasses.replace(lineage.features[0], source=None)
    assert [v.feature for v in violations(lineage.defs, [orphan])] == [orphan]


def test_the_check_is_in_the_definitions_with_error_severity(lineage: Lineage) -> None:
    key = dg.AssetCheckKey(FEATURE_REGISTRY, LINEAGE_POLICY_CHECK)
    spec = lineage.defs.resolve_asset_graph().get_check_spec(key)
    assert spec.description and "churn_v1" in spec.description


def test_the_check_runs_for_real_on_a_home(lineage: Lineage) -> None:
    check = lineage_policy_check(ColumnGraph.from_defs(lineage.defs), lineage.settings)
    started = time.perf_counter()
    result = dg.materialize(
        [check, dg.AssetSpec(FEATURE_REGISTRY)],
        selection=dg.AssetSelection.checks(check),
        resources={"feature_store": FeatureStoreResource(home=str(lineage.settings.home))},
    )
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["features_failing"].value == 0
    table = evaluation.metadata["lineage"].value
    assert "churn_v1:avg_amount_30d" in table and "amount, transaction_id" in table
    assert time.perf_counter() - started < 30
