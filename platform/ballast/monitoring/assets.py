"""Monitoring layer: whylogs profiles per daily partition, drift against the champion's training window, drift checks."""

import datetime as dt
import html
import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd

from ballast import profiling
from ballast.common import code_version
from ballast.common.atomic import write_atomic
from ballast.common.metadata import NO_RETRY_REASON, file_url, readable
from ballast.common.partitions import partition_dates, single_run_asset
from ballast.common.retries import LOCK_RETRY_NOTE
from ballast.features.assets import CUSTOMER_DAILY_FEATURES
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE
from ballast.model import registry, training
from ballast.model.keys import CHAMPION_KEY, EVALUATION_KEY
from ballast.model.lineage import FEATURE_LOOKBACK_DAYS
from ballast.model.reference import REFERENCE_FEATURES, REFERENCE_SCORES, SCORE
from ballast.monitoring.quality_history import Repository, quality_history_asset
from ballast.resources import WarehouseResource
from ballast.settings import WAREHOUSE_POOL, Settings

FEATURE_PROFILES = dg.AssetKey(["monitoring", "feature_profiles"])
SCORE_PROFILES = dg.AssetKey(["monitoring", "score_profiles"])
DRIFT_REPORT = dg.AssetKey(["monitoring", "drift_report"])
DRIFT_SHARE_CHECK = "drift_share"
FEATURE_PSI_CHECK = "feature_psi"
PROFILED_CHECK = "every_row_profiled"
# The partition column of the features table, by which profiles are segmented.
DAY_COLUMN = "feature_date"
CODE_VERSION = code_version.of_sources(Path(__file__), profiling)
NO_RETRY = (
    "Profiles the local warehouse into files under BALLAST_HOME, each written atomically: deterministic, so a retry"
    f" repeats the failure; the next run redoes the window. {LOCK_RETRY_NOTE}"
)


def profile_path(settings: Settings, kind: str, day: dt.date) -> Path:
    return settings.monitoring_dir / "profiles" / kind / f"{day.isoformat()}.whylogs"


def drift_path(settings: Settings, day: dt.date, suffix: str) -> Path:
    return settings.monitoring_dir / "drift" / f"{day.isoformat()}.{suffix}"


def _profile_window(
    settings: Settings, engine: profiling.WhylogsEngine, kind: str, frame: pd.DataFrame
) -> tuple[list[str], pd.DataFrame, int]:
    """Profile every day of `frame` in one pass and write each day's file; returns the miscounted days, the last day's summary and the days profiled."""
    profiles = engine.profile_by_day(frame, DAY_COLUMN)
    rows = frame.groupby(pd.to_datetime(frame[DAY_COLUMN]).dt.date).size()
    short = []
    for day, found in profiles.items():
        write_atomic(profile_path(settings, kind, day), found.profile)
        # A profile that counted fewer (or more) rows than the day has, in any column.
        if any(n != rows[day] for n in found.counts.values()):
            short.append(day.isoformat())
    summary = engine.summary(profiles[max(profiles)].profile) if profiles else pd.DataFrame()
    return short, summary, len(profiles)


def _html_report(day: dt.date, version: str, results: pd.DataFrame, share: float) -> str:
    return (
        f"<!doctype html><meta charset='utf-8'><title>Drift {day}</title>"
        f"<h1>Drift on {day} against champion {html.escape(version)}</h1>"
        f"<p>Drift share: {share:.3f}</p>" + results.round(4).to_html(index=False)
    )


def champion_or_none(settings: Settings) -> registry.ModelVersion | None:
    """The champion to compare with; None before any model passed the gates (nothing to monitor yet)."""
    current = registry.champion(settings.registry_dir, training.MODEL_NAME)
    if current is not None and not (current.path / REFERENCE_FEATURES).is_file():
        raise dg.Failure(
            f"champion {current.version} has no reference profile; re-run {EVALUATION_KEY.to_user_string()}"
        )
    return current


def _profiled_spec(key: dg.AssetKey) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        PROFILED_CHECK,
        asset=key,
        description="Every day's profile counts every row of that day in every profiled column.",
    )


