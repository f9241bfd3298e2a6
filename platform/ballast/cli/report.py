"""The platform's summary: rows per layer, quarantine by reason, the latest model."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from ballast.clean.tables import CLEAN_QUARANTINE_TABLE, CLEAN_TRANSACTIONS_TABLE
from ballast.common.naming import table_key
from ballast.features import feast_repo
from ballast.features.tables import CUSTOMER_DAILY_FEATURES_TABLE
from ballast.model import registry
from ballast.model.keys import LABELS_TABLE, SCORES_TABLE, TRAINING_SET_TABLE
from ballast.model.training import MODEL_NAME
from ballast.monitoring import check_history
from ballast.raw import health_checks
from ballast.raw.tables import RAW_REJECTED_FILES_TABLE, RAW_TRANSACTIONS_TABLE
from ballast.settings import Settings

LAYER_TABLES = (
    RAW_TRANSACTIONS_TABLE,
    RAW_REJECTED_FILES_TABLE,
    CLEAN_TRANSACTIONS_TABLE,
    CLEAN_QUARANTINE_TABLE,
    CUSTOMER_DAILY_FEATURES_TABLE,
    LABELS_TABLE,
    TRAINING_SET_TABLE,
    SCORES_TABLE,
)


def _warehouse(settings: Settings) -> tuple[dict[str, int | None], dict[str, int], list[dict[str, str]]]:
    """Row counts per layer table, quarantine reasons and rejected files; empty when there is no warehouse yet."""
    layers: dict[str, int | None] = dict.fromkeys((t.replace(".", "/") for t in LAYER_TABLES), None)
    quarantine: dict[str, int] = {}
    rejected_files: list[dict[str, str]] = []
    if not settings.warehouse_path.exists():
        return layers, quarantine, rejected_files
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        existing = {
            f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()
        }
        for table in LAYER_TABLES:
            if table in existing:
                layers[table.replace(".", "/")] = con.execute(f"select count(*) from {table}").fetchone()[0]
        if CLEAN_QUARANTINE_TABLE in existing:
            quarantine = dict(
                con.execute(
                    f"select reject_reason, count(*) from {CLEAN_QUARANTINE_TABLE} group by 1 order by 2 desc, 1"
                ).fetchall()
            )
        if RAW_REJECTED_FILES_TABLE in existing:
            rejected_files = [
                {"event_date": None if d is None else str(d), "source_file": f, "reason": r, "detail": t}
                for d, f, r, t in con.execute(
                    f"select event_date, source_file, reason, detail from {RAW_REJECTED_FILES_TABLE}"
                    " order by 1 nulls first, 2"
                ).fetchall()
            ]
    finally:
        con.close()
    return layers, quarantine, rejected_files


def _model(settings: Settings) -> dict[str, Any] | None:
    """The registry's versions, champion (numeric metrics only) and latest candidate; None before the first model."""
    found = registry.versions(settings.registry_dir, MODEL_NAME)
    if not found:
        return None
    current = registry.champion(settings.registry_dir, MODEL_NAME)
    newest = found[-1]
    champion = None
    if current is not None:
        metrics = current.metadata.get("evaluation", current.metadata.get("metrics", {}))
        champion = {
            "version": current.version,
            "created_at": current.metadata.get("created_at"),
            # Keep the report short: the curve and tables are in `ballast model show`.
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
            "gates": current.metadata.get("gates"),
            "override": current.metadata.get("override"),
        }
    evaluated = newest.metadata.get("evaluation", {})
    return {
        "name": MODEL_NAME,
        "versions": len(found),
        "champion": champion,
        "latest_candidate": {
            "version": newest.version,
            # None until the candidate has been evaluated against the recency baseline.
            **{k: evaluated.get(k) for k in ("roc_auc", "baseline_roc_auc", "baseline_margin")},
            "gates": newest.metadata.get("gates"),
            "promoted": current is not None and current.version == newest.version,
        },
    }


def build_report(settings: Settings) -> dict[str, Any]:
    layers, quarantine, rejected_files = _warehouse(settings)
    model = _model(settings)
    return {
        "home": str(settings.home),
        "drift": _drift(settings),
        "alerts": _alerts(settings),
        "layers": layers,
        "quarantine": quarantine,
        "rejected_files": rejected_files,
        "ingestion_lag": _ingestion_lag(settings),
        "feature_store": feast_repo.online_status(settings.home),
        "model": model,
        "quality": _quality(settings),
    }


