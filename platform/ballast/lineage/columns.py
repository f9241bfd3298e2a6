"""Column lineage as a graph: from the assets' `dagster/column_lineage`, a column walked back to the landing columns.

Pure over a Definitions object (no instance, no warehouse): each asset's standard
column lineage gives the upstream (asset, column) pairs of its columns; raw/transactions
adds the landing hop (`ballast/landing_columns`), since landing files are not assets;
feature-service features resolve through their Feast feature view's source, the lake
export. Each hop names its transformation: a dbt model's file, a Python asset's module,
or the Feast repo file for the point-in-time join.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from ballast.common.metadata import COLUMN_LINEAGE, LANDING_COLUMNS, TRANSFORMATION, plain_value
from ballast.features.assets import FEATURES_PARQUET
from ballast.features.feast_repo import DEFINITIONS_FILE, FEATURE_SERVICE, feature_dir
from ballast.model.keys import TRAINING_SET_KEY
from ballast.settings import REPO_ROOT

# The Feast repo file that joins the feature service point in time and names its features.
FEAST_FILE = DEFINITIONS_FILE.relative_to(REPO_ROOT).as_posix()
# Hops that another tool makes than the downstream asset's own code: (downstream, upstream asset).
FEAST_HOPS = {(TRAINING_SET_KEY, FEATURES_PARQUET): f"Feast point-in-time join of {FEATURE_SERVICE} ({FEAST_FILE})"}


class UnknownColumnError(ValueError):
    """A table, column or feature the lineage graph does not know; the message lists what it knows."""


@dataclass(frozen=True, order=True)
class Column:
    """A column of a table asset; printed as schema.table.column (the warehouse name)."""

    key: dg.AssetKey
    name: str

    def __str__(self) -> str:
        return ".".join([*self.key.path, self.name])


@dataclass(frozen=True)
class ServiceFeature:
    """A feature of a Feast feature service, with the asset its feature view reads (None if no asset is its source)."""

    service: str
    name: str
    description: str
    view: str
    source: dg.AssetKey | None

    def __str__(self) -> str:
        return f"{self.service}:{self.name}"


@dataclass(frozen=True)
class Trace:
    """A column and how it was made: its transformation, upstream traces, and for raw columns the landing columns."""

    label: str
    transformation: str | None
    upstream: tuple[Trace, ...] = ()
    column: Column | None = None
    landing: tuple[str, ...] | None = None
    known: bool = True

    def columns(self) -> Iterable[Column]:
        """Every column on the trace, this one included."""
        if self.column is not None:
            yield self.column
        for up in self.upstream:
            yield from up.columns()

    def landing_columns(self) -> set[str]:
        found = set(self.landing or ())
        for up in self.upstream:
            found |= up.landing_columns()
        return found

    def reaches(self, key: dg.AssetKey) -> bool:
        return any(c.key == key for c in self.columns())


@dataclass
class ColumnGraph:
    """Each table asset's columns with their upstream columns, the transformation that makes them, and the landing hop."""

    deps: dict[dg.AssetKey, dict[str, tuple[Column, ...]]] = field(default_factory=dict)
    transformations: dict[dg.AssetKey, str] = field(default_factory=dict)
    landing: dict[dg.AssetKey, dict[str, list[str]]] = field(default_factory=dict)

    @classmethod
    def from_defs(cls, defs: dg.Definitions) -> ColumnGraph:
        graph = cls()
        for assets_def in defs.assets or []:
            if not isinstance(assets_def, dg.AssetsDefinition):
                continue
            for spec in assets_def.specs:
                graph._add(spec, assets_def)
        return graph

    def _add(self, spec: dg.AssetSpec, assets_def: dg.AssetsDefinition) -> None:
        lineage = plain_value(spec.metadata.get(COLUMN_LINEAGE))
        landing = plain_value(spec.metadata.get(LANDING_COLUMNS))
        if lineage is None and landing is None:
            return
        if lineage is not None:
            self.deps[spec.key] = {
                column: tuple(Column(dep.asset_key, dep.column_name) for dep in deps)
                for column, deps in lineage.deps_by_column.items()
            }
        if landing is not None:
            self.landing[spec.key] = dict(landing)
            self.deps.setdefault(spec.key, {column: () for column in landing})
        self.transformations[spec.key] = plain_value(spec.metadata.get(TRANSFORMATION)) or _python_module(assets_def)

    def tables(self) -> list[str]:
        return sorted(".".join(key.path) for key in self.deps)

    def column(self, table: str, name: str) -> Column:
        """The column `name` of the table schema.table; UnknownColumnError names what is known instead.

        Case does not matter, as in DuckDB's unquoted names.
        """
        key = {".".join(k.path).lower(): k for k in self.deps}.get(table.lower())
        if key is None:
            raise UnknownColumnError(f"unknown table {table!r}; tables with column lineage: {', '.join(self.tables())}")
        column = {c.lower(): c for c in self.deps[key]}.get(name.lower())
        if column is None:
            raise UnknownColumnError(
                f"unknown column {name!r} of {table}; its columns: {', '.join(sorted(self.deps[key]))}"
            )
        return Column(key, column)

    def trace(self, column: Column, _seen: frozenset[Column] = frozenset()) -> Trace:
        """The column walked back through every upstream column to the landing columns."""
        if column.key not in self.deps or column.name not in self.deps[column.key]:
            return Trace(str(column), None, column=column, known=False)
        upstream = self.deps[column.key][column.name]
        made_by = self.transformations.get(column.key)
        hops = {FEAST_HOPS.get((column.key, up.key)) for up in upstream} - {None}
        if hops:
            made_by = "; ".join(sorted(hops))
        landing = self.landing.get(column.key, {}).get(column.name) if column.key in self.landing else None
        seen = _seen | {column}
        return Trace(
            str(column),
            made_by,
            tuple(self.trace(up, seen) for up in upstream if up not in seen),
            column=column,
            landing=tuple(landing) if landing is not None else None,
        )

    def trace_feature(self, feature: ServiceFeature) -> Trace:
        """A feature-service feature: its feature view reads the column of the same name in the view's source asset."""
        upstream = () if feature.source is None else (self.trace(Column(feature.source, feature.name)),)
        return Trace(str(feature), f"Feast feature view {feature.view} ({FEAST_FILE})", upstream)


