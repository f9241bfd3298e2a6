"""Model layer, the training set: churn labels (the dbt model) and the point-in-time training set Feast joins."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import duckdb

from ballast.common import code_version
from ballast.common.columns import Column, select_as_declared
from ballast.common.metadata import (
    COLUMN_LINEAGE,
    NO_RETRY_REASON,
    column_lineage,
    readable,
    table_metadata,
    warehouse_table_name,
)
from ballast.common.retries import LOCK_RETRY_NOTE
from ballast.features.assets import FEATURE_REGISTRY, FEATURES_PARQUET, FeatureStoreResource
from ballast.features.feast_repo import FEATURE_SERVICE
from ballast.model import training
from ballast.model.keys import (
    LABELS_KEY,
    LABELS_TABLE,
    TRAINING_SET_ENTITY_COLUMNS,
    TRAINING_SET_KEY,
    TRAINING_SET_TABLE,
)
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

CODE_VERSION = code_version.of_sources(Path(__file__), training)
FEATURES_FOUND_CHECK = "every_row_has_features"
NO_RETRY = (
    "Feast's point-in-time join runs in DuckDB over the local Parquet lake and the result replaces a local warehouse"
    f" table: deterministic, so a retry repeats the failure; the next run rebuilds the table whole. {LOCK_RETRY_NOTE}"
)

# The training entities: every labelled customer on every snapshot day (every
# `snapshot_every_days` from the start date). A snapshot's event time is the end of its
# day, so Feast's point-in-time join gives it that day's feature row and nothing later;
# label windows start the day after, so no label day can reach the features.
ENTITIES_SQL = f"""
select
    customer_id,
    cast(snapshot_date + interval 1 day as timestamp) as event_timestamp,
    snapshot_date,
    churned
from {LABELS_TABLE}
where (snapshot_date - $anchor::date) % $every = 0
order by snapshot_date, customer_id
"""

# The labelled entities come from the labels; each feature from the lake export, through
# Feast's point-in-time join of the feature service (feature_repo/churn_features.py).
LINEAGE = column_lineage(
    {
        "customer_id": [(LABELS_KEY, "customer_id")],
        "snapshot_time": [(LABELS_KEY, "snapshot_date")],
        "snapshot_date": [(LABELS_KEY, "snapshot_date")],
        "churned": [(LABELS_KEY, "churned")],
        **{feature: [(FEATURES_PARQUET, feature)] for feature in training.FEATURES},
    }
)


def labels_metadata(con: duckdb.DuckDBPyConnection, key: dg.AssetKey) -> dict:
    """Rows, churn rate and snapshot days of the labels dbt built."""
    rows, positives, first, last = con.execute(
        "select count(*), count(*) filter (where churned), min(snapshot_date), max(snapshot_date)"
        f" from {'.'.join(key.path)}"
    ).fetchone()
    return {
        "dagster/row_count": rows,
        "churn_rate": positives / rows if rows else 0.0,
        "first_snapshot": str(first),
        "last_snapshot": str(last),
    }


def training_set_columns(feature_columns: Sequence[Column]) -> tuple[Column, ...]:
    """The training set's columns: the entity columns, then the churn_v1 features as `feature_columns` declares them."""
    by_name = {c.name: c for c in feature_columns}
    return (*TRAINING_SET_ENTITY_COLUMNS, *(by_name[name] for name in training.FEATURES))


def training_set_asset(settings: Settings, columns: Sequence[Column]) -> dg.AssetsDefinition:
    """`columns`: the table's, from `training_set_columns`; the join's result is cast to them."""

    @dg.asset(
        key=TRAINING_SET_KEY,
        deps=[LABELS_KEY, FEATURES_PARQUET, FEATURE_REGISTRY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"feast", "duckdb"},
        metadata={
            NO_RETRY_REASON: NO_RETRY,
            COLUMN_LINEAGE: LINEAGE,
            **table_metadata(warehouse_table_name(TRAINING_SET_TABLE), columns),
        },
        check_specs=[
            dg.AssetCheckSpec(
                FEATURES_FOUND_CHECK,
                asset=TRAINING_SET_KEY,
                description=f"Feast's point-in-time join found the {FEATURE_SERVICE} features of every labelled"
                " customer and snapshot day (a snapshot's own feature row, never a later one).",
            )
        ],
    )
    def training_set(warehouse: WarehouseResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        """Point-in-time training set: labelled (customer, snapshot) rows joined by Feast to the churn_v1 features knowable at the snapshot."""
        from ballast.features import feast_store as fs  # Feast takes seconds to import; only its steps pay

        with warehouse.connect(read_only=True) as con:
            entities = con.execute(
                ENTITIES_SQL, {"anchor": settings.start_date, "every": settings.snapshot_every_days}
            ).df()
        # Feast wants zone-aware times; DuckDB hands back naive UTC ones.
        entities["event_timestamp"] = entities["event_timestamp"].dt.tz_localize("UTC")
        store = feature_store.open()
        try:
            fs.require_applied(store)
        except fs.FeatureStoreError as exc:
            raise dg.Failure(str(exc)) from None
        joined = fs.historical_features(store, entities)
        missing = int(joined[list(training.FEATURES)].isna().all(axis=1).sum()) if len(joined) else 0
        joined["event_timestamp"] = joined["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
        with warehouse.connect() as con:
            con.execute("create schema if not exists model")
            renamed = "(select * rename (event_timestamp as snapshot_time) from joined)"
            con.execute(
                f"create or replace table {TRAINING_SET_TABLE} as {select_as_declared(columns, renamed)}"
                " order by snapshot_date, customer_id"
            )
            summary = con.execute(
                "select snapshot_date, count(*) as rows, avg(churned::int) as churn_rate"
                f" from {TRAINING_SET_TABLE} group by 1 order by 1"
            ).df()
        table = summary.assign(churn_rate=summary.churn_rate.round(3)).to_markdown(index=False) if len(summary) else ""
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "dagster/row_count": int(summary["rows"].sum()),
                    "snapshots": len(summary),
                    "feature_service": FEATURE_SERVICE,
                    "rows_without_features": missing,
                    "rows_per_snapshot": dg.MetadataValue.md(table),
                    COLUMN_LINEAGE: LINEAGE,
                }
            ),
            check_results=[
                dg.AssetCheckResult(
                    check_name=FEATURES_FOUND_CHECK,
                    passed=missing == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"rows": len(joined), "rows_without_features": missing},
                )
            ],
        )

    return training_set
