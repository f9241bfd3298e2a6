"""Resources every layer uses, built from settings: the DuckDB warehouse and the dbt project and CLI."""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
import duckdb
import yaml
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliInvocation, DbtCliResource, DbtProject

from ballast.common.atomic import write_atomic
from ballast.common.retries import WAREHOUSE_LOCK_RETRIES, WAREHOUSE_LOCK_WAIT_SECONDS, warehouse_locked
from ballast.settings import DBT_PROJECT_DIR, Settings

# dbt, through a front door that answers `--version` without starting dbt (common/dbt_command.py).
DBT_EXECUTABLE = str(Path(sys.executable).parent / "ballast-dbt")
# The profile's target on a DuckDB in memory: `dbt compile` for column lineage never opens the warehouse.
LINEAGE_TARGET = "lineage"


# Every DuckDB session Ballast opens (its own and dbt's) computes in UTC, whatever the
# machine's time zone: `current_date`, casts to TIMESTAMPTZ and date parts follow it.
DUCKDB_TIME_ZONE = "UTC"


class FeatureWindows(NamedTuple):
    """The rolling feature windows, in days."""

    short: int
    medium: int
    long: int


@functools.cache
def dbt_project_vars() -> dict[str, Any]:
    """The vars declared in dbt_project.yml (the home of the numbers SQL and Python share), read once.

    Not the vars of a run: those are Settings.dbt_vars, passed to each dbt invocation.
    """
    return yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]


def feature_windows() -> FeatureWindows:
    """The dbt var `feature_windows`."""
    return FeatureWindows(**dbt_project_vars()["feature_windows"])


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file; a connection is opened per use and closed right after.

    Used inside steps only: a lock held by another process asks Dagster to retry the step.
    """

    path: str
    memory_limit: str = "2GB"
    lock_retries: int = WAREHOUSE_LOCK_RETRIES
    lock_wait_seconds: float = WAREHOUSE_LOCK_WAIT_SECONDS

    def lock_retry(self) -> dg.RetryRequested:
        """Dagster's request to run the step again later: raised only for a held lock."""
        return dg.RetryRequested(max_retries=self.lock_retries, seconds_to_wait=self.lock_wait_seconds)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            con = duckdb.connect(self.path, read_only=read_only, config={"memory_limit": self.memory_limit})
        except duckdb.IOException as exc:
            if not warehouse_locked(str(exc)):
                raise
            raise self.lock_retry() from exc
        try:
            # Set after connecting: as a connect option it needs ICU loaded before it autoloads.
            con.execute(f"set TimeZone = '{DUCKDB_TIME_ZONE}'")
            yield con
        finally:
            con.close()


def write_dbt_profile(settings: Settings) -> Path:
    """Write the dbt profile that points dbt-duckdb at this Ballast home's warehouse (and at a DuckDB in memory)."""
    profile = {
        "ballast": {
            "target": "local",
            "outputs": {
                "local": {
                    "type": "duckdb",
                    "path": str(settings.warehouse_path),
                    "schema": "main",
                    "threads": 1,
                    "settings": {"memory_limit": settings.duckdb_memory_limit, "TimeZone": DUCKDB_TIME_ZONE},
                },
                LINEAGE_TARGET: {
                    "type": "duckdb",
                    "path": ":memory:",
                    "schema": "main",
                    "threads": 1,
                    "settings": {"TimeZone": DUCKDB_TIME_ZONE},
                },
            },
        }
    }
    settings.dbt_profiles_dir.mkdir(parents=True, exist_ok=True)
    path = settings.dbt_profiles_dir / "profiles.yml"
    text = yaml.safe_dump(profile, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path


def dbt_project(settings: Settings) -> DbtProject:
    write_dbt_profile(settings)
    return DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=settings.dbt_profiles_dir)


def dbt_cli(project: DbtProject, settings: Settings) -> DbtCliResource:
    # The dbt next to this interpreter, so that an un-activated virtualenv works too.
    return DbtCliResource(
        project_dir=project, profiles_dir=str(settings.dbt_profiles_dir), dbt_executable=DBT_EXECUTABLE
    )


