"""The session's whole-graph run as OpenLineage: `ballast.runs.refresh` exported it, every event valid, every
materialized asset an output with its schema, every check evaluation an assertion."""

import dagster as dg

from ballast.definitions import build_defs
from ballast.lineage.export import asset_specs
from ballast.lineage.openlineage import Naming
from tests.lineage.test_openlineage_export import validated


def test_the_platform_run_is_exported_once_with_every_asset_and_check(platform) -> None:
    settings = platform.settings
    run_id = platform.result.run_id
    events = [e for e in validated(settings.openlineage_file.read_text().splitlines()) if e["run"]["runId"] == run_id]
    kinds = [e["eventType"] for e in events]
    assert kinds[0] == "START" and kinds[-1] == "COMPLETE"
    assert kinds.count("START") == 1 and kinds.count("COMPLETE") == 1 and set(kinds) == {"START", "RUNNING", "COMPLETE"}

    specs = asset_specs(build_defs(settings).get_repository_def())
    naming = Naming(settings.warehouse_path, settings.openlineage_namespace)
    outputs = {(o["namespace"], o["name"]): o for e in events for o in e["outputs"]}
    materialized = {
        e.event_specific_data.materialization.asset_key for e in platform.result.get_asset_materialization_events()
    }
    assert set(outputs) == {naming.dataset(key, specs[key]) for key in materialized}
    for key in materialized:
        schema = specs[key].metadata.get("dagster/column_schema")
        output = outputs[naming.dataset(key, specs[key])]
        if schema is not None:
            fields = output["facets"]["schema"]["fields"]
            assert [(f["name"], f.get("type")) for f in fields] == [(c.name, c.type) for c in schema.columns]
    raw = outputs[naming.dataset(dg.AssetKey(["raw", "transactions"]), specs[dg.AssetKey(["raw", "transactions"])])]
    days = (platform.end - platform.start).days + 1
    assert len(raw["outputFacets"]["subset"]["outputCondition"]["partitions"]) == days

    assertions = {
        (i["namespace"], i["name"], a["assertion"]): a["success"]
        for e in events
        for i in e["inputs"]
        for a in i.get("inputFacets", {}).get("dataQualityAssertions", {}).get("assertions", [])
    }
    evaluations = platform.result.get_asset_check_evaluations()
    assert assertions == {
        (*naming.dataset(c.asset_key, specs[c.asset_key]), c.check_name): c.passed for c in evaluations
    }


def test_the_exported_features_carry_their_column_lineage_back_to_the_clean_layer(platform) -> None:
    """The columnLineage facet of a dbt model's output is its column lineage: a feature names its clean columns."""
    settings = platform.settings
    events = validated(settings.openlineage_file.read_text().splitlines())
    specs = asset_specs(build_defs(settings).get_repository_def())
    naming = Naming(settings.warehouse_path, settings.openlineage_namespace)
    features, clean, export = (
        dg.AssetKey(["features", "customer_daily_features"]),
        dg.AssetKey(["clean", "transactions"]),
        dg.AssetKey(["features", "customer_daily_features_parquet"]),
    )
    wanted = naming.dataset(features, specs[features])
    [output] = [
        o
        for e in events
        if e["run"]["runId"] == platform.result.run_id
        for o in e["outputs"]
        if (o["namespace"], o["name"]) == wanted
    ]
    fields = output["facets"]["columnLineage"]["fields"]
    sources = {(i["namespace"], i["name"], i["field"]) for i in fields["avg_amount_30d"]["inputFields"]}
    assert (*naming.dataset(clean, specs[clean]), "amount") in sources
    # The lake export is a file dataset named by its folder, as OpenLineage names local files.
    namespace, name = naming.dataset(export, specs[export])
    assert namespace == "file" and name == str(settings.lake_dir / "features" / "customer_daily_features")
