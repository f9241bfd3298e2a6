"""What Dagster's catalogue shows and filters every asset by: its owners and its tags.

Tags (key = value, Dagster's tag characters):
- `layer`: the asset's layer (also its group and the first part of its key).
- `domain`: the business subject of its data: transactions, customers, churn or platform.
- `pii`: `true` when it holds customer ids (pseudonymous personal data: who may read it,
  how long it is kept), `false` otherwise.
"""

import dagster as dg

from ballast.audit.tables import AUDIT_LAYER
from ballast.clean.tables import CLEAN_LAYER
from ballast.common.metadata import COLUMN_SCHEMA, plain_value
from ballast.features.assets import ONLINE_STORE
from ballast.features.feast_repo import ENTITY_KEY
from ballast.features.tables import FEATURES_LAYER
from ballast.model.keys import MODEL_KEY
from ballast.monitoring.check_history import MONITORING_LAYER
from ballast.monitoring.quality_history import QUALITY_HISTORY
from ballast.raw.tables import RAW_LAYER
from ballast.settings import Settings

DOMAIN_BY_LAYER = {
    RAW_LAYER: "transactions",
    CLEAN_LAYER: "transactions",
    FEATURES_LAYER: "customers",
    MODEL_KEY.path[0]: "churn",
    # Profiles and drift of the churn model's inputs and scores.
    MONITORING_LAYER: "churn",
    AUDIT_LAYER: "platform",
}
# The pass rate of every check is about the platform, not about the model it sits next to.
DOMAIN_BY_ASSET = {QUALITY_HISTORY: "platform"}
# Customer ids without a column schema: the Feast online store is keyed by them.
CUSTOMER_KEYED = {ONLINE_STORE}


def holds_customer_ids(spec: dg.AssetSpec) -> bool:
    """A table with a customer id column (its column schema says), or a store keyed by customer id."""
    schema = plain_value(spec.metadata.get(COLUMN_SCHEMA))
    return spec.key in CUSTOMER_KEYED or (schema is not None and ENTITY_KEY in {c.name for c in schema.columns})


def with_catalogue(spec: dg.AssetSpec, settings: Settings) -> dg.AssetSpec:
    """The spec with the configured owners (BALLAST_OWNERS) and the catalogue's tags."""
    layer = spec.key.path[0]
    tags = {
        "layer": layer,
        "domain": DOMAIN_BY_ASSET.get(spec.key, DOMAIN_BY_LAYER[layer]),
        "pii": str(holds_customer_ids(spec)).lower(),
    }
    return spec.replace_attributes(owners=list(settings.owners), tags={**spec.tags, **tags})
