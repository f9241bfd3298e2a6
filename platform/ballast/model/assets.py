"""Model layer: churn labels, the point-in-time training set, the churn model and its scores."""


import dagster as dg
import pandas as pd
from tabulate import tabulate

from ballast.features.assets import FEATURE_REGISTRY, FEATURES_PARQUET
from ballast.lib import churn, registry
from ballast.lib.feature_repo import FEATURE_SERVICE
from ballast.resources import FeatureStoreResource, WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

FEATURES_KEY = dg.AssetKey(["features", "customer_daily_features"])
CLEAN_KEY = dg.AssetKey(["clean", "transactions"])
LABELS_KEY = dg.AssetKey(["model", "churn_labels"])
TRAINING_SET_KEY = dg.AssetKey(["model", "training_set"])
MODEL_KEY = dg.AssetKey(["model", "churn_model"])
SCORES_KEY = dg.AssetKey(["model", "churn_scores"])

# A customer active on D churns when their next transaction after D is later than
# D + window (or never comes). Only days whose whole label window lies inside the
# data get a label, so a label never guesses about days not yet received.
LABELS_SQL = """
create schema if not exists model;
create or replace table model.churn_labels as
with horizon as (
    select max(feature_date) as last_date from features.customer_daily_features
),
customer_days as (
    select distinct customer_id, event_date from clean.transactions
),
next_purchase as (
    select f.customer_id, f.feature_date, c.event_date as next_event_date
    from features.customer_daily_features as f
    asof left join customer_days as c
        on f.customer_id = c.customer_id and c.event_date > f.feature_date
)
select
    n.customer_id,
    n.feature_date as snapshot_date,
    n.next_event_date,
    coalesce(n.next_event_date > n.feature_date + $window, true) as churned
from next_purchase as n, horizon as h
where n.feature_date + $window <= h.last_date
"""

# The training entities: every labelled customer on every snapshot day (every
# `snapshot_every_days` from the start date). A snapshot's event time is the end of its
# day, so Feast's point-in-time join gives it that day's feature row and nothing later;
# label windows start the day after, so no label day can reach the features.
ENTITIES_SQL = """
select
    customer_id,
    cast(snapshot_date + interval 1 day as timestamp) as event_timestamp,
    snapshot_date,
    churned
from model.churn_labels
where (snapshot_date - $anchor::date) % $every = 0
order by snapshot_date, customer_id
"""

def _md_table(rows: dict[str, object]) -> str:
    return tabulate(rows.items(), headers=["metric", "value"], tablefmt="github")


