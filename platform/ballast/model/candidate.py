"""Model layer, the candidate: trained on the training set, evaluated against the champion, judged by the promotion gates."""

import base64
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from tabulate import tabulate

from ballast.common import code_version
from ballast.common.atomic import write_atomic
from ballast.common.metadata import NO_RETRY_REASON, file_url, image_markdown, readable
from ballast.common.retries import LOCK_RETRY_NOTE
from ballast.features.feast_repo import FEATURE_SERVICE
from ballast.model import evaluation, lineage, reference, registry, training
from ballast.model.keys import EVALUATION_KEY, MODEL_KEY, TRAINING_SET_KEY, TRAINING_SET_TABLE
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

CODE_VERSION = code_version.of_sources(Path(__file__), training, evaluation, lineage, reference, registry)
REGISTRY_NO_RETRY = (
    "Reads and writes the on-disk model registry: deterministic (fixed row order and seed), so a retry repeats"
    " the failure; a failed step leaves no half-written version."
)
NO_RETRY = (
    "Trains or evaluates on the local warehouse and writes the on-disk model registry: deterministic (fixed row"
    f" order and seed), so a retry repeats the failure; a failed step leaves no half-written version. {LOCK_RETRY_NOTE}"
)
REGISTRY_CHECK = "registry_reproduces_holdout"


class CandidateConfig(dg.Config):
    """Run config of the candidate model (model/churn_model)."""

    shuffle_labels: bool = False
    """Train on shuffled labels: a deliberately weak candidate, to exercise the gates."""


class GateConfig(dg.Config):
    """Run config of the promotion gates."""

    override_reason: str = ""
    """Promote despite failing gates; the reason is recorded in the registry and the UI."""


def gate_descriptions(settings: Settings) -> dict[str, str]:
    """What each promotion gate requires, with the thresholds this deployment is configured with."""
    return {
        evaluation.MIN_QUALITY: f"Candidate holdout ROC AUC is at least BALLAST_MIN_AUC ({settings.min_auc:g}).",
        evaluation.BEATS_BASELINE: "Candidate AUC minus the naive recency baseline's AUC"
        f" ({evaluation.RECENCY_FEATURE} as the churn score) on the same holdout is above"
        f" BALLAST_MIN_BASELINE_MARGIN ({settings.min_baseline_margin:g}).",
        evaluation.CHALLENGER: f"Candidate AUC is at least BALLAST_CHAMPION_RATIO ({settings.champion_ratio:g})"
        " × the champion's AUC on the same holdout.",
        evaluation.FAIRNESS: "Largest gap in positive-prediction rate between segments of at least"
        f" BALLAST_MIN_SEGMENT_CUSTOMERS ({settings.min_segment_customers}) customers is at most"
        f" BALLAST_MAX_FAIRNESS_GAP ({settings.max_fairness_gap:g}).",
    }


def thresholds(settings: Settings) -> evaluation.Thresholds:
    return evaluation.Thresholds(
        min_auc=settings.min_auc,
        champion_ratio=settings.champion_ratio,
        max_fairness_gap=settings.max_fairness_gap,
        min_baseline_margin=settings.min_baseline_margin,
        min_segment_customers=settings.min_segment_customers,
    )


def candidate(settings: Settings, context) -> registry.ModelVersion:
    """The version this run trained, or else the newest one (when a later step runs on its own)."""
    found = registry.versions(settings.registry_dir, training.MODEL_NAME)
    mine = [v for v in found if v.metadata.get("dagster_run_id") == context.run.run_id]
    if mine:
        return mine[-1]
    if not found:
        raise dg.Failure(
            f"no {training.MODEL_NAME} in the registry at {settings.registry_dir}; materialize {MODEL_KEY.to_user_string()} first"
        )
    return found[-1]


