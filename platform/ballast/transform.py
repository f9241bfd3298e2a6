"""dbt models of one layer as partitioned Dagster assets, built in one dbt run per backfill."""

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, DbtProject, build_dbt_asset_specs, dbt_assets

from ballast.common.columns import Column
from ballast.common.gates import Gate, judge
from ballast.common.metadata import COLUMN_SCHEMA, NO_RETRY_REASON, TRANSFORMATION, readable
from ballast.common.naming import key_table
from ballast.common.partitions import partition_dates
from ballast.common.retries import LOCK_RETRY_NOTE, warehouse_locked
from ballast.dbt_lineage import dbt_column_lineage, lineage_metadata, transformation
from ballast.resources import WarehouseResource, dbt_invoke, dbt_translator
from ballast.settings import WAREHOUSE_POOL, Settings

TableMetadata = Callable[[duckdb.DuckDBPyConnection, dg.AssetKey], dict]
NO_RETRY = (
    "dbt build on the local DuckDB warehouse is deterministic: a retry repeats the failing model or test;"
    f" the next run rebuilds the window (incremental models delete it first). {LOCK_RETRY_NOTE}"
)


def dbt_layer_assets(
    settings: Settings,
    project: DbtProject,
    layer: str,
    partitions_def: dg.PartitionsDefinition | None,
    table_metadata: TableMetadata | None = None,
    gates: Sequence[Gate] = (),
) -> dg.AssetsDefinition:
    """The dbt models under `models/<layer>/`, with their dbt tests as asset checks.

    A backfill of many days runs as one dbt invocation over the whole window (single-run
    backfill policy), so dbt's start-up is paid once, not once per day. An unpartitioned
    layer rebuilds its tables whole; `table_metadata` gives their figures (default: rows). Each
    model's column lineage (ballast.dbt_lineage) is on its spec and on every materialization.
    The `gates` (ballast.common.gates) are verified in the same step once dbt is done; one
    that fails withholds its asset's output.
    """
    lineage = dbt_column_lineage(project, settings)

    def build(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: WarehouseResource):
        window = partition_dates(context) if partitions_def else ()
        invoked_at = dt.datetime.now(dt.UTC)
        # dbt holds the DuckDB write lock while it runs: read the window's figures after it exits.
        # One artifacts folder per layer under BALLAST_HOME, replaced by each run (not one per run).
        # dbt's unit tests check the SQL, not the data: the test suite runs them, not every run.
        # The op's context: dagster-dbt reads the op's tags from it, deprecated on AssetExecutionContext.
        invocation = dbt_invoke(
            dbt,
            settings,
            ["build", "--exclude-resource-type", "unit_test"],
            window,
            context=context.op_execution_context,
            raise_on_error=False,
            target_path=settings.dbt_runs_dir / layer,
        )
        events = list(invocation.stream())
        withheld, results = set(), []
        for gate in gates if invocation.is_successful() else ():
            if gate.asset_key in context.selected_asset_keys:
                blocked, verified = judge(gate.asset_key, gate.verify(context.run.tags, warehouse))
                withheld |= {gate.asset_key} if blocked else set()
                results += verified
        with warehouse.connect(read_only=True) as con:
            for event in events:
                if isinstance(event, dg.Output):
                    key = context.asset_key_for_output(event.output_name)
                    if key in withheld:
                        continue
                    found = window_metadata(con, key, *window) if window else (table_metadata or row_count)(con, key)
                    event = event.with_metadata(
                        readable({**event.metadata, **found, **lineage_metadata(lineage.get(key))})
                    )
                elif isinstance(event, dg.AssetCheckResult):
                    event = event.with_metadata(readable(event.metadata))
                yield event
        yield from results
        if not invocation.is_successful():
            target = settings.dbt_runs_dir / layer
            cause = dbt_failures(target / "run_results.json", invoked_at) or f"see {target / 'dbt.log'}"
            days = f" for {window[0]} to {window[1]}" if window else ""
            failure = dg.Failure(
                f"dbt build of the {layer} layer failed{days}: {cause}",
                metadata={"dbt_artifacts": dg.MetadataValue.path(str(target))},
            )
            # dbt opens the warehouse itself: a lock held by another process is retried like the warehouse's.
            if warehouse_locked(f"{cause} {invocation.get_error()}"):
                raise warehouse.lock_retry() from failure
            raise failure

    def describe(spec: dg.AssetSpec) -> dg.AssetSpec:
        model = lineage.get(spec.key)
        known = {TRANSFORMATION: transformation(model), **lineage_metadata(model)} if model else {}
        return spec.merge_attributes(metadata={NO_RETRY_REASON: NO_RETRY, **known})

    _layer = dbt_assets(
        manifest=project.manifest_path,
        project=project,
        select=f"path:models/{layer}",
        name=f"{layer}_dbt_models",
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        dagster_dbt_translator=dbt_translator(),
        pool=WAREHOUSE_POOL,
    )(build)
    if gates:
        # dagster-dbt declares only dbt's own tests as checks: the same op, with the gates' checks added.
        _layer = dg.multi_asset(
            name=_layer.op.name,
            specs=list(_layer.specs),
            check_specs=[*_layer.check_specs, *(spec for gate in gates for spec in gate.specs)],
            can_subset=True,
            partitions_def=partitions_def,
            backfill_policy=_layer.backfill_policy,
            op_tags=_layer.op.tags,
            pool=WAREHOUSE_POOL,
        )(build)
    [described] = dg.map_asset_specs(describe, [_layer])
    return described