def build_defs(settings: Settings) -> dg.Definitions:
    @dg.asset(key=LABELS_KEY, deps=[FEATURES_KEY, CLEAN_KEY], group_name="model", pool=WAREHOUSE_POOL, kinds={"duckdb"})
    def churn_labels(warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Churn label per customer and day: no transaction in the following label window (default 30 days)."""
        with warehouse.connect() as con:
            con.execute(LABELS_SQL, {"window": settings.label_window_days})
            rows, positives, first, last = con.execute(
                "select count(*), count(*) filter (where churned), min(snapshot_date), max(snapshot_date)"
                " from model.churn_labels"
            ).fetchone()
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "churn_rate": positives / rows if rows else 0.0,
                "first_snapshot": str(first),
                "last_snapshot": str(last),
            }
        )

    @dg.asset(
        key=TRAINING_SET_KEY,
        deps=[LABELS_KEY, FEATURES_PARQUET, FEATURE_REGISTRY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        kinds={"feast", "duckdb"},
    )
    def training_set(warehouse: WarehouseResource, feature_store: FeatureStoreResource) -> dg.MaterializeResult:
        """Point-in-time training set: labelled (customer, snapshot) rows joined by Feast to the churn_v1 features knowable at the snapshot."""
        from ballast.lib import feature_store as fs  # Feast takes seconds to import; only its steps pay

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
        missing = int(joined[list(churn.FEATURES)].isna().all(axis=1).sum()) if len(joined) else 0
        joined["event_timestamp"] = joined["event_timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
        with warehouse.connect() as con:
            con.execute("create schema if not exists model")
            con.execute(
                "create or replace table model.training_set as"
                " select * rename (event_timestamp as snapshot_time) from joined order by snapshot_date, customer_id"
            )
            summary = con.execute(
                "select snapshot_date, count(*) as rows, avg(churned::int) as churn_rate"
                " from model.training_set group by 1 order by 1"
            ).df()
        table = summary.assign(churn_rate=summary.churn_rate.round(3)).to_markdown(index=False) if len(summary) else ""
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": int(summary["rows"].sum()),
                "snapshots": len(summary),
                "feature_service": FEATURE_SERVICE,
                "rows_without_features": missing,
                "rows_per_snapshot": dg.MetadataValue.md(table),
            }
        )

    @dg.asset(key=MODEL_KEY, deps=[TRAINING_SET_KEY], group_name="model", pool=WAREHOUSE_POOL, kinds={"scikitlearn"})
    def churn_model(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Churn classifier trained on the training set, evaluated on a time-based holdout, saved as a registry version."""
        with warehouse.connect(read_only=True) as con:
            # A fixed row order makes training reproducible: the same data gives the same model.
            frame = con.execute("select * from model.training_set order by snapshot_date, customer_id").df()
        try:
            trained = churn.train(frame, settings.holdout_fraction)
        except churn.TrainingError as exc:
            raise dg.Failure(
                f"cannot train {churn.MODEL_NAME}: {exc} (a snapshot gets a label only once"
                f" {settings.label_window_days} days of later data have arrived)"
            ) from None
        saved = registry.save(
            settings.registry_dir,
            churn.MODEL_NAME,
            trained.pipeline,
            {
                "metrics": trained.metrics,
                "features": list(churn.FEATURES),
                "train_dates": list(trained.train_dates),
                "holdout_dates": list(trained.holdout_dates),
                "dagster_run_id": context.run.run_id,
            },
        )
        context.log.info(f"{churn.MODEL_NAME} {saved.version}: holdout ROC AUC {trained.metrics['roc_auc']:.3f}")
        return dg.MaterializeResult(
            metadata={
                "model_version": saved.version,
                "roc_auc": trained.metrics["roc_auc"],
                "pr_auc": trained.metrics["pr_auc"],
                "brier": trained.metrics["brier"],
                "train_rows": trained.metrics["train_rows"],
                "holdout_rows": trained.metrics["holdout_rows"],
                "metrics": dg.MetadataValue.md(
                    _md_table(
                        {k: round(v, 4) if isinstance(v, float) else v for k, v in trained.metrics.items()}
                        | {"train dates": " to ".join(trained.train_dates),
                           "holdout dates": " to ".join(trained.holdout_dates)}
                    )
                ),
                "path": dg.MetadataValue.path(str(saved.path)),
            }
        )

    @dg.asset(key=SCORES_KEY, deps=[MODEL_KEY, FEATURES_KEY], group_name="model", pool=WAREHOUSE_POOL, kinds={"duckdb"})
    def churn_scores(warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Churn propensity of every customer active on the latest feature day, scored by the latest model version."""
        model_version = registry.latest(settings.registry_dir, churn.MODEL_NAME)
        if model_version is None:
            raise dg.Failure(f"no {churn.MODEL_NAME} in the registry at {settings.registry_dir}; materialize model/churn_model first")
        pipeline = registry.load(model_version)
        with warehouse.connect() as con:
            frame = con.execute(
                "select * from features.customer_daily_features"
                " where feature_date = (select max(feature_date) from features.customer_daily_features)"
            ).df()
            scores = pd.DataFrame(
                {
                    "customer_id": frame["customer_id"],
                    "feature_date": frame["feature_date"],
                    "churn_score": churn.score(pipeline, frame) if len(frame) else [],
                    "model_version": model_version.version,
                }
            )
            con.execute("create schema if not exists model")
            con.execute(
                "create or replace table model.churn_scores as"
                " select customer_id, cast(feature_date as date) as feature_date, churn_score, model_version from scores"
            )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": len(scores),
                "feature_date": str(frame["feature_date"].max()) if len(frame) else "",
                "model_version": model_version.version,
                "mean_score": float(scores["churn_score"].mean()) if len(scores) else 0.0,
            }
        )

    return dg.Definitions(assets=[churn_labels, training_set, churn_model, churn_scores])