def _profiled_result(short_days: list[str], days: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=PROFILED_CHECK,
        passed=not short_days,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=readable({"days_profiled": days, "days_miscounted": len(short_days), "days": ", ".join(short_days)}),
    )


def _daily(partitions_def: dg.PartitionsDefinition) -> dict:
    """What every monitoring asset shares: daily partitions, the warehouse pool, whylogs, no retries."""
    return {
        "partitions_def": partitions_def,
        "group_name": "monitoring",
        "pool": WAREHOUSE_POOL,
        "code_version": CODE_VERSION,
        "kinds": {"whylogs"},
        "metadata": {NO_RETRY_REASON: NO_RETRY},
    }


def feature_profiles_asset(
    settings: Settings, partitions_def: dg.PartitionsDefinition, engine: profiling.WhylogsEngine
) -> dg.AssetsDefinition:
    @single_run_asset(
        FEATURE_PROFILES,
        deps=[CUSTOMER_DAILY_FEATURES],
        check_specs=[_profiled_spec(FEATURE_PROFILES)],
        **_daily(partitions_def),
    )
    def feature_profiles(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """whylogs profile of the model's features for each daily partition, stored under BALLAST_HOME/monitoring."""
        first, last = partition_dates(context)
        with warehouse.connect(read_only=True) as con:
            frame = con.execute(
                f"select {DAY_COLUMN}, {', '.join(training.FEATURES)} from {CUSTOMER_DAILY_FEATURES_TABLE}"
                f" where {DAY_COLUMN} between ? and ? order by {DAY_COLUMN}",
                [first, last],
            ).df()
        short, summary, profiled = _profile_window(settings, engine, "features", frame)
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "partitions_profiled": profiled,
                    "dagster/row_count": len(frame),
                    "summary_of_last_day": dg.MetadataValue.md(
                        summary.round(3).to_markdown(index=False) if len(summary) else ""
                    ),
                    "path": dg.MetadataValue.path(str(settings.monitoring_dir / "profiles" / "features")),
                }
            ),
            check_results=[_profiled_result(short, profiled)],
        )

    return feature_profiles


def score_profiles_asset(
    settings: Settings, partitions_def: dg.PartitionsDefinition, engine: profiling.WhylogsEngine
) -> dg.AssetsDefinition:
    @single_run_asset(
        SCORE_PROFILES,
        deps=[CUSTOMER_DAILY_FEATURES, CHAMPION_KEY],
        check_specs=[_profiled_spec(SCORE_PROFILES)],
        **_daily(partitions_def),
    )
    def score_profiles(context: dg.AssetExecutionContext, warehouse: WarehouseResource) -> dg.MaterializeResult:
        """whylogs profile of the champion's churn scores for each daily partition."""
        first, last = partition_dates(context)
        current = champion_or_none(settings)
        if current is None:
            return dg.MaterializeResult(
                metadata={"champion_version": "none", "note": "no champion yet: nothing scored"},
                check_results=[_profiled_result([], 0)],
            )
        pipeline = registry.load(current)
        with warehouse.connect(read_only=True) as con:
            frame = con.execute(
                f"select * from {CUSTOMER_DAILY_FEATURES_TABLE} where {DAY_COLUMN} between ? and ? order by {DAY_COLUMN}",
                [first, last],
            ).df()
        # The window scored in one call: the model scores each row on its own.
        scores = pd.DataFrame({DAY_COLUMN: frame[DAY_COLUMN], SCORE: training.score(pipeline, frame)})
        short, summary, profiled = _profile_window(settings, engine, "scores", scores)
        return dg.MaterializeResult(
            metadata=readable(
                {
                    "champion_version": current.version,
                    "dagster/row_count": len(frame),
                    "summary_of_last_day": dg.MetadataValue.md(
                        summary.round(4).to_markdown(index=False) if len(summary) else ""
                    ),
                }
            ),
            check_results=[_profiled_result(short, profiled)],
        )

    return score_profiles