def resolve_feature(name: str, features: Sequence[ServiceFeature]) -> ServiceFeature:
    """`service:feature`, or a bare feature name that one service alone serves."""
    service, _, feature = name.rpartition(":")
    found = [f for f in features if f.name == feature and (not service or f.service == service)]
    if len(found) == 1:
        return found[0]
    known = ", ".join(str(f) for f in features)
    if not found:
        raise UnknownColumnError(f"unknown feature {name!r}; the feature services serve: {known}")
    raise UnknownColumnError(f"feature {name!r} is served by several services ({', '.join(map(str, found))})")


def service_features(objects: Iterable[object], lake_dir: Path) -> list[ServiceFeature]:
    """The features of every Feast feature service among `objects` (feature_repo/'s definitions), in service order."""
    from feast import FeatureService, FeatureView  # Feast takes seconds to import; only its callers pay

    objects = list(objects)
    views = {o.name: o for o in objects if isinstance(o, FeatureView)}
    # The lake export is the one Feast source Ballast writes; its folder names the asset.
    sources = {str(feature_dir(lake_dir)): FEATURES_PARQUET}
    features = []
    for service in (o for o in objects if isinstance(o, FeatureService)):
        for projection in service.feature_view_projections:
            view = views.get(projection.name)
            path = getattr(view.batch_source, "path", None) if view is not None else None
            for feature in projection.features:
                features.append(
                    ServiceFeature(
                        service.name, feature.name, feature.description or "", projection.name, sources.get(path)
                    )
                )
    return features


def render(trace: Trace) -> str:
    """The trace as an indented tree, the transformation of each column after it."""
    lines = [_line(trace)]
    lines += _children(trace, "")
    return "\n".join(lines)


def _line(trace: Trace) -> str:
    return f"{trace.label}  <- {trace.transformation}" if trace.transformation else trace.label


def _children(trace: Trace, indent: str) -> list[str]:
    leaves: list[str] = []
    if not trace.known:
        leaves = ["(no column lineage recorded)"]
    elif trace.landing is not None:
        leaves = [f"landing column {c}" for c in trace.landing] or ["(made by the loader: no landing column)"]
    elif not trace.upstream:
        leaves = ["(no upstream column)"]
    items: list[Trace | str] = [*trace.upstream, *leaves]
    lines = []
    for i, item in enumerate(items):
        last = i == len(items) - 1
        branch, carry = ("└── ", "    ") if last else ("├── ", "│   ")
        if isinstance(item, str):
            lines.append(f"{indent}{branch}{item}")
        else:
            lines.append(f"{indent}{branch}{_line(item)}")
            lines += _children(item, indent + carry)
    return lines


def _python_module(assets_def: dg.AssetsDefinition) -> str:
    """The file of the function that computes a Python asset, from the repository root."""
    function = assets_def.op.compute_fn
    function = getattr(function, "decorated_fn", function)
    try:
        path = Path(inspect.getsourcefile(function) or "").resolve()
        return path.relative_to(REPO_ROOT).as_posix()
    except (TypeError, ValueError):
        return ""