def _quality(settings: Settings) -> dict[str, Any] | None:
    """Check pass rates, open failures and recoveries from monitoring/quality_history's tables; None before it ran."""
    if not settings.warehouse_path.exists():
        return None
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        tables = {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
        if not set(check_history.TABLES) <= tables:
            return None
        return check_history.report(con, dt.datetime.now(dt.UTC).replace(tzinfo=None))
    finally:
        con.close()


class ReportError(Exception):
    """A file the report reads is damaged; the message names it and how to get it back."""


def _read_json(path: Path, text: str, keys: tuple[str, ...], fix: str) -> dict[str, Any]:
    """A JSON object with `keys`, or a ReportError naming the file."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ReportError(f"{path} is damaged (not JSON: {exc}); {fix}") from None
    if not isinstance(value, dict) or not set(keys) <= set(value):
        raise ReportError(f"{path} is damaged (not an object with {', '.join(keys) or 'fields'}); {fix}")
    return value


def _ingestion_lag(settings: Settings) -> dict[str, Any] | None:
    """The ingestion-lag gauge of the latest raw load (its materialization's metadata); None before the first."""
    if not (settings.dagster_home / "dagster.yaml").is_file():
        return None
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    try:
        records = instance.fetch_materializations(table_key(RAW_TRANSACTIONS_TABLE), limit=1).records
    finally:
        instance.dispose()
    metadata = {k: v.value for k, v in records[0].asset_materialization.metadata.items()} if records else {}
    if health_checks.LAG_MEDIAN_HOURS not in metadata:
        return None
    keys = (health_checks.LAG_PARTITIONS, health_checks.LAG_MEDIAN_HOURS, health_checks.LAG_MAX_HOURS)
    return {
        "run_id": records[0].run_id,
        **{k: metadata[k] for k in keys},
        "max_partition": metadata[health_checks.LAG_MAX_PARTITION],
    }


def _drift(settings: Settings) -> dict[str, Any] | None:
    reports = sorted((settings.monitoring_dir / "drift").glob("*.json"))
    if not reports:
        return None
    keys = ("date", "champion", "drift_share", "drifted", "max_psi", "max_psi_feature")
    latest = _read_json(
        reports[-1], reports[-1].read_text(errors="replace"), keys, "delete it and run `ballast run` to write it again"
    )
    return {
        "partition": latest["date"],
        "champion": latest["champion"],
        "drift_share": latest["drift_share"],
        "drifted_features": latest["drifted"],
        "max_psi": latest["max_psi"],
        "max_psi_feature": latest["max_psi_feature"],
    }


def _alerts(settings: Settings) -> dict[str, int]:
    log = settings.alert_log
    counts: dict[str, int] = {}
    if log.is_file():
        for number, line in enumerate(log.read_text(errors="replace").splitlines(), start=1):
            if line.strip():
                severity = _read_json(log, line, ("severity",), f"remove or repair its line {number}")["severity"]
                counts[severity] = counts.get(severity, 0) + 1
    return counts


def format_report(report: dict[str, Any]) -> str:
    lines = ["Rows per layer:"]
    width = max(len(k) for k in report["layers"])
    for key, rows in report["layers"].items():
        lines.append(f"  {key:<{width}}  {'-' if rows is None else f'{rows:,}'}")
    lines.append("Quarantined rows by reason:")
    if report["quarantine"]:
        lines += [f"  {reason:<22} {rows:,}" for reason, rows in report["quarantine"].items()]
    else:
        lines.append("  none")
    if report["rejected_files"]:
        lines.append("Rejected files:")
        lines += [f"  {r['source_file']}: {r['reason']} ({r['detail']})" for r in report["rejected_files"]]
    lag = report["ingestion_lag"]
    if lag:
        lines.append(
            f"Ingestion lag (latest raw load, {lag[health_checks.LAG_PARTITIONS]:,} partition(s)): median"
            f" {lag[health_checks.LAG_MEDIAN_HOURS]:,.1f} h, max {lag[health_checks.LAG_MAX_HOURS]:,.1f} h"
            f" ({lag['max_partition']}), from each day's latest event to its file's load"
        )
    store = report["feature_store"]
    if store and store["last_materialized_partition"]:
        lines.append(
            f"Feature store: {store['entities_online']:,} customers online (feature service {store['feature_service']}),"
            f" last materialized partition {store['last_materialized_partition']}"
        )
    else:
        lines.append("Feature store: nothing materialized yet")
    drift = report["drift"]
    if drift:
        lines.append(
            f"Drift on {drift['partition']}: share {drift['drift_share']:.2f}, max PSI {drift['max_psi']:.3f}"
            f" ({drift['max_psi_feature']}) against champion {drift['champion']}"
        )
    if report["alerts"]:
        lines.append("Alerts: " + ", ".join(f"{n} {severity}" for severity, n in sorted(report["alerts"].items())))
    model = report["model"]
    champion = model and model["champion"]
    if champion:
        m = champion["metrics"]
        baseline = (
            f"  recency baseline {m['baseline_roc_auc']:.3f} (margin {m['baseline_margin']:+.3f})"
            if "baseline_margin" in m
            else ""
        )
        lines.append(
            f"Champion: {model['name']} {champion['version']}  holdout ROC AUC {m.get('roc_auc', float('nan')):.3f}"
            f"{baseline}  PR AUC {m.get('pr_auc', float('nan')):.3f}  ({m.get('holdout_rows', 0):,} holdout rows;"
            f" {model['versions']} version(s) in the registry)"
        )
    elif model:
        lines.append(f"Champion: none yet ({model['versions']} version(s) in the registry)")
    else:
        lines.append("Model: none trained yet")
    latest = model and model["latest_candidate"]
    if latest and not latest["promoted"]:
        failed = [g for g in latest["gates"] or [] if not g["passed"]]
        because = "; ".join(f"{g['name']}: {g['note']}" for g in failed) or "it has not been through the gates"
        lines.append(f"Candidate {latest['version']} was not promoted ({because})")
    lines += check_history.format_report(report["quality"])
    return "\n".join(lines)