def _code_versions(context: dg.AssetExecutionContext) -> dict[str, str | None]:
    """The code version that produced each input's latest data (from the instance), else the one defined now."""
    graph = context.job_def.asset_layer.asset_graph
    found = {}
    for key in sorted(graph.get_ancestor_asset_keys(MODEL_KEY, include_self=True)):
        event = context.instance.get_latest_materialization_event(key)
        tags = event.asset_materialization.tags if event and event.asset_materialization else {}
        found[key.to_user_string()] = (tags or {}).get("dagster/code_version") or graph.get(key).code_version
    return found


def _md_table(rows: dict[str, object]) -> str:
    return tabulate(rows.items(), headers=["metric", "value"], tablefmt="github")


def _model_metadata(trained: training.TrainedModel, saved: registry.ModelVersion, traced: dict, shuffled: bool) -> dict:
    """What model/churn_model shows in the UI: the holdout metrics, the training set and the saved version."""
    metrics = trained.metrics
    table = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()} | {
        "train dates": " to ".join(trained.train_dates),
        "holdout dates": " to ".join(trained.holdout_dates),
    }
    return readable(
        {
            "model_version": saved.version,
            "roc_auc": metrics["roc_auc"],
            "pr_auc": metrics["pr_auc"],
            "brier": metrics["brier"],
            "train_rows": metrics["train_rows"],
            "holdout_rows": metrics["holdout_rows"],
            "training_set_fingerprint": saved.metadata["training_set"]["fingerprint"],
            "raw_files": len(traced.get("raw_files", [])),
            "metrics": dg.MetadataValue.md(_md_table(table)),
            "shuffled_labels": shuffled,
            "path": dg.MetadataValue.path(str(saved.path)),
        }
    )


def churn_model_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=MODEL_KEY,
        deps=[TRAINING_SET_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"scikitlearn"},
        metadata={NO_RETRY_REASON: NO_RETRY},
        check_specs=[
            dg.AssetCheckSpec(
                REGISTRY_CHECK,
                asset=MODEL_KEY,
                description="The version saved in the registry, loaded back, scores the holdout with the ROC AUC"
                " measured at training.",
            )
        ],
    )
    def churn_model(
        context: dg.AssetExecutionContext, config: CandidateConfig, warehouse: WarehouseResource
    ) -> dg.MaterializeResult:
        """Candidate churn classifier trained on the Feast training set with a time-based holdout, saved as a registry version with its lineage."""
        with warehouse.connect(read_only=True) as con:
            # A fixed row order makes training reproducible: the same data gives the same model.
            frame = con.execute(f"select * from {TRAINING_SET_TABLE} order by snapshot_date, customer_id").df()
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
        holdout = training.time_split(training_frame, settings.holdout_fraction)[1]
        reloaded = training.evaluate(registry.load(saved), holdout)["roc_auc"]
        return dg.MaterializeResult(
            metadata=_model_metadata(trained, saved, traced, config.shuffle_labels),
            check_results=[
                dg.AssetCheckResult(
                    check_name=REGISTRY_CHECK,
                    passed=abs(reloaded - trained.metrics["roc_auc"]) < 1e-9,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata=readable(
                        {
                            "model_version": saved.version,
                            "trained_roc_auc": trained.metrics["roc_auc"],
                            "reloaded_roc_auc": reloaded,
                        }
                    ),
                )
            ],
        )

    return churn_model


