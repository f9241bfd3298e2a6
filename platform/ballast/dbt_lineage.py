"""Column lineage of the dbt models, known at definitions time: a compile on an in-memory DuckDB, read by sqlglot.

dagster-dbt's own column metadata needs a database connection while dbt holds the
warehouse's write lock, and exists only after a run. This compiles the project once,
on a DuckDB in memory (the home's warehouse is never opened), into a folder named after
the content of the dbt sources, and keeps the lineage sqlglot derives from it there: a
second load reads one JSON file; an edited model makes a new folder.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DbtProject
from sqlglot import MappingSchema, exp, parse_one, to_table
from sqlglot.errors import SqlglotError
from sqlglot.expressions import normalize_table_name
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

from ballast.common.metadata import COLUMN_LINEAGE, column_lineage
from ballast.resources import LINEAGE_TARGET, dbt_cli, dbt_translator
from ballast.settings import DBT_PROJECT_DIR, Settings

DIALECT = "duckdb"
LINEAGE_FILE = "column_lineage.json"
# A column the yml documents without a type still takes part: lineage does not need types.
UNKNOWN_TYPE = "unknown"

ModelLineage = dict[str, Any]
# dbt's log of the last compile that failed, kept beside the cached lineage (the compile's own folder is removed).
FAILED_LOG = "compile-failed.log"


class LineageCompileError(RuntimeError):
    """dbt could not compile the project for column lineage; the message names dbt's log."""


def source_digest(project: DbtProject) -> str:
    """A digest of every dbt source file (models, macros, tests, dbt_project.yml) and of this module: the cache key."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    files = sorted(
        p
        for p in project.project_dir.rglob("*")
        if p.is_file() and p.suffix in (".sql", ".yml") and not {"target", "logs"} & set(p.parts)
    )
    for path in files:
        digest.update(path.relative_to(project.project_dir).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def lineage_dir(project: DbtProject) -> Path:
    return Path(project.project_dir, project.target_path) / "lineage"


def dbt_column_lineage(project: DbtProject, settings: Settings) -> dict[dg.AssetKey, ModelLineage]:
    """Per dbt model asset: its file, the ephemeral models inlined into it and each column's upstream (key, column)."""
    folder = lineage_dir(project) / source_digest(project)
    if not (folder / LINEAGE_FILE).exists():
        try:
            _compile(project, settings, folder)
        except LineageCompileError as exc:
            # Lineage is metadata: without it the platform still loads and runs (dbt's own run
            # reports the model's error), and the lineage policy check fails, naming the features.
            dg.get_dagster_logger().warning(str(exc))
            return {}
    models = json.loads((folder / LINEAGE_FILE).read_text())
    return {dg.AssetKey(model["asset_key"]): model for model in models.values()}


