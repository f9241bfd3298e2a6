"""The Feast feature store of a Ballast home: export, registry, materialization, lookups and parity (no Dagster here).

The repo in feature_repo/ is the one definition. This module opens it with a given
BALLAST_HOME instead of the environment's, so Dagster steps, the `ballast` command and
tests on temporary homes all use exactly what `feast apply` in that folder would.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import runpy
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from feast import Entity, FeatureService, FeatureStore, FeatureView, RepoConfig
from feast.data_source import DataSource
from feast.errors import FeatureViewNotFoundException
from feast.types import Int32, Int64
from google.protobuf.message import DecodeError

from ballast.features.feast_repo import (
    DEFINITIONS_FILE,
    ENTITY_KEY,
    FEATURE_REPO_DIR,
    FEATURE_SERVICE,
    FEATURE_VIEW,
    STORE_YAML,
    FeatureStoreError,
    feature_time,
    offline_latest,
    store_text,
)

FeastObject = Entity | DataSource | FeatureView | FeatureService


class _FileRegistryServesWhileMaterializing(logging.Filter):
    """Feast warns that serve_features_while_materializing has no effect on a file registry; its file registry honours it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("`serve_features_while_materializing` is enabled but `registry_type`")


_SERVE_WHILE_MATERIALIZING_FILTER = _FileRegistryServesWhileMaterializing()


def repo_config(home: Path, yaml_file: Path = STORE_YAML) -> RepoConfig:
    """Feast's config from the repo's yaml, with ${BALLAST_HOME} as `home` and other variables from the environment."""
    logging.getLogger("feast.repo_config").addFilter(_SERVE_WHILE_MATERIALIZING_FILTER)  # adding twice is a no-op
    config = RepoConfig(**yaml.safe_load(os.path.expandvars(store_text(home, yaml_file))))
    config.repo_path = yaml_file.parent
    return config


def open_store(home: Path) -> FeatureStore:
    return FeatureStore(repo_path=str(FEATURE_REPO_DIR), config=repo_config(home))


def definitions(home: Path) -> list[FeastObject]:
    """The objects of feature_repo/churn_features.py, with paths under `home`."""
    namespace = runpy.run_path(str(DEFINITIONS_FILE), init_globals={"BALLAST_HOME": str(home)})
    return [value for value in namespace.values() if isinstance(value, FeastObject)]


def require_applied(store: FeatureStore) -> None:
    """Raise FeatureStoreError unless the registry holds the feature view."""
    try:
        store.get_feature_view(FEATURE_VIEW)
    except DecodeError:
        raise _damaged_registry(store) from None
    except (FeatureViewNotFoundException, FileNotFoundError):
        raise FeatureStoreError(
            f"the Feast registry has no feature view {FEATURE_VIEW!r}; materialize features/feature_registry"
            " (or run `feast apply` in feature_repo/) first"
        ) from None


def _damaged_registry(store: FeatureStore) -> FeatureStoreError:
    return FeatureStoreError(
        f"the Feast registry {store.config.registry.path} is damaged (not a Feast registry); delete it and run"
        " `ballast run` (or materialize features/feature_registry) to rebuild it from feature_repo/"
    )


def _kind(obj: FeastObject) -> str:
    for kind in (Entity, DataSource, FeatureService, FeatureView):
        if isinstance(obj, kind):
            return kind.__name__
    raise TypeError(type(obj).__name__)


def _as_defined(registered: FeastObject | None) -> FeastObject | None:
    """A registered object as a repo declares it: without the materialized intervals the registry adds to a view."""
    if isinstance(registered, FeatureView):
        registered = copy.copy(registered)
        registered.materialization_intervals = []
    return registered


def apply(store: FeatureStore, objects: list[FeastObject]) -> dict[str, list[str]]:
    """Register `objects` and remove registered ones they no longer include, like `feast apply`.

    Returns the registered names by kind, plus `removed` and `changed` (["yes"] or ["no"]):
    a registry that already holds exactly these definitions is left as it is.
    """
    wanted = {(_kind(o), o.name) for o in objects}
    try:
        registered: list[FeastObject] = [
            *store.list_entities(),
            *store.list_data_sources(),
            *store.list_feature_views(),
            *store.list_feature_services(),
        ]
    except DecodeError:
        raise _damaged_registry(store) from None
    # Feast keeps internal objects (names starting "__") that no repo declares.
    stale = [o for o in registered if (_kind(o), o.name) not in wanted and not o.name.startswith("__")]
    by_key = {(_kind(o), o.name): o for o in registered}
    changed = bool(stale) or any(_as_defined(by_key.get((_kind(o), o.name))) != o for o in objects)
    if changed:
        store.apply(objects, objects_to_delete=stale, partial=False)
    summary: dict[str, list[str]] = {"changed": ["yes" if changed else "no"]}
    for kind, name in sorted(wanted):
        summary.setdefault(kind, []).append(name)
    summary["removed"] = sorted(f"{_kind(o)} {o.name}" for o in stale)
    return summary