def churn_evaluation_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=EVALUATION_KEY,
        deps=[MODEL_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"scikitlearn"},
        metadata={NO_RETRY_REASON: NO_RETRY},
    )
    def churn_evaluation(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Candidate and current champion scored on the candidate's holdout: ROC AUC, PR AUC, Brier, calibration, per-segment positive rates and the margin over a naive recency baseline."""
        version = candidate(settings, context)
        current = registry.champion(settings.registry_dir, training.MODEL_NAME)
        with warehouse.connect(read_only=True) as con:
            frame = con.execute(f"select * from {TRAINING_SET_TABLE} order by snapshot_date, customer_id").df()
        if settings.segment_column not in frame.columns:
            raise dg.Failure(
                f"BALLAST_SEGMENT_COLUMN={settings.segment_column!r} is not a column of {TRAINING_SET_KEY.to_user_string()}"
                f" (columns: {', '.join(frame.columns)})"
            )
        train_rows, holdout = training.time_split(frame, settings.holdout_fraction)

        def evaluate(model: registry.ModelVersion) -> dict:
            scores = training.score(registry.load(model), holdout)
            return evaluation.evaluate(scores, holdout, settings.segment_column, thresholds(settings))

        found = evaluation.with_baseline(evaluate(version), holdout)
        against = None if current is None else evaluate(current)
        registry.annotate(
            version,
            reference_profile=reference.write_reference(settings, version, train_rows),
            evaluation=found,
            champion_evaluation=None if current is None else {"version": current.version, **against},
        )
        png = evaluation.plot_png(found, against, (version.version, current.version if current else "champion"))
        plot_path = settings.plots_dir / f"{training.MODEL_NAME}_{version.version}_evaluation.png"
        write_atomic(plot_path, png)
        plot = base64.b64encode(png).decode()
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "candidate_version": version.version,
                    "champion_version": current.version if current else "none",
                    "roc_auc": found["roc_auc"],
                    "pr_auc": found["pr_auc"],
                    "brier": found["brier"],
                    "champion_roc_auc": against["roc_auc"] if against else None,
                    "baseline_roc_auc": found["baseline_roc_auc"],
                    "baseline_margin": found["baseline_margin"],
                    "baseline_rule": found["baseline_rule"],
                    "holdout_rows": found["holdout_rows"],
                    "calibration": dg.MetadataValue.md(
                        pd.DataFrame(found["calibration"]).round(4).to_markdown(index=False)
                    ),
                    f"positive_rate_by_{settings.segment_column}": dg.MetadataValue.md(
                        pd.DataFrame(found["segments"]).round(4).to_markdown(index=False)
                    ),
                    # Inline on the asset page through `ballast dev`'s file server; embedded for anywhere else.
                    "roc_and_calibration": image_markdown("ROC and calibration", file_url(settings, plot_path)),
                    "roc_and_calibration_embedded": dg.MetadataValue.md(
                        f"![ROC and calibration](data:image/png;base64,{plot})"
                    ),
                }
            )
        )

    return churn_evaluation


def promotion_gates_check(settings: Settings) -> dg.AssetChecksDefinition:
    # Blocking checks on the candidate's evaluation: they need the champion's score on
    # the same holdout, which the evaluation computes.
    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(name, asset=EVALUATION_KEY, blocking=True, description=description)
            for name, description in gate_descriptions(settings).items()
        ],
        pool=WAREHOUSE_POOL,
    )
    def promotion_gates(context: dg.AssetCheckExecutionContext, config: GateConfig):
        """Promotion gates on the candidate: minimum quality, beats the naive recency baseline, close enough to the champion, fairness across segments."""
        version = candidate(settings, context)
        found = version.metadata.get("evaluation")
        if found is None:
            raise dg.Failure(
                f"{training.MODEL_NAME} {version.version} has no evaluation;"
                f" materialize {EVALUATION_KEY.to_user_string()} first"
            )
        results = evaluation.gates(found, version.metadata.get("champion_evaluation"), thresholds(settings))
        failed = [g.name for g in results if not g.passed]
        override = None
        if failed and config.override_reason.strip():
            override = {
                "reason": config.override_reason.strip(),
                "gates_failed": failed,
                "dagster_run_id": context.run.run_id,
            }
        registry.annotate(version, gates=[g.as_dict() for g in results], override=override)
        for gate in results:
            yield dg.AssetCheckResult(
                check_name=gate.name,
                asset_key=EVALUATION_KEY,
                passed=gate.passed or override is not None,
                severity=dg.AssetCheckSeverity.ERROR,
                description=gate.note,
                metadata=readable(
                    {
                        "candidate_version": version.version,
                        "value": gate.value,
                        "threshold": gate.threshold,
                        "gate_passed": gate.passed,
                        "overridden": override is not None and not gate.passed,
                        "override_reason": override["reason"] if override else "",
                    }
                ),
            )

    return promotion_gates