@dataclass(frozen=True)
class _Reference:
    """The champion's training-window profiles and the columns they are compared on."""

    version: str
    features: bytes
    scores: bytes
    numeric: list[str]
    categorical: list[str]

    @classmethod
    def of(cls, settings: Settings, current: registry.ModelVersion) -> "_Reference":
        # Trend features (tenure grows every day by definition) would drift forever.
        monitored = [c for c in training.FEATURES if c not in settings.drift_exempt]
        return cls(
            version=current.version,
            features=(current.path / REFERENCE_FEATURES).read_bytes(),
            scores=(current.path / REFERENCE_SCORES).read_bytes(),
            numeric=[c for c in monitored if c not in training.CATEGORICAL_FEATURES],
            categorical=[c for c in monitored if c in training.CATEGORICAL_FEATURES],
        )


def _profiles(settings: Settings, kind: str, days: list[dt.date]) -> dict[dt.date, bytes]:
    """The stored profiles of `kind` among `days` (a day without data has none)."""
    paths = {day: profile_path(settings, kind, day) for day in days}
    return {day: path.read_bytes() for day, path in paths.items() if path.is_file()}


def _window_drift(
    settings: Settings, engine: profiling.WhylogsEngine, reference: _Reference, days: list[dt.date]
) -> list[tuple[dict, pd.DataFrame]]:
    """Each day's drift record and table, for the days with a feature profile; each reference is read once."""
    features = engine.compare_days(
        _profiles(settings, "features", days), reference.features, reference.numeric, reference.categorical
    )
    scores = engine.compare_days(_profiles(settings, "scores", list(features)), reference.scores, [SCORE], [])
    return [_day_drift(settings, reference, day, results + scores.get(day, [])) for day, results in features.items()]


def _day_drift(
    settings: Settings, reference: _Reference, day: dt.date, results: list[profiling.ColumnDrift]
) -> tuple[dict, pd.DataFrame]:
    """One day's drift record (also written as JSON and HTML) and its table."""
    table = pd.DataFrame([r.as_dict() for r in results]).sort_values("psi", ascending=False)
    features_only = [r for r in results if r.column != SCORE]
    share = profiling.drift_share(features_only, settings.drift_psi, settings.drift_p_value)
    worst = table[table.column != SCORE].iloc[0]
    record = {
        "date": day.isoformat(),
        "champion": reference.version,
        "drift_share": share,
        "max_psi": float(worst.psi),
        "max_psi_feature": worst.column,
        "drifted": [
            r.column for r in features_only if profiling.drifted(r, settings.drift_psi, settings.drift_p_value)
        ],
        "columns": table.to_dict(orient="records"),
    }
    write_atomic(drift_path(settings, day, "json"), json.dumps(record, indent=2))
    write_atomic(drift_path(settings, day, "html"), _html_report(day, reference.version, table, share))
    return record, table


def _partitions_over(days: list[str]) -> dict:
    return {
        "partitions_over": len(days),
        "first_partition_over": days[0] if days else "",
        "last_partition_over": days[-1] if days else "",
    }


def _drift_checks(settings: Settings, per_day: list[dict], window: str, version: str) -> list[dg.AssetCheckResult]:
    """drift_share (WARN) and feature_psi (ERROR) over the window's daily drift records."""
    warn_days = [r["date"] for r in per_day if r["drift_share"] > settings.drift_share_warn]
    error_days = [r["date"] for r in per_day if r["max_psi"] > settings.psi_error]
    worst = max(per_day, key=lambda r: r["max_psi"], default=None)
    return [
        dg.AssetCheckResult(
            check_name=DRIFT_SHARE_CHECK,
            passed=not warn_days,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"drift share above {settings.drift_share_warn} on {len(warn_days)} partition(s)"
            if warn_days
            else None,
            metadata=readable(
                {"window": window, **_partitions_over(warn_days), "threshold": settings.drift_share_warn}
            ),
        ),
        dg.AssetCheckResult(
            check_name=FEATURE_PSI_CHECK,
            passed=not error_days,
            severity=dg.AssetCheckSeverity.ERROR,
            description=(
                f"PSI above {settings.psi_error} on {len(error_days)} partition(s);"
                f" worst {worst['max_psi_feature']} {worst['max_psi']:.3f} on {worst['date']}"
            )
            if error_days
            else None,
            metadata=readable(
                {
                    "window": window,
                    **_partitions_over(error_days),
                    "threshold": settings.psi_error,
                    "champion_version": version,
                }
            ),
        ),
    ]


