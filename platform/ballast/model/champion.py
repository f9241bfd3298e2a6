"""Model layer, the champion: the candidate promoted once the gates pass, and the batch scores it gives."""

from pathlib import Path

import dagster as dg
import pandas as pd

from ballast.common import code_version
from ballast.common.columns import select_as_declared
from ballast.common.metadata import (
    COLUMN_LINEAGE,
    NO_RETRY_REASON,
    column_lineage,
    readable,
    table_metadata,
    warehouse_table_name,
)
from ballast.common.retries import LOCK_RETRY_NOTE
from ballast.features.assets import CUSTOMER_DAILY_FEATURES
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE
from ballast.model import registry, training
from ballast.model.candidate import REGISTRY_NO_RETRY, candidate
from ballast.model.keys import CHAMPION_KEY, EVALUATION_KEY, SCORES_COLUMNS, SCORES_KEY, SCORES_TABLE
from ballast.model.reference import REFERENCE_FEATURES, REFERENCE_SCORES
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

CODE_VERSION = code_version.of_sources(Path(__file__), training, registry)
REFERENCE_CHECK = "reference_profiles_exist"
SCORES_CHECK = "scores_are_probabilities"
# A score reads every model feature of its customer's row; model_version names the champion.
SCORES_LINEAGE = column_lineage(
    {
        "customer_id": [(CUSTOMER_DAILY_FEATURES, "customer_id")],
        "feature_date": [(CUSTOMER_DAILY_FEATURES, "feature_date")],
        "churn_score": [(CUSTOMER_DAILY_FEATURES, feature) for feature in training.FEATURES],
        "model_version": [],
    }
)
SCORES_NO_RETRY = (
    "Scores the local warehouse's latest feature day with the champion from the on-disk registry: deterministic,"
    f" so a retry repeats the failure; the next run replaces the table whole. {LOCK_RETRY_NOTE}"
)


def champion_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=CHAMPION_KEY,
        deps=[EVALUATION_KEY],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"scikitlearn"},
        metadata={NO_RETRY_REASON: REGISTRY_NO_RETRY},
        check_specs=[
            dg.AssetCheckSpec(
                REFERENCE_CHECK,
                asset=CHAMPION_KEY,
                description="The registry's champion is this version and carries the training-window profiles"
                " drift monitoring compares with.",
            )
        ],
    )
    def champion(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        """The promoted churn model: the candidate becomes champion once every gate passed (or an override with a reason)."""
        version = candidate(settings, context)
        gates = version.metadata.get("gates")
        if gates is None:
            raise dg.Failure(f"{training.MODEL_NAME} {version.version} has not been through the promotion gates")
        failed = [g["name"] for g in gates if not g["passed"]]
        override = version.metadata.get("override")
        if failed and override is None:
            why = "; ".join(f"{g['name']}: {g['note']}" for g in gates if not g["passed"])
            raise dg.Failure(f"{training.MODEL_NAME} {version.version} failed gate(s) ({why}); not promoted")
        previous = registry.champion(settings.registry_dir, training.MODEL_NAME)
        reason = f"override: {override['reason']}" if failed else "passed every gate"
        registry.promote(
            settings.registry_dir,
            training.MODEL_NAME,
            version.version,
            reason,
            run_id=context.run.run_id,
            override=bool(failed),
        )
        context.log.info(f"{training.MODEL_NAME} {version.version} is champion ({reason})")
        current = registry.champion(settings.registry_dir, training.MODEL_NAME)
        profiles = [name for name in (REFERENCE_FEATURES, REFERENCE_SCORES) if (version.path / name).is_file()]
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "champion_version": version.version,
                    "previous_champion": previous.version if previous else "none",
                    "roc_auc": version.metadata["evaluation"]["roc_auc"],
                    "baseline_margin": version.metadata["evaluation"].get("baseline_margin"),
                    "reason": reason,
                    "override": bool(failed),
                }
            ),
            check_results=[
                dg.AssetCheckResult(
                    check_name=REFERENCE_CHECK,
                    passed=current is not None and current.version == version.version and len(profiles) == 2,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={
                        "registry_champion": current.version if current else "none",
                        "reference_profiles": ", ".join(profiles) or "none",
                    },
                )
            ],
        )

    return champion


def churn_scores_asset(settings: Settings) -> dg.AssetsDefinition:
    @dg.asset(
        key=SCORES_KEY,
        deps=[CHAMPION_KEY, CUSTOMER_DAILY_FEATURES],
        group_name="model",
        pool=WAREHOUSE_POOL,
        code_version=CODE_VERSION,
        kinds={"duckdb"},
        metadata={
            NO_RETRY_REASON: SCORES_NO_RETRY,
            COLUMN_LINEAGE: SCORES_LINEAGE,
            **table_metadata(warehouse_table_name(SCORES_TABLE), SCORES_COLUMNS),
        },
        check_specs=[
            dg.AssetCheckSpec(
                SCORES_CHECK,
                asset=SCORES_KEY,
                description="Every customer of the latest feature day has one churn score between 0 and 1.",
            )
        ],
    )
    def churn_scores(warehouse: WarehouseResource) -> dg.MaterializeResult:
        """Churn propensity of every customer active on the latest feature day, scored by the champion, with its version per row."""
        try:
            model_version = registry.champion(settings.registry_dir, training.MODEL_NAME)
            if model_version is None:
                raise dg.Failure(
                    f"no {training.MODEL_NAME} champion in {settings.registry_dir}; materialize {CHAMPION_KEY.to_user_string()} first"
                )
            pipeline = registry.load(model_version)
        except registry.RegistryError as exc:
            raise dg.Failure(str(exc)) from None
        with warehouse.connect() as con:
            frame = con.execute(
                f"select * from {CUSTOMER_DAILY_FEATURES_TABLE}"
                f" where feature_date = (select max(feature_date) from {CUSTOMER_DAILY_FEATURES_TABLE})"
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
            con.execute(f"create or replace table {SCORES_TABLE} as {select_as_declared(SCORES_COLUMNS, 'scores')}")
            scored, customers, invalid = con.execute(
                "select count(*), count(distinct customer_id),"
                " count(*) filter (where churn_score is null or churn_score not between 0 and 1)"
                f" from {SCORES_TABLE}"
            ).fetchone()
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "dagster/row_count": len(scores),
                    "feature_date": str(frame["feature_date"].max()) if len(frame) else "",
                    "model_version": model_version.version,
                    "mean_score": float(scores["churn_score"].mean()) if len(scores) else 0.0,
                    COLUMN_LINEAGE: SCORES_LINEAGE,
                }
            ),
            check_results=[
                dg.AssetCheckResult(
                    check_name=SCORES_CHECK,
                    passed=scored == customers == len(frame) and invalid == 0,
                    severity=dg.AssetCheckSeverity.ERROR,
                    metadata={"customers": len(frame), "scores": scored, "invalid_scores": invalid},
                )
            ],
        )

    return churn_scores