def service_features(store: FeatureStore) -> list[str]:
    """The features the registered feature service serves, in its order."""
    service = store.get_feature_service(FEATURE_SERVICE)
    return [f.name for projection in service.feature_view_projections for f in projection.features]


def materialize(store: FeatureStore, first: dt.date, last: dt.date) -> None:
    """Load the feature days [first, last] into the online store (Feast keeps each customer's latest row)."""
    store.materialize(feature_time(first), feature_time(last), feature_views=[FEATURE_VIEW])


def materialized_through(store: FeatureStore) -> dt.date | None:
    """The latest feature day the registry records as materialized, or None."""
    intervals = store.get_feature_view(FEATURE_VIEW).materialization_intervals
    if not intervals:
        return None
    return (max(end for _, end in intervals).astimezone(dt.UTC) - dt.timedelta(days=1)).date()


def online_features(store: FeatureStore, customer_ids: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """The churn_v1 features online for these customers, and the customers the store does not know."""
    service = store.get_feature_service(FEATURE_SERVICE)
    response = store.get_online_features(features=service, entity_rows={ENTITY_KEY: list(customer_ids)}).to_dict(
        include_event_timestamps=True
    )
    frame = pd.DataFrame(response)
    stamps = [c for c in frame.columns if c.endswith("__ts")]
    # Feast answers an unknown key with nulls and event time 0, not an error.
    known = frame[stamps].fillna(0).max(axis=1) > 0
    frame["event_timestamp"] = pd.to_datetime(frame[stamps].max(axis=1), unit="s", utc=True)
    missing = frame.loc[~known, ENTITY_KEY].tolist()
    found = frame.loc[known].drop(columns=stamps).reset_index(drop=True)
    # Nulls of unknown keys turned integer columns into floats; restore the schema's types.
    for field in store.get_feature_view(FEATURE_VIEW).features:
        if field.name in found.columns and field.dtype in (Int32, Int64):
            found[field.name] = found[field.name].astype("Int64")
    ordered = [f.name for projection in service.feature_view_projections for f in projection.features]
    return found[[ENTITY_KEY, *ordered, "event_timestamp"]], missing


@dataclass(frozen=True)
class Parity:
    feature_date: dt.date
    sampled: int
    mismatches: pd.DataFrame  # customer_id, feature, offline, online

    @property
    def mismatched_customers(self) -> int:
        return int(self.mismatches[ENTITY_KEY].nunique())


def parity(store: FeatureStore, lake_dir: Path, sample_size: int) -> Parity:
    """Compare the online values of a sample of customers with the offline rows of the last materialized day."""
    require_applied(store)
    day = materialized_through(store)
    if day is None:
        raise FeatureStoreError(f"nothing is materialized into the online store yet; materialize {FEATURE_VIEW} first")
    offline = offline_latest(Path(lake_dir), day, sample_size)
    if offline.empty:
        raise FeatureStoreError(f"the lake has no feature rows for {day}, the last materialized day")
    # A customer missing online shows up below as null online values.
    online, _ = online_features(store, offline[ENTITY_KEY].tolist())
    features = [c for c in online.columns if c not in (ENTITY_KEY, "event_timestamp")]
    merged = offline.merge(online, on=ENTITY_KEY, how="left", suffixes=("_offline", "_online"))
    found: list[pd.DataFrame] = []
    for feature in [*features, "event_timestamp"]:
        left_name, right_name = (
            ("feature_timestamp", "event_timestamp")
            if feature == "event_timestamp"
            else (f"{feature}_offline", f"{feature}_online")
        )
        left, right = merged[left_name], merged[right_name]
        if feature == "event_timestamp":
            left = pd.to_datetime(left, utc=True)
        same = (left.astype(object) == right.astype(object)) | (left.isna() & right.isna())
        if (~same).any():
            found.append(
                pd.DataFrame(
                    {
                        ENTITY_KEY: merged.loc[~same, ENTITY_KEY],
                        "feature": feature,
                        "offline": left[~same].astype(str),
                        "online": right[~same].astype(str),
                    }
                )
            )
    mismatches = (
        pd.concat(found, ignore_index=True)
        if found
        else pd.DataFrame(columns=[ENTITY_KEY, "feature", "offline", "online"])
    )
    return Parity(feature_date=day, sampled=len(offline), mismatches=mismatches)


def historical_features(store: FeatureStore, entities: pd.DataFrame) -> pd.DataFrame:
    """Feast's point-in-time join of churn_v1 onto `entities` (customer_id, event_timestamp, any other columns kept).

    Each row gets the features of the customer's latest row at or before its event
    timestamp (a later created_timestamp wins a tie); rows come back in no fixed order.
    """
    service = store.get_feature_service(FEATURE_SERVICE)
    return store.get_historical_features(entity_df=entities, features=service).to_df()