# The most recent days the drift step's per-day table lists.
DRIFT_DAYS_LISTED = 30


def _drift_metadata(per_day: list[dict], latest: pd.DataFrame, judged_from: dt.date, report: Path) -> dict:
    frame = pd.DataFrame(per_day)
    return {
        "partitions": len(per_day),
        "judged_from": str(judged_from),
        "latest_drift_share": per_day[-1]["drift_share"] if per_day else 0.0,
        "top_drifted_features_latest": dg.MetadataValue.md(
            latest.head(10).round(4).to_markdown(index=False) if len(latest) else ""
        ),
        "latest_report": dg.MetadataValue.path(str(report)),
        # Dagster copies this into every partition's event: the latest days only (each day's report stays on disk).
        "drift_share_by_day": dg.MetadataValue.md(
            frame[["date", "drift_share", "max_psi", "max_psi_feature"]]
            .tail(DRIFT_DAYS_LISTED)
            .round(4)
            .to_markdown(index=False)
            if len(frame)
            else ""
        ),
    }


def drift_report_asset(
    settings: Settings, partitions_def: dg.PartitionsDefinition, engine: profiling.WhylogsEngine
) -> dg.AssetsDefinition:
    @single_run_asset(
        DRIFT_REPORT,
        deps=[FEATURE_PROFILES, SCORE_PROFILES],
        **_daily(partitions_def),
        check_specs=[
            dg.AssetCheckSpec(
                DRIFT_SHARE_CHECK,
                asset=DRIFT_REPORT,
                description="Share of drifted features stays within BALLAST_DRIFT_SHARE_WARN"
                f" ({settings.drift_share_warn:g}); WARN above.",
            ),
            dg.AssetCheckSpec(
                FEATURE_PSI_CHECK,
                asset=DRIFT_REPORT,
                description=f"No model feature's PSI exceeds BALLAST_PSI_ERROR ({settings.psi_error:g}); ERROR above.",
            ),
        ],
    )
    def drift_report(context: dg.AssetExecutionContext):
        """Per-partition drift of features and scores against the champion's training window: KS / chi-square p-values, PSI, drift share."""
        first, last = partition_dates(context)
        current = champion_or_none(settings)
        if current is None:
            note = "no champion yet: no reference to compare with"
            yield dg.MaterializeResult(metadata={"champion_version": "none", "note": note})
            for name in (DRIFT_SHARE_CHECK, FEATURE_PSI_CHECK):
                yield dg.AssetCheckResult(check_name=name, passed=True, description=note)
            return
        reference = _Reference.of(settings, current)
        # A day whose long feature windows reach before the data began is not comparable.
        judged_from = settings.start_date + dt.timedelta(days=FEATURE_LOOKBACK_DAYS)
        start = max(first, judged_from)
        days = [start + dt.timedelta(days=i) for i in range((last - start).days + 1)]
        found = _window_drift(settings, engine, reference, days)
        per_day = [record for record, _ in found]
        latest = found[-1][1] if found else pd.DataFrame()
        report = drift_path(settings, last, "html")
        yield dg.MaterializeResult(
            metadata=readable(
                {
                    "champion_version": current.version,
                    # The latest day's HTML report, opened from the UI through `ballast dev`'s file server.
                    "latest_report_url": dg.MetadataValue.url(file_url(settings, report)) if report.is_file() else None,
                    **_drift_metadata(per_day, latest, judged_from, report),
                }
            )
        )
        yield from _drift_checks(settings, per_day, f"{first} to {last}", current.version)

    return drift_report


def build_defs(settings: Settings, partitions_def: dg.PartitionsDefinition, repository: Repository) -> dg.Definitions:
    """`repository` gives the code location once built: the quality history reads the history of its checks."""
    engine = profiling.WhylogsEngine()
    return dg.Definitions(
        assets=[
            feature_profiles_asset(settings, partitions_def, engine),
            score_profiles_asset(settings, partitions_def, engine),
            drift_report_asset(settings, partitions_def, engine),
            quality_history_asset(settings, repository),
        ]
    )
