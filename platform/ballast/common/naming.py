"""The naming rule every layer follows: the warehouse table `layer.name` is the asset `layer/name`.

The layer is also the asset's group, the DuckDB schema and the dbt folder; each layer
spells its table names once, in its `tables` module, and derives the asset keys here.
"""

import dagster as dg


def table_key(table: str) -> dg.AssetKey:
    """The asset key of the warehouse table `layer.name`."""
    return dg.AssetKey(table.split("."))


def key_table(key: dg.AssetKey) -> str:
    """The warehouse table `layer.name` of an asset key."""
    return ".".join(key.path)
