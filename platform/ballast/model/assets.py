"""Model layer: labels, the point-in-time training set, candidate, evaluation, promotion gates, champion and scores."""

import base64
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
from dagster_dbt import DbtProject
from tabulate import tabulate

from ballast import profiling
from ballast.common import code_version
from ballast.common.atomic import write_atomic
from ballast.features.assets import FEATURE_REGISTRY, FEATURES_PARQUET, FeatureStoreResource
from ballast.features.feast_repo import FEATURE_SERVICE
from ballast.model import evaluation, lineage, registry, training
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings
from ballast.transform import dbt_layer_assets

FEATURES_KEY = dg.AssetKey(["features", "customer_daily_features"])
CLEAN_KEY = dg.AssetKey(["clean", "transactions"])
LABELS_KEY = dg.AssetKey(["model", "churn_labels"])
TRAINING_SET_KEY = dg.AssetKey(["model", "training_set"])
MODEL_KEY = dg.AssetKey(["model", "churn_model"])
EVALUATION_KEY = dg.AssetKey(["model", "churn_evaluation"])
CHAMPION_KEY = dg.AssetKey(["model", "champion"])
SCORES_KEY = dg.AssetKey(["model", "churn_scores"])

# Promotion gates, blocking checks on the candidate's evaluation (they need the
# champion's score on the same holdout, which the evaluation computes).
GATES = {
    "min_quality": "Candidate holdout ROC AUC is at least BALLAST_MIN_AUC (0.70).",
    "challenger": "Candidate AUC is at least BALLAST_CHAMPION_RATIO (0.98) × the champion's AUC on the same holdout.",
    "fairness": "Largest gap in positive-prediction rate between segments with enough customers is at most BALLAST_MAX_FAIRNESS_GAP (0.10).",
}


CODE_VERSION = code_version.of_sources(Path(__file__), training, evaluation, lineage, registry)


# The reference for drift: profiles of a model's training window, kept beside the model.
REFERENCE_FEATURES = "reference_features.whylogs"
REFERENCE_SCORES = "reference_scores.whylogs"
SCORE = "churn_score"


def write_reference(settings: Settings, version: registry.ModelVersion, train_rows: pd.DataFrame) -> dict:
    """Profiles of the end of a model's training window (features and its own scores), stored beside the model.

    Only the last `reference_days` of training snapshots: the earliest days of the data
    have 90-day windows still filling up, which no later day resembles.
    """
    engine = profiling.WhylogsEngine()
    newest = train_rows[training.SNAPSHOT].max()
    train_rows = train_rows[train_rows[training.SNAPSHOT] > newest - pd.Timedelta(days=settings.reference_days)]
    write_atomic(version.path / REFERENCE_FEATURES, engine.profile(train_rows[list(training.FEATURES)]))
    scores = training.score(registry.load(version), train_rows)
    write_atomic(version.path / REFERENCE_SCORES, engine.profile(pd.DataFrame({SCORE: scores})))
    return {
        "engine": engine.name,
        "rows": len(train_rows),
        "window": [str(train_rows[training.SNAPSHOT].min().date()), str(train_rows[training.SNAPSHOT].max().date())],
        "files": [REFERENCE_FEATURES, REFERENCE_SCORES],
    }


class CandidateConfig(dg.Config):
    """Run config of model/churn_model."""

    shuffle_labels: bool = False
    """Train on shuffled labels: a deliberately weak candidate, to exercise the gates."""


class GateConfig(dg.Config):
    """Run config of the promotion gates."""

    override_reason: str = ""
    """Promote despite failing gates; the reason is recorded in the registry and the UI."""


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


def _md_table(rows: dict[str, object]) -> str:
    return tabulate(rows.items(), headers=["metric", "value"], tablefmt="github")