PARTIAL_PARSE = "partial_parse.msgpack"

# The days [start, end] of a partitioned layer's dbt invocation, read by the macros in
# dbt_project/macros/partition_window.sql. Environment variables, not --vars: dbt re-parses
# the whole project when --vars change, and only the files that read a changed variable.
WINDOW_ENV = ("BALLAST_DBT_WINDOW_START", "BALLAST_DBT_WINDOW_END")


def dbt_invoke(
    dbt: DbtCliResource,
    settings: Settings,
    args: list[str],
    window: tuple[dt.date, dt.date] | tuple[()] = (),
    **kwargs: Any,
) -> DbtCliInvocation:
    """Start `dbt <args>` with Ballast's vars and, for a partitioned layer, the window's days in its environment.

    dagster-dbt hands dbt this process's environment when it starts it; the window is set
    for that moment only, and removed for an unpartitioned layer, so none leaks between steps.
    """
    if "target_path" in kwargs:
        seed_partial_parse(Path(kwargs["target_path"]))
    saved = {name: os.environ.get(name) for name in WINDOW_ENV}
    for name, day in zip(WINDOW_ENV, window or (None, None), strict=True):
        if day is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = day.isoformat()
    try:
        return dbt.cli([*args, "--vars", json.dumps(settings.dbt_vars())], **kwargs)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def seed_partial_parse(target: Path) -> None:
    """Start a layer's first dbt invocation in a home from the parse another layer left there.

    Each layer has its own dbt target folder, and dbt keeps its parse (partial_parse.msgpack)
    per folder; without a parse of this home's (same profile, vars and files), dbt parses the
    whole project, about 3 s, once per layer. dbt checks the copy it is given against the
    project, profile and vars, and parses afresh when anything differs.
    """
    wanted = target / PARTIAL_PARSE
    if wanted.exists():
        return
    found = sorted(target.parent.glob(f"*/{PARTIAL_PARSE}"), key=lambda p: p.stat().st_mtime)
    if found:
        write_atomic(wanted, found[-1].read_bytes())


def ensure_dbt_manifest(project: DbtProject, settings: Settings) -> None:
    """Run `dbt parse` when the manifest is missing or older than any dbt source file."""
    manifest = project.manifest_path
    if manifest.exists():
        built = manifest.stat().st_mtime
        sources = (
            p for p in project.project_dir.rglob("*") if p.suffix in (".sql", ".yml") and "target" not in p.parts
        )
        if all(p.stat().st_mtime <= built for p in sources):
            return
    # A full parse: dbt's partial parsing has been seen to drop a test's description after a
    # sources .yml edit, and this runs only when a dbt file changed.
    # The same vars as the steps. Each home's profile differs (its warehouse path), so the steps
    # parse again in a home; seed_partial_parse passes that parse from layer to layer.
    dbt_invoke(
        dbt_cli(project, settings),
        settings,
        ["parse", "--quiet", "--no-partial-parse"],
        target_path=project.target_path,
    ).wait()


class LayerTranslator(DagsterDbtTranslator):
    """Asset key = [layer, model]: the dbt folder's schema is the layer and the group."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "model":
            return dg.AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_asset_check_spec(
        self, asset_spec: dg.AssetSpec, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> dg.AssetCheckSpec | None:
        # dagster-dbt reads a check's description from the test's meta; Ballast describes
        # its tests with dbt's own `description:` (one home), shown in the UI as well.
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        description = manifest["nodes"][unique_id].get("description")
        if spec is None or not description or spec.description:
            return spec
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=" ".join(description.split()),
            additional_deps=spec.additional_deps,
            blocking=spec.blocking,
            metadata=spec.metadata,
            automation_condition=spec.automation_condition,
        )


def dbt_translator() -> LayerTranslator:
    # Code references point the catalogue at each model's .sql file.
    return LayerTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True, enable_code_references=True))