def dbt_failures(run_results: Path, since: dt.datetime, limit: int = 3) -> str | None:
    """dbt's own failing models and tests with their messages, in one line; None if dbt wrote no results since `since`."""
    try:
        results = json.loads(run_results.read_text())
        generated = dt.datetime.fromisoformat(results["metadata"]["generated_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if generated.tzinfo is None:
        generated = generated.replace(tzinfo=dt.UTC)  # dbt writes UTC
    # A stale file from an earlier invocation would blame the wrong nodes (dbt failed before writing).
    if generated < since:
        return None
    failed = [r for r in results.get("results", []) if r.get("status") in ("error", "fail", "runtime error")]
    if not failed:
        return None
    shown = []
    for result in failed[:limit]:
        kind, _, name = result["unique_id"].split(".")[:3]
        lines = [line.strip() for line in (result.get("message") or "").splitlines() if line.strip()]
        # dbt heads an error with "Runtime Error in model x (path)"; the cause is the next line.
        if len(lines) > 1 and " Error in " in f" {lines[0]}":
            lines = lines[1:]
        shown.append(f"{kind} {name} {result['status']}: {lines[0] if lines else 'no message'}")
    more = f" (and {len(failed) - limit} more)" if len(failed) > limit else ""
    return "; ".join(shown) + more


def row_count(con: duckdb.DuckDBPyConnection, key: dg.AssetKey) -> dict:
    return {"dagster/row_count": con.execute(f"select count(*) from {'.'.join(key.path)}").fetchone()[0]}


def window_metadata(con: duckdb.DuckDBPyConnection, key: dg.AssetKey, start: dt.date, end: dt.date) -> dict:
    """Rows of the materialized window (and rows per reason for a quarantine table)."""
    table = key_table(key)
    columns = {row[0] for row in con.execute(f"describe {table}").fetchall()}
    date_column = next(c for c in ("event_date", "feature_date") if c in columns)
    window = f"from {table} where {date_column} between ? and ?"
    metadata: dict = {
        "dagster/row_count": con.execute(f"select count(*) from {table}").fetchone()[0],
        "window_rows": con.execute(f"select count(*) {window}", [start, end]).fetchone()[0],
        "window": f"{start} to {end}",
    }
    if "reject_reason" in columns:
        by_reason = con.execute(
            f"select reject_reason, count(*) as rows {window} group by 1 order by 2 desc, 1", [start, end]
        ).df()
        metadata["rows_by_reason"] = dg.MetadataValue.md(by_reason.to_markdown(index=False))
    return metadata


def dbt_model_columns(project: DbtProject, table: str) -> tuple[Column, ...]:
    """The columns of the dbt model that builds the warehouse table `layer.name`, as dagster-dbt declares them.

    Their home is the model's `.yml` (name, data_type, description); the assets that hold
    the model's rows elsewhere (the lake, Spark's view, the training set) derive theirs from it.
    """
    layer, name = table.split(".")
    [spec] = build_dbt_asset_specs(
        manifest=project.manifest_path,
        dagster_dbt_translator=dbt_translator(),
        select=f"path:models/{layer}/{name}.sql",
        project=project,
    )
    schema = spec.metadata[COLUMN_SCHEMA]
    if isinstance(schema, dg.TableSchemaMetadataValue):
        schema = schema.schema
    return tuple(Column(c.name, c.type, c.description or "") for c in schema.columns)
