"""The audit layer's warehouse schema and its history table with its columns, named once."""

from ballast.audit.scoring import DIMENSIONS, INDEX
from ballast.common.columns import Column

AUDIT_LAYER = "audit"
DEBT_INDEX_HISTORY_TABLE = f"{AUDIT_LAYER}.debt_index_history"
# What each score column measures (README "Debt scorecard"); keyed by the scorecard's own names.
_SCORE_DESCRIPTIONS = {
    "documentation": "Documentation score of the scope, 0 to 1: descriptions of the asset, its dbt columns, features and checks.",
    "coverage": "Test coverage score of the scope, 0 to 1: asset checks, and the share of columns a dbt test or Soda check covers.",
    "freshness": "Dependency freshness score of the scope, 0 to 1: lowered by unregistered warnings and by registered debt.",
    "error_handling": "Error handling score of the scope, 0 to 1: retry policy or a stated reason, failure rate and recovery time.",
    INDEX: "Debt index of the scope, 0 to 1 (1 = no debt): the mean of its four dimension scores.",
}
DEBT_INDEX_HISTORY_COLUMNS = (
    Column(
        "evaluation_id", "VARCHAR", "Id of the scorecard evaluation the row belongs to (one per materialization).", True
    ),
    Column("evaluated_at", "TIMESTAMP", "When the scorecard was evaluated, in UTC.", True),
    Column("scope_kind", "VARCHAR", "What the row scores: asset, layer or overall.", True),
    Column("scope_name", "VARCHAR", "The asset key, the layer name, or overall.", True),
    *(Column(name, "DOUBLE", _SCORE_DESCRIPTIONS[name], True) for name in (*DIMENSIONS, INDEX)),
)
