"""Reading asset-check executions from the instance: which reported a result, and every one after a point, paged."""

import dagster as dg

# Executions read per request; every page is read.
PAGE = 1000


def evaluated(record) -> bool:
    """An execution that reported its result (the others are planned: running, or skipped)."""
    return record.event is not None and record.event.dagster_event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION


def executions_after(storage, key: dg.AssetCheckKey, after: int = 0) -> list:
    """Every execution of `key` (planned or evaluated) with an id above `after`, newest first, read a page at a time."""
    found, before = [], None
    while True:
        page = storage.get_asset_check_execution_history(key, limit=PAGE, cursor=before)
        newer = [r for r in page if r.id > after]
        found += newer
        if len(page) < PAGE or len(newer) < len(page):
            return found
        before = page[-1].id
