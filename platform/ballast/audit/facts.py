"""The facts the scorecard scores, gathered from the code location, the dbt manifest, the contracts, the Feast repo and the instance.

Public Dagster API only: a RepositoryDefinition (the asset's `context.repository_def`,
or `Definitions.get_repository_def()` in the CLI) and the instance's materialization
and failed-materialization records.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import dagster as dg
import yaml

from ballast.audit.scoring import WINDOW_DAYS, AssetFacts, recovery
from ballast.common.metadata import NO_RETRY_REASON
from ballast.features import feast_repo
from ballast.features.tables import FEATURES_LAYER

# Records fetched per page from the instance; every page of the window is read.
PAGE = 1000


def _assets_defs(repo: dg.RepositoryDefinition) -> list[dg.AssetsDefinition]:
    found = {id(d): d for d in repo.assets_defs_by_key.values()}
    return list(found.values())


def check_descriptions(repo: dg.RepositoryDefinition) -> dict[dg.AssetKey, dict[str, str | None]]:
    """Every asset check of the code location by asset: check name -> description."""
    defs = [*repo.assets_defs_by_key.values(), *repo.asset_checks_defs_by_key.values()]
    found: dict[dg.AssetKey, dict[str, str | None]] = defaultdict(dict)
    for assets_def in {id(d): d for d in defs}.values():
        for spec in assets_def.check_specs:
            found[spec.asset_key][spec.name] = spec.description
    return found


# Every asset requires the default IO manager, whether it stores a value or not.
DEFAULT_IO_MANAGER = "io_manager"


def touches_external(assets_def: dg.AssetsDefinition) -> bool:
    """The rule of the error-handling dimension: the step needs a resource (warehouse, dbt, Feast, Spark, alert sinks;
    not the default IO manager) or runs in a pool (pools serialize the writers of shared storage: the warehouse, Feast)."""
    return bool(assets_def.required_resource_keys - {DEFAULT_IO_MANAGER}) or assets_def.op.pool is not None


def ancestors(repo: dg.RepositoryDefinition, key: dg.AssetKey) -> set[dg.AssetKey]:
    """Every asset upstream of `key` in the code location."""
    return set(dg.AssetSelection.assets(key).upstream(include_self=False).resolve(_assets_defs(repo)))


def _dbt_models(manifest: dict) -> dict[str, dict]:
    """dbt models by asset key (schema = layer, name = table), each with its described and tested columns."""
    tested: dict[str, set[str]] = defaultdict(set)
    for node in manifest.get("nodes", {}).values():
        if node.get("resource_type") != "test" or not node.get("attached_node"):
            continue
        kwargs = (node.get("test_metadata") or {}).get("kwargs") or {}
        columns = [node.get("column_name"), *(kwargs.get("combination_of_columns") or [])]
        tested[node["attached_node"]].update(c for c in columns if c)
    models = {}
    for unique_id, node in manifest.get("nodes", {}).items():
        if node.get("resource_type") == "model":
            key = f"{node['config']['schema']}/{node['name']}"
            columns = node.get("columns") or {}
            models[key] = {
                "described": bool((node.get("description") or "").strip()),
                "columns": set(columns),
                "described_columns": {n for n, c in columns.items() if (c.get("description") or "").strip()},
                "tested_columns": tested[unique_id],
            }
    return models


def contract_columns(contracts_dir: Path) -> dict[str, tuple[set[str], set[str]]]:
    """Each Soda contract's columns and those with at least one check, by asset key (its dataset `ballast/<layer>/<table>`)."""
    found = {}
    for path in sorted(contracts_dir.glob("*.yml")):
        contract = yaml.safe_load(path.read_text()) or {}
        key = "/".join(str(contract.get("dataset", "")).split("/")[1:])
        columns = contract.get("columns") or []
        found[key] = ({c["name"] for c in columns}, {c["name"] for c in columns if c.get("checks")})
    return found