def _compile(project: DbtProject, settings: Settings, folder: Path) -> None:
    """dbt compile into a temporary folder, lineage written next to it, then renamed into place in one step."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".compile-"))
    try:
        invocation = dbt_cli(project, settings).cli(
            [
                "compile",
                "--quiet",
                "--target",
                LINEAGE_TARGET,
                "--select",
                "resource_type:model",
                "--indirect-selection",
                "empty",
            ],
            target_path=scratch,
            raise_on_error=False,
        )
        invocation.wait()
        if not invocation.is_successful():
            log = folder.parent / FAILED_LOG
            if (scratch / "dbt.log").exists():
                shutil.copyfile(scratch / "dbt.log", log)
            raise LineageCompileError(f"dbt compile for column lineage failed, no column lineage this time; see {log}")
        manifest = json.loads((scratch / "manifest.json").read_text())
        models = manifest_lineage(manifest, scratch / "compiled", project)
        (scratch / LINEAGE_FILE).write_text(json.dumps(models, indent=1))
        try:
            scratch.rename(folder)
        except OSError:
            # Another process renamed the same sources' lineage into place first: theirs is ours.
            if not (folder / LINEAGE_FILE).exists():
                raise
        else:
            scratch = None
        _prune(folder)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _prune(kept: Path) -> None:
    """Remove the lineage of earlier sources (best effort: a reader of an old digest only finds it gone)."""
    for other in kept.parent.iterdir():
        if other != kept and not other.name.startswith(".") and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def manifest_lineage(manifest: Mapping[str, Any], compiled_dir: Path, project: DbtProject) -> dict[str, ModelLineage]:
    """Lineage of every materialized model in a compiled manifest, keyed by dbt unique id."""
    translator = dbt_translator()
    nodes = manifest["nodes"]
    relations = {**manifest["sources"], **{k: v for k, v in nodes.items() if v["resource_type"] == "model"}}
    keys_by_relation = {
        normalize_table_name(to_table(props["relation_name"], dialect=DIALECT), dialect=DIALECT): (
            translator.get_asset_key(props).path
        )
        for props in relations.values()
        if props.get("relation_name")
    }
    schema = _schema(relations.values())
    models: dict[str, ModelLineage] = {}
    for unique_id, props in sorted(nodes.items()):
        if props["resource_type"] != "model" or not props.get("relation_name"):
            continue
        sql_path = compiled_dir / props["package_name"] / props["original_file_path"]
        try:
            columns = sql_lineage(sql_path.read_text(), schema, keys_by_relation)
        except (OSError, SqlglotError) as exc:
            dg.get_dagster_logger().warning(f"no column lineage for {props['original_file_path']}: {exc}")
            columns = {}
        models[unique_id] = {
            "asset_key": translator.get_asset_key(props).path,
            "file": props["original_file_path"],
            "ephemeral": _ephemeral_files(unique_id, nodes),
            "columns": columns,
        }
    return models


def _schema(relations) -> MappingSchema:
    """The documented columns (and their data_type where given) of every source and model."""
    schema = MappingSchema(dialect=DIALECT)
    for props in relations:
        if props.get("relation_name") and props.get("columns"):
            schema.add_table(
                to_table(props["relation_name"], dialect=DIALECT),
                {name: column.get("data_type") or UNKNOWN_TYPE for name, column in props["columns"].items()},
                dialect=DIALECT,
            )
    return schema


def sql_lineage(
    sql: str, schema: MappingSchema, keys_by_relation: Mapping[str, list[str]]
) -> dict[str, list[list[Any]]]:
    """Each output column of one compiled query with its upstream [asset key path, column] pairs.

    The method of dagster-dbt's column metadata, with sqlglot's qualification alone
    instead of its whole optimizer: the same lineage, and seconds instead of a minute on
    the clean models, whose ephemeral parent dbt inlines as a long CTE.
    """
    qualified = qualify(parse_one(sql, dialect=DIALECT), dialect=DIALECT, schema=schema, validate_qualify_columns=False)
    scope = build_scope(qualified)
    columns: dict[str, list[list[Any]]] = {}
    for column in qualified.named_selects:
        found: set[tuple[tuple[str, ...], str]] = set()
        for node in lineage(column, qualified, dialect=DIALECT, scope=scope).walk():
            table = None if node.downstream else node.expression.find(exp.Table)
            key = table and keys_by_relation.get(normalize_table_name(table, dialect=DIALECT))
            if key:
                found.add((tuple(key), exp.to_column(node.name).name.lower()))
        columns[column.lower()] = [[list(key), name] for key, name in sorted(found)]
    return columns


def _ephemeral_files(unique_id: str, nodes: Mapping[str, Any]) -> list[str]:
    """The files of the ephemeral models dbt inlines into a model, nearest first."""
    files: list[str] = []
    pending = list(nodes[unique_id]["depends_on"]["nodes"])
    while pending:
        parent = nodes.get(pending.pop(0))
        if parent and parent["config"].get("materialized") == "ephemeral" and parent["original_file_path"] not in files:
            files.append(parent["original_file_path"])
            pending.extend(parent["depends_on"]["nodes"])
    return files


def transformation(model: ModelLineage) -> str:
    """The model's file from the repository root, and the ephemeral models dbt inlines into it."""
    inlined = "".join(f" + ephemeral {DBT_PROJECT_DIR.name}/{f}" for f in model["ephemeral"])
    return f"{DBT_PROJECT_DIR.name}/{model['file']}{inlined}"


def lineage_metadata(model: ModelLineage | None) -> dict[str, Any]:
    """`dagster/column_lineage` of a model, or nothing when it has none."""
    if not model or not model["columns"]:
        return {}
    deps = {column: [(dg.AssetKey(key), name) for key, name in found] for column, found in model["columns"].items()}
    return {COLUMN_LINEAGE: column_lineage(deps)}
