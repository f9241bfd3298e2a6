"""Features layer: per-customer daily feature snapshots (dbt), their Parquet export and the Feast feature store."""

import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject
from tabulate import tabulate

from ballast.clean.assets import CLEAN_TRANSACTIONS_PARQUET
from ballast.common import code_version, lake
from ballast.common.columns import Column
from ballast.common.gates import judge
from ballast.common.metadata import (
    COLUMN_LINEAGE,
    NO_RETRY_REASON,
    column_lineage,
    lake_table_name,
    readable,
    table_metadata,
    warehouse_table_name,
)
from ballast.common.naming import table_key
from ballast.common.partitions import partition_dates, single_run_asset
from ballast.dbt_lineage import dbt_column_lineage
from ballast.features import feast_repo, spark
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE, EXPORT_CREATED_COLUMN, FEATURES_LAYER
from ballast.quality import Contract, blocking_contract
from ballast.resources import WarehouseResource, dbt_invoke
from ballast.settings import FEAST_POOL, WAREHOUSE_POOL, Settings
from ballast.transform import dbt_layer_assets, dbt_model_columns, window_metadata


class FeatureStoreResource(dg.ConfigurableResource):
    """The Feast repo in feature_repo/, opened with this Ballast home's paths."""

    home: str

    def open(self):
        """A Feast FeatureStore (imported here: Feast takes seconds to import)."""
        from ballast.features import feast_store

        return feast_store.open_store(Path(self.home))

    def definitions(self) -> list:
        from ballast.features import feast_store

        return feast_store.definitions(Path(self.home))


CUSTOMER_DAILY_FEATURES = table_key(CUSTOMER_DAILY_FEATURES_TABLE)
FEATURES_PARQUET = dg.AssetKey([FEATURES_LAYER, "customer_daily_features_parquet"])
FEATURE_REGISTRY = dg.AssetKey([FEATURES_LAYER, "feature_registry"])
ONLINE_STORE = dg.AssetKey([FEATURES_LAYER, "online_store"])
PARITY_CHECK = "online_matches_offline"
EXPORT_CHECK = "lake_matches_warehouse"
SERVICE_CHECK = "service_serves_model_features"
# The Feast steps reach the registry and the online store, which are servers in production
# (PostgreSQL, Redis: feature_repo/production/): a dropped connection is worth a retry.
# What a retry cannot fix (nothing applied yet, a damaged registry) fails at once.
FEAST_RETRY = dg.RetryPolicy(max_retries=3, delay=2, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
SPARK_RETRY = dg.RetryPolicy(max_retries=2, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
MISMATCHES_SHOWN = 20
# The Feast-side code: this module, the store helpers and the plug-ins (not imported here: Feast is slow to import).
CODE_VERSION = code_version.of_sources(
    Path(__file__),
    feast_repo,
    *(Path(feast_repo.__file__).with_name(n) for n in ("feast_store.py", "feast_plugins.py")),
)
# The dbt model file: its folder is the layer, its name the table.
FEATURES_MODEL = Path("models", *CUSTOMER_DAILY_FEATURES.path).with_suffix(".sql")

# Re-apply when the repo's definitions change, not only when the registry is missing.
REGISTRY_AUTOMATION = (
    (dg.AutomationCondition.newly_missing() | dg.AutomationCondition.code_version_changed()).since_last_handled()
    & ~dg.AutomationCondition.in_progress()
).with_label("missing or its definitions changed")


def build_defs(settings: Settings, project: DbtProject, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    # The feature table's columns: their home is the dbt model's .yml, whichever engine computes it.
    columns = dbt_model_columns(project, CUSTOMER_DAILY_FEATURES_TABLE)
    contract = blocking_contract(settings, "customer_daily_features.yml", CUSTOMER_DAILY_FEATURES)
    if settings.feature_engine == "spark":
        features = spark_feature_assets(settings, project, partitions_def, columns, contract)
    else:
        features = dbt_layer_assets(settings, project, FEATURES_LAYER, partitions_def, gates=[contract])
    return dg.Definitions(
        assets=[
            features,
            features_parquet_asset(settings, partitions_def, columns),
            feature_registry_asset(settings),
            online_store_asset(settings, partitions_def),
        ],
        asset_checks=[parity_check(settings)],
    )


def features_parquet_asset(
    settings: Settings, partitions_def: dg.PartitionsDefinition, feature_columns: Sequence[Column]
) -> dg.AssetsDefinition:
    table = table_metadata(
        lake_table_name(feast_repo.feature_dir(settings.lake_dir)),
        lake.lake_columns(feature_columns, "feature_date", (EXPORT_CREATED_COLUMN,)),
    )
    # Every column of the dbt model, plus the export's own.
    lineage = column_lineage(
        {**{c.name: [(CUSTOMER_DAILY_FEATURES, c.name)] for c in feature_columns}, EXPORT_CREATED_COLUMN.name: []}
    )

    @single_run_asset(
        FEATURES_PARQUET,
        deps=[CUSTOMER_DAILY_FEATURES],
        partitions_def=partitions_def,
        group_name=FEATURES_LAYER,
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"duckdb", "parquet"},
        metadata={NO_RETRY_REASON: lake.NO_RETRY, COLUMN_LINEAGE: lineage, **table},
        check_specs=[
            dg.AssetCheckSpec(
                EXPORT_CHECK,
                asset=FEATURES_PARQUET,
                description="The lake holds exactly the warehouse's feature rows for every day of the run's window.",
            )
        ],
    )
    def customer_daily_features_parquet(
        context: dg.AssetExecutionContext, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Parquet export of features/customer_daily_features in the lake, one folder per feature date: Feast's offline source."""
        first, last = partition_dates(context)
        created_at = dt.datetime.now(dt.UTC)
        with warehouse.connect(read_only=True) as con:
            rows = feast_repo.export_features(con, settings.lake_dir, first, last, created_at)
            expected = con.execute(
                f"select count(*) from {CUSTOMER_DAILY_FEATURES_TABLE} where feature_date between ? and ?",
                [first, last],
            ).fetchone()[0]
        in_lake = feast_repo.lake_rows(settings.lake_dir, first, last)
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "window": f"{first} to {last}",
                "created_timestamp": created_at.isoformat(),
                "path": dg.MetadataValue.path(str(feast_repo.feature_dir(settings.lake_dir))),
                COLUMN_LINEAGE: lineage,
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=EXPORT_CHECK,
                    passed=in_lake == expected,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"window": f"{first} to {last}", "warehouse_rows": expected, "lake_rows": in_lake},
                )
            ],
        )

    return customer_daily_features_parquet


