"""Every table asset declares its table (dagster/table_name) and columns (dagster/column_schema), and they are the table's."""

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import dagster as dg
import duckdb
import pytest
import yaml

from ballast.common.metadata import COLUMN_SCHEMA, TABLE_NAME
from ballast.definitions import build_defs
from ballast.raw.tables import RAW_TRANSACTIONS_COLUMNS
from ballast.settings import CONTRACTS_DIR, DBT_PROJECT_DIR, FEATURE_ENGINES, WAREHOUSE_CATALOG, Settings
from tests.conftest import Platform, make_settings

# Kinds of assets that store tables (DuckDB, Parquet, Spark's Parquet, SQLite).
TABLE_KINDS = {"duckdb", "parquet", "spark", "sqlite"}
# Assets of those kinds whose output is not a table a reader queries, with why.
NOT_TABLES = {
    # Feast's online store: SQLite here, Redis in production; its rows are Feast's serialized
    # entity keys and values, one per feature, not a table with the feature view's columns.
    "features/online_store",
}


# The table assets of each feature engine; the Spark engine adds the clean layer's lake export.
TABLE_ASSETS = {
    "duckdb": {
        "raw/transactions",
        "raw/rejected_files",
        "raw/ignored_files",
        "clean/transactions",
        "clean/transactions_quarantine",
        "features/customer_daily_features",
        "features/customer_daily_features_parquet",
        "model/churn_labels",
        "model/training_set",
        "model/churn_scores",
        "audit/debt_scorecard",
        "monitoring/quality_history",
    }
}
TABLE_ASSETS["spark"] = TABLE_ASSETS["duckdb"] | {"clean/transactions_parquet"}


def _schema(node) -> dg.TableSchema | None:
    schema = node.metadata.get(COLUMN_SCHEMA)
    return schema.schema if isinstance(schema, dg.TableSchemaMetadataValue) else schema


def _type(spelled: str) -> str:
    """A type as DuckDB spells it, whatever the case and spacing (dbt's yml may write decimal(18, 2))."""
    return re.sub(r"\s*,\s*", ",", " ".join(spelled.upper().split()))


def declared(node) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of each column the asset declares, in order."""
    return [(c.name, _type(c.type), c.constraints.nullable if c.constraints else True) for c in _schema(node).columns]


def actual(con: duckdb.DuckDBPyConnection, table_name: str) -> list[tuple[str, str, bool]]:
    """(name, type, nullable) of each column of the real table, in order: a warehouse table or a lake folder."""
    if table_name.startswith("file://"):
        pattern = str(Path(unquote(urlparse(table_name).path)) / "**" / "*.parquet")
        rows = con.execute(f"describe select * from read_parquet('{pattern}', hive_partitioning = true)").fetchall()
        # Parquet states no NOT NULL a reader could rely on: every column reads as nullable.
        return [(name, _type(kind), True) for name, kind, *_ in rows]
    catalog, schema, table = table_name.split(".")
    rows = con.execute(
        "select column_name, data_type, is_nullable = 'YES' from information_schema.columns"
        " where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
        [catalog, schema, table],
    ).fetchall()
    return [(name, _type(kind), nullable) for name, kind, nullable in rows]


def table_nodes(defs: dg.Definitions) -> list:
    return [n for n in defs.resolve_asset_graph().asset_nodes if TABLE_NAME in n.metadata]


@pytest.fixture(scope="module", params=FEATURE_ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def defs(engine: str, tmp_path_factory: pytest.TempPathFactory) -> dg.Definitions:
    return build_defs(make_settings(tmp_path_factory.mktemp("schema_defs"), feature_engine=engine))


def test_every_table_asset_declares_a_typed_described_schema(engine: str, defs: dg.Definitions) -> None:
    nodes = {n.key.to_user_string(): n for n in defs.resolve_asset_graph().asset_nodes}
    stores_tables = {k for k, n in nodes.items() if TABLE_KINDS & set(n.kinds)}
    assert stores_tables >= NOT_TABLES, "a listed non-table asset is gone or changed kind: update NOT_TABLES"
    assert {n.key.to_user_string() for n in table_nodes(defs)} == TABLE_ASSETS[engine]
    problems = {}
    for key in sorted(stores_tables - NOT_TABLES):
        node = nodes[key]
        schema = _schema(node)
        if not node.metadata.get(TABLE_NAME) or schema is None or not schema.columns:
            problems[key] = "no dagster/table_name or dagster/column_schema"
            continue
        untyped = [c.name for c in schema.columns if not c.type or c.type in ("?", "string")]
        undescribed = [c.name for c in schema.columns if not (c.description or "").strip()]
        if untyped or undescribed:
            problems[key] = f"untyped {untyped}, undescribed {undescribed}"
    assert not problems, problems


def test_table_names_follow_the_warehouse_and_lake_forms(defs: dg.Definitions) -> None:
    names = {n.key.to_user_string(): n.metadata[TABLE_NAME] for n in table_nodes(defs)}
    assert names["raw/transactions"] == f"{WAREHOUSE_CATALOG}.raw.transactions"
    assert names["clean/transactions"] == f"{WAREHOUSE_CATALOG}.clean.transactions"
    assert names["audit/debt_scorecard"] == f"{WAREHOUSE_CATALOG}.audit.debt_index_history"
    assert names["features/customer_daily_features_parquet"].startswith("file:///")
    assert len(set(names.values())) == len(names), "two assets claim the same table"


def test_the_soda_contracts_state_the_declared_column_types(defs: dg.Definitions) -> None:
    """A contract names the types its consumers rely on; they are the ones the asset declares (base type: decimal)."""
    nodes = {n.key.to_user_string(): n for n in defs.resolve_asset_graph().asset_nodes}
    compared = 0
    for path in sorted(CONTRACTS_DIR.glob("*.yml")):
        contract = yaml.safe_load(path.read_text())
        key = contract["dataset"].removeprefix("ballast/")
        types = {name: kind.split("(")[0] for name, kind, _ in declared(nodes[key])}
        for column in contract["columns"]:
            if "data_type" in column:
                assert types.get(column["name"]) == _type(column["data_type"]), (path.name, column["name"])
                compared += 1
    assert compared, "no contract states a column type"


def test_the_dbt_source_declares_the_raw_table_as_the_raw_layer_does() -> None:
    """sources.yml repeats raw.transactions' columns for dbt; the raw layer's declaration is their home."""
    source = yaml.safe_load((DBT_PROJECT_DIR / "models" / "raw" / "sources.yml").read_text())
    [table] = [t for s in source["sources"] if s["name"] == "raw" for t in s["tables"] if t["name"] == "transactions"]
    in_dbt = [(c["name"], c["data_type"], " ".join(c["description"].split())) for c in table["columns"]]
    assert in_dbt == [(c.name, c.type, c.description) for c in RAW_TRANSACTIONS_COLUMNS]


def declared_and_actual(settings: Settings) -> tuple[dict, dict]:
    """Each table asset's declared columns, and its table's, by asset key."""
    nodes = table_nodes(build_defs(settings))
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        found = {n.key.to_user_string(): actual(con, n.metadata[TABLE_NAME]) for n in nodes}
    finally:
        con.close()
    return {n.key.to_user_string(): declared(n) for n in nodes}, found


def test_the_column_schema_of_every_table_asset_is_the_table_s_columns(platform: Platform) -> None:
    declared_columns, table_columns = declared_and_actual(platform.settings)
    assert set(table_columns) == TABLE_ASSETS["duckdb"]
    assert all(table_columns.values()), [k for k, v in table_columns.items() if not v]
    assert declared_columns == table_columns
