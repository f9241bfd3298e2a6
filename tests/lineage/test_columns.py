"""Column lineage from the definitions alone: every served feature back to raw and the landing columns."""

import shutil
from pathlib import Path

import dagster as dg
import pytest
from dagster_dbt import DbtProject
from sqlglot import MappingSchema

from ballast.clean.assets import CLEAN_TRANSACTIONS
from ballast.common.metadata import COLUMN_LINEAGE
from ballast.dbt_lineage import FAILED_LOG, dbt_column_lineage, lineage_dir, source_digest, sql_lineage
from ballast.features.assets import CUSTOMER_DAILY_FEATURES, FEATURES_PARQUET
from ballast.features.feast_repo import FEATURE_SERVICE, FEATURES
from ballast.lineage.columns import Column, UnknownColumnError, render, resolve_feature
from ballast.model.keys import MODEL_KEY
from ballast.raw.assets import RAW_TRANSACTIONS
from ballast.raw.landing_formats import CONTRACT_COLUMNS
from ballast.resources import dbt_project, write_dbt_profile
from ballast.settings import DBT_PROJECT_DIR
from tests.conftest import make_settings
from tests.lineage.conftest import Lineage

# What each feature is computed from, in the landing files' own columns (event dates come from
# the file names, made by the loader, so they are no landing column).
LANDING_SOURCES = {
    "txn_count_7d": {"transaction_id"},
    "txn_count_30d": {"transaction_id"},
    "txn_count_90d": {"transaction_id"},
    "spend_7d": {"amount"},
    "spend_30d": {"amount"},
    "spend_90d": {"amount"},
    "avg_amount_30d": {"amount", "transaction_id"},
    "days_since_last_txn": set(),
    "tenure_days": set(),
    "distinct_merchants_30d": {"merchant_id"},
    "web_share_30d": {"channel", "transaction_id"},
    "home_country": {"country"},
}


def test_the_service_serves_the_features_of_the_table(lineage: Lineage) -> None:
    assert [f.name for f in lineage.features] == list(FEATURES)
    assert {f.source for f in lineage.features} == {FEATURES_PARQUET}


@pytest.mark.parametrize("feature", FEATURES)
def test_every_served_feature_reaches_raw_and_its_landing_columns(lineage: Lineage, feature: str) -> None:
    trace = lineage.graph.trace_feature(resolve_feature(f"{FEATURE_SERVICE}:{feature}", lineage.features))
    hops = {c.key for c in trace.columns()}
    assert {FEATURES_PARQUET, CUSTOMER_DAILY_FEATURES, CLEAN_TRANSACTIONS, RAW_TRANSACTIONS} <= hops
    assert trace.landing_columns() == LANDING_SOURCES[feature]
    assert trace.landing_columns() <= set(CONTRACT_COLUMNS)


def test_lineage_goes_through_the_ephemeral_model_to_raw(lineage: Lineage) -> None:
    spec = lineage.defs.get_assets_def(CLEAN_TRANSACTIONS).specs_by_key[CLEAN_TRANSACTIONS]
    deps = spec.metadata[COLUMN_LINEAGE].value.deps_by_column
    # clean.transactions selects from the ephemeral transactions_validated, which dbt inlines:
    # its columns still lead to raw's, renamed and typed there.
    assert deps["amount"] == [dg.TableColumnDep(asset_key=RAW_TRANSACTIONS, column_name="amount")]
    trace = lineage.graph.trace(Column(CLEAN_TRANSACTIONS, "amount"))
    assert "models/clean/transactions_validated.sql" in trace.transformation
    text = render(lineage.graph.trace_feature(resolve_feature("avg_amount_30d", lineage.features)))
    assert "raw.transactions.amount" in text and "landing column amount" in text