def build_defs(settings: Settings, project: DbtProject) -> dg.Definitions:
    @dg.asset(
        key=TRAINING_SET_KEY,
        deps=[LABELS_KEY, FEATURES_PARQUET, FEATURE_REGISTRY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"feast", "duckdb"},
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

    @dg.asset(
        key=MODEL_KEY,
        deps=[TRAINING_SET_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"scikitlearn"},
    )
    def churn_model(
        context: dg.AssetExecutionContext, config: CandidateConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Candidate churn classifier trained on the Feast training set with a time-based holdout, saved as a registry version with its lineage."""
        with warehouse.connect(read_only=True) as con:
            # A fixed row order makes training reproducible: the same data gives the same model.
            frame = con.execute("select * from model.training_set order by snapshot_date, customer_id").df()
            first, last = frame[training.SNAPSHOT].min(), frame[training.SNAPSHOT].max()
            traced = lineage.trace(con, first.date(), last.date(), settings.label_window_days) if len(frame) else {}
        training_frame = frame
        if config.shuffle_labels:
            shuffled = np.random.default_rng(0).permutation(frame[training.LABEL].to_numpy())
            training_frame = frame.assign(**{training.LABEL: shuffled})
        try:
            trained = training.train(training_frame, settings.holdout_fraction)
        except training.TrainingError as exc:
            raise dg.Failure(
                f"cannot train {training.MODEL_NAME}: {exc} (a snapshot gets a label only once"
                f" {settings.label_window_days} days of later data have arrived)"
            ) from None
        saved = registry.save(
            settings.registry_dir,
            training.MODEL_NAME,
            trained.pipeline,
            {
                "metrics": trained.metrics,
                "features": list(training.FEATURES),
                "feature_service": FEATURE_SERVICE,
                "train_dates": list(trained.train_dates),
                "holdout_dates": list(trained.holdout_dates),
                "dagster_run_id": context.run.run_id,
                "code_versions": _code_versions(context),
                "training_set": {
                    "fingerprint": lineage.fingerprint(frame, [training.SNAPSHOT, "customer_id"]),
                    "rows": len(frame),
                    "snapshots": [str(first.date()), str(last.date())] if len(frame) else [],
                },
                "lineage": traced,
                "config": {"shuffle_labels": config.shuffle_labels},
            },
        )
        context.log.info(f"{training.MODEL_NAME} {saved.version}: holdout ROC AUC {trained.metrics['roc_auc']:.3f}")
        return dg.MaterializeResult(
            metadata={
                "model_version": saved.version,
                "roc_auc": trained.metrics["roc_auc"],
                "pr_auc": trained.metrics["pr_auc"],
                "brier": trained.metrics["brier"],
                "train_rows": trained.metrics["train_rows"],
                "holdout_rows": trained.metrics["holdout_rows"],
                "training_set_fingerprint": saved.metadata["training_set"]["fingerprint"],
                "raw_files": len(traced.get("raw_files", [])),
                "metrics": dg.MetadataValue.md(
                    _md_table(
                        {k: round(v, 4) if isinstance(v, float) else v for k, v in trained.metrics.items()}
                        | {
                            "train dates": " to ".join(trained.train_dates),
                            "holdout dates": " to ".join(trained.holdout_dates),
                        }
                    )
                ),
                "shuffled_labels": config.shuffle_labels,
                "path": dg.MetadataValue.path(str(saved.path)),
            }
        )

    @dg.asset(
        key=EVALUATION_KEY,
        deps=[MODEL_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"scikitlearn"},
    )
    def churn_evaluation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Candidate and current champion scored on the candidate's holdout: ROC AUC, PR AUC, Brier, calibration and per-segment positive rates."""
        candidate = _candidate(context)
        current = registry.champion(settings.registry_dir, training.MODEL_NAME)
        with warehouse.connect(read_only=True) as con:
            frame = con.execute("select * from model.training_set order by snapshot_date, customer_id").df()
        if settings.segment_column not in frame.columns:
            raise dg.Failure(
                f"BALLAST_SEGMENT_COLUMN={settings.segment_column!r} is not a column of model/training_set"
                f" (columns: {', '.join(frame.columns)})"
            )
        train_rows, holdout = training.time_split(frame, settings.holdout_fraction)
        found = evaluation.evaluate(
            training.score(registry.load(candidate), holdout), holdout, settings.segment_column, _thresholds()
        )
        against = None
        if current is not None:
            against = evaluation.evaluate(
                training.score(registry.load(current), holdout), holdout, settings.segment_column, _thresholds()
            )
        registry.annotate(
            candidate,
            reference_profile=write_reference(settings, candidate, train_rows),
            evaluation=found,
            champion_evaluation=None if current is None else {"version": current.version, **against},
        )
        plot = base64.b64encode(
            evaluation.plot_png(found, against, (candidate.version, current.version if current else "champion"))
        ).decode()
        segments = pd.DataFrame(found["segments"]).round(4).to_markdown(index=False)
        calibration = pd.DataFrame(found["calibration"]).round(4).to_markdown(index=False)
        return dg.MaterializeResult(
            metadata={
                "candidate_version": candidate.version,
                "champion_version": current.version if current else "none",
                "roc_auc": found["roc_auc"],
                "pr_auc": found["pr_auc"],
                "brier": found["brier"],
                "champion_roc_auc": against["roc_auc"] if against else None,
                "holdout_rows": found["holdout_rows"],
                "calibration": dg.MetadataValue.md(calibration),
                f"positive_rate_by_{settings.segment_column}": dg.MetadataValue.md(segments),
                "roc_and_calibration": dg.MetadataValue.md(f"![ROC and calibration](data:image/png;base64,{plot})"),
            }
        )

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(name, asset=EVALUATION_KEY, blocking=True, description=description)
            for name, description in GATES.items()
        ],
        pool=WAREHOUSE_POOL,
    )
    def promotion_gates(context: dg.AssetCheckExecutionContext, config: GateConfig):
        """Promotion gates on the candidate: minimum quality, within 2 % of the champion, fairness across segments."""
        candidate = _candidate(context)
        found = candidate.metadata.get("evaluation")
        if found is None:
            raise dg.Failure(
                f"{training.MODEL_NAME} {candidate.version} has no evaluation; materialize model/churn_evaluation first"
            )
        against = candidate.metadata.get("champion_evaluation")
        results = evaluation.gates(found, against, _thresholds())
        failed = [g.name for g in results if not g.passed]
        override = None
        if failed and config.override_reason.strip():
            override = {
                "reason": config.override_reason.strip(),
                "gates_failed": failed,
                "dagster_run_id": context.run.run_id,
            }
        registry.annotate(candidate, gates=[g.as_dict() for g in results], override=override)
        for gate in results:
            yield dg.AssetCheckResult(
                check_name=gate.name,
                asset_key=EVALUATION_KEY,
                passed=gate.passed or override is not None,
                severity=dg.AssetCheckSeverity.ERROR,
                description=gate.note,
                metadata={
                    "candidate_version": candidate.version,
                    "value": gate.value,
                    "threshold": gate.threshold,
                    "gate_passed": gate.passed,
                    "overridden": override is not None and not gate.passed,
                    "override_reason": override["reason"] if override else "",
                },
            )

    @dg.asset(
        key=CHAMPION_KEY,
        deps=[EVALUATION_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"scikitlearn"},
    )
    def champion(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """The promoted churn model: the candidate becomes champion once every gate passed (or an override with a reason)."""
        candidate = _candidate(context)
        gates = candidate.metadata.get("gates")
        if gates is None:
            raise dg.Failure(f"{training.MODEL_NAME} {candidate.version} has not been through the promotion gates")
        failed = [g["name"] for g in gates if not g["passed"]]
        override = candidate.metadata.get("override")
        if failed and override is None:
            raise dg.Failure(
                f"{training.MODEL_NAME} {candidate.version} failed gate(s) {', '.join(failed)}; not promoted"
            )
        previous = registry.champion(settings.registry_dir, training.MODEL_NAME)
        reason = f"override: {override['reason']}" if failed else "passed every gate"
        registry.promote(
            settings.registry_dir,
            training.MODEL_NAME,
            candidate.version,
            reason,
            run_id=context.run.run_id,
            override=bool(failed),
        )
        context.log.info(f"{training.MODEL_NAME} {candidate.version} is champion ({reason})")
        return dg.MaterializeResult(
            metadata={
                "champion_version": candidate.version,
                "previous_champion": previous.version if previous else "none",
                "roc_auc": candidate.metadata["evaluation"]["roc_auc"],
                "reason": reason,
                "override": bool(failed),
            }
        )

    @dg.asset(
        key=SCORES_KEY,
        deps=[CHAMPION_KEY, FEATURES_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"duckdb"},
    )
    def churn_scores(warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Churn propensity of every customer active on the latest feature day, scored by the champion, with its version per row."""
        try:
            model_version = registry.champion(settings.registry_dir, training.MODEL_NAME)
            if model_version is None:
                raise dg.Failure(
                    f"no {training.MODEL_NAME} champion in {settings.registry_dir}; materialize model/champion first"
                )
            pipeline = registry.load(model_version)
        except registry.RegistryError as exc:
            raise dg.Failure(str(exc)) from None
        with warehouse.connect() as con:
            frame = con.execute(
                "select * from features.customer_daily_features"
                " where feature_date = (select max(feature_date) from features.customer_daily_features)"
            ).df()
            scores = pd.DataFrame(
                {
                    "customer_id": frame["customer_id"],
                    "feature_date": frame["feature_date"],
                    "churn_score": training.score(pipeline, frame) if len(frame) else [],
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

    def _code_versions(context: dg.AssetExecutionContext) -> dict[str, str | None]:
        """The code version that produced each input's latest data (from the instance), else the one defined now."""
        graph = context.job_def.asset_layer.asset_graph
        found = {}
        for key in sorted(graph.get_ancestor_asset_keys(MODEL_KEY, include_self=True)):
            event = context.instance.get_latest_materialization_event(key)
            tags = event.asset_materialization.tags if event and event.asset_materialization else {}
            found[key.to_user_string()] = (tags or {}).get("dagster/code_version") or graph.get(key).code_version
        return found

    def _thresholds() -> evaluation.Thresholds:
        return evaluation.Thresholds(
            min_auc=settings.min_auc,
            champion_ratio=settings.champion_ratio,
            max_fairness_gap=settings.max_fairness_gap,
            min_segment_customers=settings.min_segment_customers,
        )

    def _candidate(context) -> registry.ModelVersion:
        """The version this run trained, or else the newest one (when a later step runs on its own)."""
        found = registry.versions(settings.registry_dir, training.MODEL_NAME)
        mine = [v for v in found if v.metadata.get("dagster_run_id") == context.run.run_id]
        if mine:
            return mine[-1]
        if not found:
            raise dg.Failure(
                f"no {training.MODEL_NAME} in the registry at {settings.registry_dir}; materialize model/churn_model first"
            )
        return found[-1]

    return dg.Definitions(
        assets=[
            dbt_layer_assets(settings, project, "model", None, labels_metadata),
            training_set,
            churn_model,
            churn_evaluation,
            champion,
            churn_scores,
        ],
        asset_checks=[promotion_gates],
    )
