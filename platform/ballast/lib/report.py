"""The platform's summary: rows per layer, quarantine by reason, the latest model."""

from __future__ import annotations

from typing import Any

import duckdb

from ballast.lib import feature_repo, registry
from ballast.lib.churn import MODEL_NAME
from ballast.settings import Settings

LAYER_TABLES = (
    "raw.transactions",
    "raw.rejected_files",
    "clean.transactions",
    "clean.transactions_quarantine",
    "features.customer_daily_features",
    "model.churn_labels",
    "model.training_set",
    "model.churn_scores",
)


def build_report(settings: Settings) -> dict[str, Any]:
    layers: dict[str, int | None] = dict.fromkeys((t.replace(".", "/") for t in LAYER_TABLES), None)
    quarantine: dict[str, int] = {}
    rejected_files: list[dict[str, str]] = []
    if settings.warehouse_path.exists():
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            existing = {f"{s}.{t}" for s, t in con.execute(
                "select schema_name, table_name from duckdb_tables()"
            ).fetchall()}
            for table in LAYER_TABLES:
                if table in existing:
                    layers[table.replace(".", "/")] = con.execute(f"select count(*) from {table}").fetchone()[0]
            if "clean.transactions_quarantine" in existing:
                quarantine = dict(con.execute(
                    "select reject_reason, count(*) from clean.transactions_quarantine group by 1 order by 2 desc, 1"
                ).fetchall())
            if "raw.rejected_files" in existing:
                rejected_files = [
                    {"event_date": str(d), "source_file": f, "reason": r, "detail": t}
                    for d, f, r, t in con.execute(
                        "select event_date, source_file, reason, detail from raw.rejected_files order by 1, 2"
                    ).fetchall()
                ]
        finally:
            con.close()
    latest = registry.latest(settings.registry_dir, MODEL_NAME)
    model = None
    if latest is not None:
        model = {
            "name": MODEL_NAME,
            "version": latest.version,
            "created_at": latest.metadata.get("created_at"),
            "metrics": latest.metadata.get("metrics", {}),
            "versions": len(registry.versions(settings.registry_dir, MODEL_NAME)),
        }
    return {
        "home": str(settings.home),
        "layers": layers,
        "quarantine": quarantine,
        "rejected_files": rejected_files,
        "feature_store": feature_repo.online_status(settings.home),
        "model": model,
    }


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
    store = report["feature_store"]
    if store:
        lines.append(
            f"Feature store: {store['entities_online']:,} customers online (feature service {store['feature_service']}),"
            f" last materialized partition {store['last_materialized_partition']}"
        )
    else:
        lines.append("Feature store: nothing materialized yet")
    model = report["model"]
    if model:
        m = model["metrics"]
        lines.append(
            f"Model: {model['name']} {model['version']}  holdout ROC AUC {m.get('roc_auc', float('nan')):.3f}"
            f"  PR AUC {m.get('pr_auc', float('nan')):.3f}  ({m.get('holdout_rows', 0):,} holdout rows)"
        )
    else:
        lines.append("Model: none trained yet")
    return "\n".join(lines)
