"""Drift between a partition's profile and a reference profile, behind a small engine interface.

whylogs is unmaintained upstream, so assets only see `DriftEngine`: a profile is opaque
bytes, a summary is a frame, a comparison is a list of `ColumnDrift`. Swapping whylogs
for another sketching library means writing one class here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import stats

# Population stability index: bins are the reference's deciles (numeric) or its items (categorical).
PSI_BINS = 10
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class ColumnDrift:
    column: str
    kind: str  # numeric (KS test) or categorical (chi-square test)
    statistic: float
    p_value: float
    psi: float

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DayProfile:
    """One day's profile and the values it counted per column (nulls included), read without deserializing it."""

    profile: bytes
    counts: dict[str, int]


class DriftEngine(Protocol):
    name: str

    def profile(self, frame: pd.DataFrame) -> bytes: ...

    def profile_by_day(self, frame: pd.DataFrame, day: str) -> dict[dt.date, DayProfile]: ...

    def summary(self, profile: bytes) -> pd.DataFrame: ...

    def compare(
        self, target: bytes, reference: bytes, numeric: list[str], categorical: list[str]
    ) -> list[ColumnDrift]: ...

    def compare_days(
        self, targets: dict[dt.date, bytes], reference: bytes, numeric: list[str], categorical: list[str]
    ) -> dict[dt.date, list[ColumnDrift]]: ...


def psi(target: np.ndarray, reference: np.ndarray) -> float:
    """PSI of two distributions given as shares over the same bins."""
    t = np.maximum(np.asarray(target, dtype=float), PSI_FLOOR)
    r = np.maximum(np.asarray(reference, dtype=float), PSI_FLOOR)
    return float(np.sum((t - r) * np.log(t / r)))


def drift_share(results: list[ColumnDrift], min_psi: float = 0.1, p_value: float = 0.05) -> float:
    """Fraction of columns that drifted: PSI above `min_psi` and the test rejecting at `p_value`.

    PSI decides: with thousands of rows a day the tests reject differences too small to matter.
    """
    return sum(drifted(r, min_psi, p_value) for r in results) / len(results) if results else 0.0


def drifted(result: ColumnDrift, min_psi: float = 0.1, p_value: float = 0.05) -> bool:
    return result.psi > min_psi and result.p_value < p_value