def test_materializations_of_the_training_set_follow_feast_to_the_features(lineage: Lineage) -> None:
    trace = lineage.graph.trace(lineage.graph.column("model.training_set", "spend_30d"))
    assert "churn_features.py" in trace.transformation
    assert [up.column for up in trace.upstream] == [Column(FEATURES_PARQUET, "spend_30d")]
    assert trace.landing_columns() == {"amount"}


def test_a_column_without_lineage_is_reported(lineage: Lineage) -> None:
    # The feature date comes from the partition window, not from any column.
    trace = lineage.graph.trace(lineage.graph.column("features.customer_daily_features", "feature_date"))
    assert not trace.upstream and not trace.reaches(RAW_TRANSACTIONS)
    assert "(no upstream column)" in render(trace)
    # model/churn_model (a fitted pipeline, not a table) records no column lineage: said so.
    assert "(no column lineage recorded)" in render(lineage.graph.trace(Column(MODEL_KEY, "churn_score")))


@pytest.mark.parametrize(
    ("table", "column", "message"),
    [
        ("features.nope", "x", "unknown table 'features.nope'; tables with column lineage: clean.transactions"),
        ("clean.transactions", "nope", "unknown column 'nope' of clean.transactions; its columns: amount"),
    ],
)
def test_unknown_names_say_what_is_known(lineage: Lineage, table: str, column: str, message: str) -> None:
    with pytest.raises(UnknownColumnError, match=message):
        lineage.graph.column(table, column)
    with pytest.raises(UnknownColumnError, match="unknown feature 'nope'; the feature services serve: churn_v1:"):
        resolve_feature("nope", lineage.features)


def test_sql_lineage_follows_ctes_renames_and_aggregates() -> None:
    schema = MappingSchema(dialect="duckdb")
    schema.add_table("db.s.t", {"a": "int", "b": "varchar", "d": "date"}, dialect="duckdb")
    sql = """
    with typed as (select cast(a as int) as amount, upper(b) as label, d from db.s.t),
    summed as (select label, sum(amount) filter (where d > date '2025-01-01') as total from typed group by label)
    select label as name, total, 1 as one from summed
    """
    found = sql_lineage(sql, schema, {"db.s.t": ["s", "t"]})
    assert found == {"name": [[["s", "t"], "b"]], "total": [[["s", "t"], "a"], [["s", "t"], "d"]], "one": []}


def test_dbt_lineage_is_compiled_once_and_never_opens_the_warehouse(lineage: Lineage) -> None:
    project = dbt_project(lineage.settings)
    folder = lineage_dir(project) / source_digest(project)
    built = folder.stat().st_mtime_ns
    assert dbt_column_lineage(project, lineage.settings)[CUSTOMER_DAILY_FEATURES]["columns"]["spend_7d"]
    # A second load reads the cached folder; the compile ran on DuckDB in memory, not the home's file.
    assert folder.stat().st_mtime_ns == built
    assert [p.name for p in lineage_dir(project).iterdir() if not p.name.startswith(".")] == [folder.name]
    assert not lineage.settings.warehouse_path.exists()


def test_a_model_dbt_cannot_compile_leaves_no_lineage_and_a_log_not_a_broken_code_location(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Lineage is metadata: a compile error (which dbt's own run reports too) must not stop the definitions loading."""
    copy = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, copy, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    # Parses (execute is false then), fails only when compiled.
    (copy / "models" / "features" / "broken.sql").write_text(
        "{% if execute %}{{ exceptions.raise_compiler_error('broken on purpose') }}{% endif %}\nselect 1 as one\n"
    )
    settings = make_settings(tmp_path / "home")
    project = DbtProject(project_dir=copy, profiles_dir=write_dbt_profile(settings).parent)
    assert dbt_column_lineage(project, settings) == {}
    log = lineage_dir(project) / FAILED_LOG
    assert "no column lineage this time" in caplog.text and str(log) in caplog.text
    assert "broken on purpose" in log.read_text()
    # Nothing half-made is cached: once fixed, the next load compiles.
    assert not [p for p in lineage_dir(project).iterdir() if p.is_dir()]