def feature_descriptions(definitions_file: Path = feast_repo.DEFINITIONS_FILE) -> dict[str, str]:
    """Feast Field name -> description, read from the definitions' source (importing Feast costs seconds)."""
    found = {}
    for node in ast.walk(ast.parse(definitions_file.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Field":
            kwargs = {k.arg: k.value for k in node.keywords}
            name, description = kwargs.get("name"), kwargs.get("description")
            if isinstance(name, ast.Constant):
                text = description.value if isinstance(description, ast.Constant) else ""
                found[str(name.value)] = str(text or "").strip()
    return found


def _first_by_run(records: Iterable) -> dict[str, float]:
    """The time of each run's earliest record."""
    runs: dict[str, float] = {}
    for record in records:
        runs[record.run_id] = min(record.timestamp, runs.get(record.run_id, record.timestamp))
    return runs


def _fetch_all(fetch, key: dg.AssetKey, since: float) -> list:
    records, cursor = [], None
    while True:
        result = fetch(dg.AssetRecordsFilter(asset_key=key, after_timestamp=since), limit=PAGE, cursor=cursor)
        records += result.records
        if not result.has_more:
            return records
        cursor = result.cursor


ENDED_UNSUCCESSFULLY = (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
_PLANNED = dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED
_MATERIALIZED = dg.DagsterEventType.ASSET_MATERIALIZATION


def failures(instance: dg.DagsterInstance, now: dt.datetime) -> dict[dg.AssetKey, list[float]]:
    """When each asset failed over the last WINDOW_DAYS days: the end of every failed or cancelled run that planned
    to materialize it and did not (its own step failed, or an upstream failure or blocking check stopped it)."""
    since = now - dt.timedelta(days=WINDOW_DAYS)
    found: dict[dg.AssetKey, list[float]] = defaultdict(list)
    for run in instance.get_run_records(dg.RunsFilter(statuses=list(ENDED_UNSUCCESSFULLY), created_after=since)):
        planned: set[dg.AssetKey] = set()
        materialized: set[dg.AssetKey] = set()
        cursor = None
        while True:
            page = instance.get_records_for_run(
                run.dagster_run.run_id, cursor=cursor, of_type={_PLANNED, _MATERIALIZED}, limit=PAGE
            )
            for record in page.records:
                (planned if record.event_type == _PLANNED else materialized).add(record.asset_key)
            if not page.has_more:
                break
            cursor = page.cursor
        ended = run.end_time or run.create_timestamp.timestamp()
        for key in planned - materialized:
            found[key].append(ended)
    return found


def history(
    instance: dg.DagsterInstance, key: dg.AssetKey, now: dt.datetime, failed_at: list[float]
) -> tuple[int, int, float | None]:
    """Runs, failed runs and mean time to recovery (hours) of an asset over the last WINDOW_DAYS days.

    A run that materialized the asset (any partition) succeeded for it; `failed_at` are
    the ends of the runs that failed it (`failures`). Runs in progress do not count.
    """
    since = (now - dt.timedelta(days=WINDOW_DAYS)).timestamp()
    succeeded = _first_by_run(_fetch_all(instance.fetch_materializations, key, since))
    attempts = [(at, True) for at in succeeded.values()] + [(at, False) for at in failed_at]
    return recovery(attempts, now.timestamp())


def _has_text(value: object) -> bool:
    """A metadata value (raw or wrapped in a MetadataValue) that says something."""
    return bool(str(getattr(value, "value", value) or "").strip())


def read_manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def collect(
    repo: dg.RepositoryDefinition,
    manifest: dict,
    contracts_dir: Path,
    instance: dg.DagsterInstance | None,
    now: dt.datetime,
) -> list[AssetFacts]:
    """The facts of every materializable asset of the code location (dependency freshness is added by the caller)."""
    checks = check_descriptions(repo)
    models = _dbt_models(manifest)
    contracts = contract_columns(contracts_dir)
    described = feature_descriptions()
    features = [f for f in feast_repo.FEATURES if described.get(f)]
    failed = failures(instance, now) if instance is not None else {}
    facts = []
    for assets_def in _assets_defs(repo):
        if not assets_def.is_materializable:
            continue
        for key in sorted(assets_def.keys, key=lambda k: k.to_user_string()):
            spec = assets_def.get_asset_spec(key)
            name = key.to_user_string()
            own_checks = checks.get(key, {})
            model = models.get(name)
            contract_all, contract_checked = contracts.get(name, (set(), set()))
            attempts, failed_runs, mttr = (
                history(instance, key, now, failed.get(key, [])) if instance is not None else (0, 0, None)
            )
            facts.append(
                AssetFacts(
                    key=name,
                    layer=spec.group_name or key.path[0],
                    described=bool((spec.description or "").strip()),
                    checks=len(own_checks),
                    checks_described=sum(1 for d in own_checks.values() if (d or "").strip()),
                    touches_external=touches_external(assets_def),
                    retry_handled=assets_def.op.retry_policy is not None
                    or _has_text(spec.metadata.get(NO_RETRY_REASON)),
                    dbt_model_described=model["described"] if model else None,
                    dbt_columns=len(model["columns"]) if model else 0,
                    dbt_columns_described=len(model["described_columns"]) if model else 0,
                    dbt_columns_tested=len(model["columns"] & (model["tested_columns"] | contract_checked))
                    if model
                    else 0,
                    contract_columns=len(contract_all),
                    contract_columns_checked=len(contract_checked),
                    features=len(feast_repo.FEATURES) if spec.group_name == FEATURES_LAYER else 0,
                    features_described=len(features) if spec.group_name == FEATURES_LAYER else 0,
                    attempts=attempts,
                    failures=failed_runs,
                    mttr_hours=mttr,
                )
            )
    return sorted(facts, key=lambda f: f.key)
