"""Audit layer: the debt scorecard of every asset and layer of the code location, its history and its checks."""

import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from ballast.audit.scorecard import Scorecard, evaluate
from ballast.audit.scoring import DIMENSIONS, INDEX
from ballast.audit.tables import AUDIT_LAYER, DEBT_INDEX_HISTORY_COLUMNS, DEBT_INDEX_HISTORY_TABLE
from ballast.audit.warning_capture import WarningRecord
from ballast.common.columns import create_table_sql
from ballast.common.metadata import NO_RETRY_REASON, readable, table_metadata, warehouse_table_name
from ballast.common.retries import LOCK_RETRY_NOTE
from ballast.model.keys import MODEL_KEY
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

DEBT_SCORECARD = dg.AssetKey([AUDIT_LAYER, "debt_scorecard"])
DEBT_INDEX_CHECK = "debt_index_within_threshold"
MODEL_PATH_CHECK = "model_path_has_checks"
HISTORY_DDL = ";\n".join(
    (
        f"create schema if not exists {AUDIT_LAYER}",
        create_table_sql(DEBT_INDEX_HISTORY_TABLE, DEBT_INDEX_HISTORY_COLUMNS),
    )
)


def append_history(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> None:
    """Add one evaluation's rows to the history table (created on first use)."""
    con.execute(HISTORY_DDL)
    con.register("evaluation_rows", rows)
    try:
        con.execute(f"insert into {DEBT_INDEX_HISTORY_TABLE} by name select * from evaluation_rows")
    finally:
        con.unregister("evaluation_rows")


def markdown(frame: pd.DataFrame) -> str:
    return frame.round(3).to_markdown(index=False) if len(frame) else "none"


def warnings_frame(card: Scorecard) -> pd.DataFrame:
    rows = [
        {"site": r.site, "category": r.category, "registered": k, "message": r.message[:160]}
        for r, k in zip(card.warnings, card.known, strict=True)
    ]
    return pd.DataFrame(rows, columns=["site", "category", "registered", "message"])


def _metadata(card: Scorecard) -> dict:
    metadata: dict = {name: dg.MetadataValue.float(card.totals[name]) for name in (INDEX, *DIMENSIONS)}
    metadata.update(
        {f"{INDEX}/{row.layer}": dg.MetadataValue.float(getattr(row, INDEX)) for row in card.layers.itertuples()}
    )
    metadata.update(
        {
            "scorecard": dg.MetadataValue.md(markdown(card.assets)),
            "layers": dg.MetadataValue.md(markdown(card.layers)),
            "warnings": dg.MetadataValue.md(markdown(warnings_frame(card))),
            "warnings_unrecorded": card.unrecorded,
            "warnings_unattributed": len(card.unattributed),
            "registered_dependencies": ", ".join(card.dependencies) or "none",
            "dagster/row_count": len(card.assets) + len(card.layers) + 1,
        }
    )
    return readable(metadata)


def _checks(card: Scorecard) -> list[dg.AssetCheckResult]:
    index = card.totals[INDEX]
    return [
        dg.AssetCheckResult(
            check_name=DEBT_INDEX_CHECK,
            passed=index >= card.min_index,
            severity=dg.AssetCheckSeverity.WARN,
            description=None
            if index >= card.min_index
            else f"overall debt index {index:.3f} is below {card.min_index:g}: review the worst assets",
            metadata=readable({"debt_index": index, "threshold": card.min_index}),
        ),
        dg.AssetCheckResult(
            check_name=MODEL_PATH_CHECK,
            passed=not card.unchecked_model_path,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"no asset check on {', '.join(card.unchecked_model_path)}"
            if card.unchecked_model_path
            else None,
            metadata={"unchecked_assets": len(card.unchecked_model_path)},
        ),
    ]


Repository = Callable[[], dg.RepositoryDefinition]
LoadWarnings = Callable[[], Sequence[WarningRecord]]


def debt_scorecard_asset(
    settings: Settings, manifest_path: Path, repository: Repository, load_warnings: LoadWarnings
) -> dg.AssetsDefinition:
    @dg.asset(
        key=DEBT_SCORECARD,
        group_name=AUDIT_LAYER,
        pool=WAREHOUSE_POOL,
        kinds={"duckdb"},
        metadata={
            NO_RETRY_REASON: "Reads definitions, manifest and the local instance, then appends to the local"
            f" warehouse: a retry would meet the same failure. {LOCK_RETRY_NOTE}",
            # What the asset keeps in the warehouse: the history its materializations append to.
            **table_metadata(warehouse_table_name(DEBT_INDEX_HISTORY_TABLE), DEBT_INDEX_HISTORY_COLUMNS),
        },
        check_specs=[
            dg.AssetCheckSpec(
                DEBT_INDEX_CHECK,
                asset=DEBT_SCORECARD,
                description=f"The overall debt index is at least BALLAST_AUDIT_MIN_INDEX ({settings.audit_min_index:g});"
                " WARN below: the scorecard asks for a review.",
            ),
            dg.AssetCheckSpec(
                MODEL_PATH_CHECK,
                asset=DEBT_SCORECARD,
                description=f"Every asset upstream of {MODEL_KEY.to_user_string()} has at least one asset check;"
                " ERROR naming those without.",
            ),
        ],
    )
    def debt_scorecard(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
        """Debt scorecard of every asset and layer (documentation, test coverage, dependency freshness, error handling) with its history."""
        card = evaluate(repository(), settings, manifest_path, load_warnings(), context.instance)
        with warehouse.connect() as con:
            append_history(con, card.history_rows(str(uuid.uuid4())))
        yield dg.MaterializeResult(metadata=_metadata(card))
        yield from _checks(card)

    return debt_scorecard


def build_defs(
    settings: Settings, manifest_path: Path, repository: Repository, load_warnings: LoadWarnings
) -> dg.Definitions:
    """`repository` gives the code location this layer is part of (once built): a run's context has it only when
    launched from a code location, not in `execute_in_process`; `load_warnings` the warnings of building it."""
    return dg.Definitions(assets=[debt_scorecard_asset(settings, manifest_path, repository, load_warnings)])