def feature_registry_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=FEATURE_REGISTRY,
        group_name=FEATURES_LAYER,
        pool=FEAST_POOL,
        code_version=feast_repo.code_version(),
        automation_condition=REGISTRY_AUTOMATION,
        kinds={"feast"},
        retry_policy=FEAST_RETRY,
        check_specs=[
            dg.AssetCheckSpec(
                SERVICE_CHECK,
                asset=FEATURE_REGISTRY,
                description=f"The registered feature service {feast_repo.FEATURE_SERVICE} serves exactly the"
                " features the churn model trains on, in the same order.",
            )
        ],
    )
    def feature_registry(feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        """Feast registry with the definitions of feature_repo/ (entity customer, view customer_daily_features, service churn_v1)."""
        from ballast.features import feast_store as fs  # Feast takes seconds to import; only its steps pay

        store = feature_store.open()
        try:
            summary = fs.apply(store, feature_store.definitions())
        except fs.FeatureStoreError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        served = fs.service_features(store)
        registered = tabulate(
            [(kind, ", ".join(names)) for kind, names in summary.items() if kind not in ("removed", "changed")],
            headers=["kind", "names"],
            tablefmt="github",
        )
        return dg.MaterializeResult(
            metadata={
                "registered": dg.MetadataValue.md(registered),
                "removed": ", ".join(summary["removed"]) or "none",
                # Unchanged definitions leave the registry as it is: no write, no new registry version.
                "applied": summary["changed"] == ["yes"],
                "feature_service": feast_repo.FEATURE_SERVICE,
                "registry": dg.MetadataValue.path(str(feast_repo.registry_path(settings.home))),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name=SERVICE_CHECK,
                    passed=served == list(feast_repo.FEATURES),
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"served": ", ".join(served), "model_features": ", ".join(feast_repo.FEATURES)},
                )
            ],
        )

    return feature_registry


def online_store_asset(settings: Settings, partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @single_run_asset(
        ONLINE_STORE,
        deps=[FEATURES_PARQUET, FEATURE_REGISTRY],
        partitions_def=partitions_def,
        group_name=FEATURES_LAYER,
        pool=FEAST_POOL,
        code_version=CODE_VERSION,
        kinds={"feast", "sqlite"},
        retry_policy=FEAST_RETRY,
    )
    def online_store(context: dg.AssetExecutionContext, feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        """Feast online store (SQLite) holding each customer's latest features, materialized incrementally per partition."""
        from ballast.features import feast_store as fs

        first, last = partition_dates(context)
        store = feature_store.open()
        try:
            fs.require_applied(store)
        except fs.FeatureStoreError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        started = time.perf_counter()
        marker = feast_repo.materializing_marker(settings.home)
        marker.touch()
        fs.materialize(store, first, last)
        # Removed only once Feast has finished: what a killed or failed materialization leaves, recovery resets.
        marker.unlink(missing_ok=True)
        seconds = time.perf_counter() - started
        status = feast_repo.online_status(settings.home) or {}
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "window": f"{first} to {last}",
                    "entities_online": status.get("entities_online", 0),
                    "last_materialized_partition": status.get("last_materialized_partition"),
                    "materialize_seconds": seconds,
                }
            )
        )

    return online_store


