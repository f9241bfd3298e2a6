"""Feast plug-ins named in feature_repo/feature_store.yaml: a SQLite online store and a registry file store.

Both subclass Feast's own and override one method each; reads, table creation and
teardown are Feast's.
"""

import datetime as dt
import uuid
from typing import Literal

from feast.infra.key_encoding_utils import serialize_entity_key
from feast.infra.online_stores.sqlite import (
    SqliteOnlineStore,
    SqliteOnlineStoreConfig,
    _quote_id,
    _table_id,
    adapt_datetime_epoch,
)
from feast.infra.registry.file import FileRegistryStore
from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto
from feast.utils import to_naive_utc

from ballast.common.atomic import write_atomic

ONLINE_STORE_TYPE = "ballast.features.feast_plugins.LatestWinsSqliteOnlineStore"


class LatestWinsSqliteOnlineStoreConfig(SqliteOnlineStoreConfig):
    """Feast looks up `<store class>Config` next to the store; same options as `sqlite`."""

    type: Literal["ballast.features.feast_plugins.LatestWinsSqliteOnlineStore"] = ONLINE_STORE_TYPE


class LatestWinsSqliteOnlineStore(SqliteOnlineStore):
    """Feast's SQLite online store, with one executemany per batch and an older row never replacing a newer one.

    The stock writer runs one upsert statement per entity and feature and lets whatever
    is materialized last win, so re-materializing an old partition (a backfill, a
    correction) would put old values online. Here the upsert only applies when the
    incoming event time is not older than the stored one. The class name must end in
    `SqliteOnlineStore`: Feast's inherited path lookup asserts it.
    """

    def online_write_batch(self, config, table, data, progress) -> None:
        options = config.online_store
        if options.vector_enabled or getattr(options, "enable_openai_compatible_store", False):
            # Vector columns need Feast's per-row encoding; keep its writer for them.
            return super().online_write_batch(config, table, data, progress)
        name = _quote_id(_table_id(config.project, table, config.registry.enable_online_feature_view_versioning))
        version = config.entity_key_serialization_version
        # Feast hands over one proto per entity: encode each key and time once, as Feast's
        # own SQLite adapter would (epoch seconds), then write every feature in one statement.
        rows = []
        for entity_key, values, event_ts, created_ts in data:
            key = serialize_entity_key(entity_key, entity_key_serialization_version=version)
            event = adapt_datetime_epoch(to_naive_utc(event_ts))
            created = None if created_ts is None else adapt_datetime_epoch(to_naive_utc(created_ts))
            rows.extend((key, feature, value.SerializeToString(), event, created) for feature, value in values.items())
        upsert = (
            f"insert into {name} (entity_key, feature_name, value, event_ts, created_ts) values (?, ?, ?, ?, ?)"
            " on conflict (entity_key, feature_name) do update set"
            " value = excluded.value, value_text = null, event_ts = excluded.event_ts, created_ts = excluded.created_ts"
            f" where excluded.event_ts > {name}.event_ts"
            f" or (excluded.event_ts = {name}.event_ts and coalesce(excluded.created_ts, 0) >= coalesce({name}.created_ts, 0))"
        )
        conn = self._get_conn(config)
        with conn:
            conn.executemany(upsert, rows)
        if progress:
            progress(len(data))


class AtomicFileRegistryStore(FileRegistryStore):
    """Feast's registry file, replaced atomically: a reader sees the old file or the new one, never half of one."""

    def _write_registry(self, registry_proto: RegistryProto) -> None:
        registry_proto.version_id = str(uuid.uuid4())
        registry_proto.last_updated.FromDatetime(dt.datetime.now(dt.UTC))
        write_atomic(self._filepath, registry_proto.SerializeToString())