class WhylogsEngine:
    """Profiles with whylogs (KLL sketches for numbers, frequent items for strings)."""

    name = "whylogs"

    def profile(self, frame: pd.DataFrame) -> bytes:
        import whylogs
        from whylogs.core import DatasetSchema

        return whylogs.log(frame, schema=DatasetSchema(resolvers=_resolver())).view().serialize()

    def profile_by_day(self, frame: pd.DataFrame, day: str) -> dict[dt.date, DayProfile]:
        """One profile per value of the date column `day`, of the other columns, in one segmented whylogs pass.

        Each day's profile equals `profile` of that day's rows: the segment column is left out.
        """
        import whylogs
        from whylogs.core import DatasetProfileView, DatasetSchema
        from whylogs.core.segmentation_partition import ColumnMapperFunction, SegmentationPartition

        if frame.empty:
            return {}
        # The key as a number (YYYYMMDD): whylogs profiles it too before it is dropped, and a
        # text column costs it six per-value type tests that a numeric one does not.
        dates = pd.to_datetime(frame[day])
        keyed = frame.assign(**{day: dates.dt.year * 10_000 + dates.dt.month * 100 + dates.dt.day})
        # Built directly, not with segment_on_column, which reports its use over the network.
        partition = SegmentationPartition(name=day, mapper=ColumnMapperFunction(col_names=[day]))
        results = whylogs.log(keyed, schema=DatasetSchema(segments={day: partition}, resolvers=_resolver()))
        profiles = {}
        for segment in results.segments() or []:
            view = results.view(segment)
            columns = {name: column for name, column in view.get_columns().items() if name != day}
            trimmed = DatasetProfileView(
                columns=columns, dataset_timestamp=view.dataset_timestamp, creation_timestamp=view.creation_timestamp
            )
            counts = {name: column.get_metric("counts").n.value for name, column in columns.items()}
            key = dt.datetime.strptime(segment.key[0], "%Y%m%d").date()
            profiles[key] = DayProfile(trimmed.serialize(), counts)
        return dict(sorted(profiles.items()))

    def _view(self, profile: bytes):
        from whylogs.core import DatasetProfileView

        return DatasetProfileView.deserialize(profile)

    def summary(self, profile: bytes) -> pd.DataFrame:
        table = self._view(profile).to_pandas()
        keep = {
            "counts/n": "count",
            "counts/null": "nulls",
            "distribution/mean": "mean",
            "distribution/stddev": "stddev",
            "distribution/min": "min",
            "distribution/q_25": "q25",
            "distribution/median": "median",
            "distribution/q_75": "q75",
            "distribution/max": "max",
            "cardinality/est": "distinct",
        }
        present = [c for c in keep if c in table.columns]
        return table[present].rename(columns=keep).rename_axis("column").reset_index()

    def compare(self, target: bytes, reference: bytes, numeric: list[str], categorical: list[str]) -> list[ColumnDrift]:
        return self._compare(self._view(target), self._view(reference), numeric, categorical)

    def compare_days(
        self, targets: dict[dt.date, bytes], reference: bytes, numeric: list[str], categorical: list[str]
    ) -> dict[dt.date, list[ColumnDrift]]:
        """`compare` of each day's profile with one reference, read once."""
        r_view = self._view(reference)
        return {day: self._compare(self._view(blob), r_view, numeric, categorical) for day, blob in targets.items()}

    def _compare(self, t_view, r_view, numeric: list[str], categorical: list[str]) -> list[ColumnDrift]:
        results = []
        for column in numeric:
            t = t_view.get_column(column).get_metric("distribution").kll.value
            r = r_view.get_column(column).get_metric("distribution").kll.value
            if t.is_empty() or r.is_empty():
                continue
            results.append(_numeric_drift(column, t, r))
        for column in categorical:
            t = _frequencies(t_view, column)
            r = _frequencies(r_view, column)
            if not t or not r:
                continue
            results.append(_categorical_drift(column, t, r))
        return results


def _resolver():
    """whylogs' standard metrics, the same as its default's, resolved directly: the default builds
    each metric twice per column and per day (once to read its name), about half of a window's time."""
    from whylogs.core.resolvers import StandardResolver

    return StandardResolver()


def _numeric_drift(column: str, target, reference) -> ColumnDrift:
    # KS on the sketches: both CDFs at the pooled quantile points of the two samples.
    probes = np.linspace(0.0, 1.0, 101)
    points = np.unique(np.concatenate([reference.get_quantiles(probes), target.get_quantiles(probes)]))
    d = float(np.max(np.abs(np.asarray(target.get_cdf(points))[:-1] - np.asarray(reference.get_cdf(points))[:-1])))
    n_t, n_r = target.get_n(), reference.get_n()
    p_value = float(stats.kstwo.sf(d, max(1, round(n_t * n_r / (n_t + n_r)))))
    edges = np.unique(reference.get_quantiles(np.linspace(0.0, 1.0, PSI_BINS + 1))[1:-1])
    shares = lambda sketch: np.diff(np.concatenate([[0.0], np.asarray(sketch.get_cdf(edges))[:-1], [1.0]]))  # noqa: E731
    return ColumnDrift(column, "numeric", d, p_value, psi(shares(target), shares(reference)))


def _frequencies(view, column: str) -> dict[str, float]:
    metric = view.get_column(column).get_metric("frequent_items")
    if metric is None:
        return {}
    return {item.value: float(item.est) for item in metric.to_summary_dict()["frequent_strings"]}


def _categorical_drift(column: str, target: dict[str, float], reference: dict[str, float]) -> ColumnDrift:
    items = sorted(set(target) | set(reference))
    t = np.array([target.get(i, 0.0) for i in items])
    r = np.array([reference.get(i, 0.0) for i in items])
    # Expected target counts under the reference mix; an item new to the target gets a floor.
    expected = np.maximum(r / r.sum(), PSI_FLOOR) * t.sum()
    expected *= t.sum() / expected.sum()
    statistic, p_value = stats.chisquare(t, expected)
    return ColumnDrift(column, "categorical", float(statistic), float(p_value), psi(t / t.sum(), r / r.sum()))
