"""Daily partitions: the one definition every layer shares, the window a run or step covers, and single-run assets."""

import datetime as dt
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import dagster as dg

from ballast.settings import Settings

# Dagster's run tags for a partition and for a single-run backfill's range. They are
# stable strings that Dagster writes on every partitioned run; the constants holding
# them are not in its public API, so they are spelled here once.
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"

WHOLE_TABLE = ("0001-01-01", "9999-12-31")


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, so a file dated today loads now (a later
    # delivery of the day refreshes it); a file dated after today is rejected.
    return dg.DailyPartitionsDefinition(start_date=settings.start_date.isoformat(), end_offset=1)


def partition_dates(context: dg.AssetExecutionContext) -> tuple[dt.date, dt.date]:
    """First and last day (both inclusive) of the partitions this step materializes."""
    window = context.partition_time_window
    return window.start.date(), (window.end - dt.timedelta(days=1)).date()


def run_window(tags: dict[str, str]) -> tuple[str, str]:
    """The partition window of a run from its tags; the whole table for an unpartitioned run."""
    if RANGE_START_TAG in tags:
        return tags[RANGE_START_TAG], tags[RANGE_END_TAG]
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG], tags[PARTITION_TAG]
    return WHOLE_TABLE


def range_tags(start: dt.date, end: dt.date) -> dict[str, str]:
    """The tags of a single-run backfill over [start, end]."""
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: end.isoformat()}


def single_run_asset(
    key: dg.AssetKey,
    *,
    deps: Iterable[dg.AssetKey] = (),
    kinds: set[str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    skippable: bool = False,
    **options: Any,
) -> Callable[[Callable[..., Any]], dg.AssetsDefinition]:
    """One asset whose partitions a single run materializes: @asset's arguments, on @multi_asset.

    The backfill policy is beta on @asset and stable on @multi_asset. As with @asset, the op
    is named after the key (run config and job selections use that name) and the function's
    docstring is the asset's description. A `skippable` asset may end its step without output.
    """

    def decorate(fn: Callable[..., Any]) -> dg.AssetsDefinition:
        spec = dg.AssetSpec(
            key, deps=deps, description=inspect.getdoc(fn), kinds=kinds, metadata=metadata, skippable=skippable
        )
        return dg.multi_asset(
            specs=[spec],
            name=key.to_python_identifier(),
            backfill_policy=dg.BackfillPolicy.single_run(),
            **options,
        )(fn)

    return decorate
