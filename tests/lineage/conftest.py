"""Definitions and the feature service's features on a fresh home: no data, no run (the dbt compile is cached)."""

from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ballast.definitions import build_defs
from ballast.features.assets import FeatureStoreResource
from ballast.lineage.columns import ColumnGraph, ServiceFeature, service_features
from ballast.settings import Settings
from tests.conftest import make_settings


@dataclass(frozen=True)
class Lineage:
    settings: Settings
    defs: dg.Definitions
    graph: ColumnGraph
    feast_objects: list
    features: list[ServiceFeature]


@pytest.fixture(scope="module")
def lineage(tmp_path_factory: pytest.TempPathFactory) -> Lineage:
    settings = make_settings(Path(tmp_path_factory.mktemp("lineage_home")))
    defs = build_defs(settings)
    objects = FeatureStoreResource(home=str(settings.home)).definitions()
    return Lineage(settings, defs, ColumnGraph.from_defs(defs), objects, service_features(objects, settings.lake_dir))