def parity_check(settings: Settings) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=ONLINE_STORE,
        name=PARITY_CHECK,
        description=(
            f"Up to {settings.parity_sample_size} sampled customers' online features equal their latest offline"
            " features for the last materialized day (BALLAST_PARITY_SAMPLE_SIZE)."
        ),
        pool=FEAST_POOL,
    )
    def online_matches_offline(feature_store: FeatureStoreResource) -> dg.AssetCheckResult:
        """A sample of customers' online features equal their latest offline features for the last materialized day."""
        from ballast.features import feast_store as fs

        try:
            result = fs.parity(feature_store.open(), settings.lake_dir, settings.parity_sample_size)
        except fs.FeatureStoreError as exc:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, description=str(exc))
        shown = result.mismatches.head(MISMATCHES_SHOWN)
        return dg.AssetCheckResult(
            passed=result.mismatches.empty,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "feature_date": str(result.feature_date),
                "customers_sampled": result.sampled,
                "customers_mismatched": result.mismatched_customers,
                "values_mismatched": len(result.mismatches),
                "mismatches": dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "none"),
            },
        )

    return online_matches_offline


def spark_feature_assets(
    settings: Settings,
    project: DbtProject,
    partitions_def: dg.PartitionsDefinition,
    columns: Sequence[Column],
    contract: Contract,
) -> dg.AssetsDefinition:
    """features/customer_daily_features computed by PySpark: the dbt model compiled for the window and transpiled."""
    # The dbt model's lineage, read from the clean layer's Parquet copy as Spark reads it.
    model = dbt_column_lineage(project, settings).get(CUSTOMER_DAILY_FEATURES) or {"columns": {}}
    lineage = column_lineage(
        {
            column: [(CLEAN_TRANSACTIONS_PARQUET, name) for _, name in upstream]
            for column, upstream in model["columns"].items()
        }
    )

    @single_run_asset(
        CUSTOMER_DAILY_FEATURES,
        deps=[CLEAN_TRANSACTIONS_PARQUET],
        partitions_def=partitions_def,
        group_name=FEATURES_LAYER,
        pool=WAREHOUSE_POOL,
        code_version=code_version.of_sources(Path(__file__), spark, project.project_dir / FEATURES_MODEL),
        kinds={"spark", "parquet"},
        # Spark's Parquet is read through the warehouse view of the dbt model's name and columns.
        metadata={
            COLUMN_LINEAGE: lineage,
            **table_metadata(warehouse_table_name(CUSTOMER_DAILY_FEATURES_TABLE), columns),
        },
        # A cluster (spark.master) loses executors and connections now and then; a
        # transpilation or SQL error raises Failure without retries.
        retry_policy=SPARK_RETRY,
        # By key: the PySparkResource class is imported only when the Spark engine is chosen.
        required_resource_keys={"dbt", "pyspark", "warehouse"},
        # A failed contract withholds the output: what is below is skipped, the days stay missing.
        check_specs=list(contract.specs),
        skippable=True,
    )
    def customer_daily_features(context: dg.AssetExecutionContext):
        """Per-customer daily features from the dbt model, run by Spark over the clean layer's Parquet."""
        dbt: DbtCliResource = context.resources.dbt
        warehouse: WarehouseResource = context.resources.warehouse
        pyspark = context.resources.pyspark
        first, last = partition_dates(context)
        compiled_sql = _compile_features(settings, dbt, first, last)
        started = time.perf_counter()
        try:
            columns = spark.build(pyspark.spark_session, compiled_sql, settings.lake_dir, first, last)
        except spark.SparkEngineError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from None
        spark_seconds = time.perf_counter() - started
        with warehouse.connect() as con:
            if spark.expose(con, settings.lake_dir, columns):
                context.log.warning(
                    f"{CUSTOMER_DAILY_FEATURES_TABLE} was a table built by the duckdb engine; it is now a view over "
                    "Spark's Parquet, and days not rebuilt by Spark are gone from it"
                )
            metadata = window_metadata(con, CUSTOMER_DAILY_FEATURES, first, last)
        blocked, results = judge(CUSTOMER_DAILY_FEATURES, contract.verify(context.run.tags, warehouse))
        if not blocked:
            yield dg.MaterializeResult(
                metadata=readable(
                    {
                        **metadata,
                        "engine": "spark",
                        "spark_master": pyspark.spark_session.sparkContext.master,
                        "spark_seconds": spark_seconds,
                        "path": dg.MetadataValue.path(str(spark.output_dir(settings.lake_dir))),
                        COLUMN_LINEAGE: lineage,
                    }
                )
            )
        yield from results

    return customer_daily_features


def _compile_features(settings: Settings, dbt: DbtCliResource, first: dt.date, last: dt.date) -> str:
    """The features dbt model compiled (not run) for the window [first, last], in DuckDB's dialect."""
    target = settings.dbt_runs_dir / "features_spark"
    invocation = dbt_invoke(
        dbt,
        settings,
        ["compile", "--select", FEATURES_MODEL.stem],
        (first, last),
        target_path=target,
        raise_on_error=False,
    )
    invocation.wait()
    compiled = next(target.glob(f"compiled/*/{FEATURES_MODEL.as_posix()}"), None)
    if not invocation.is_successful() or compiled is None:
        raise dg.Failure(
            f"dbt compile of {FEATURES_MODEL.stem} failed for {first} to {last}; see {target}", allow_retries=False
        )
    return compiled.read_text()
