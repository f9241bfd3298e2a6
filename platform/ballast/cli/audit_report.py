"""`ballast audit`: the debt scorecard of the code location as text or JSON, without running the graph."""

from __future__ import annotations

import dataclasses

from tabulate import tabulate

from ballast.audit.scorecard import Scorecard
from ballast.audit.scoring import DIMENSIONS, INDEX

WORST_ASSETS_SHOWN = 10


def _rows(frame) -> list[dict]:
    return frame.round(4).to_dict(orient="records")


def as_json(card: Scorecard, fail_under: float | None) -> dict:
    failures = card.gate(fail_under)
    return {
        "evaluated_at": card.evaluated_at.isoformat(timespec="seconds"),
        "overall": card.totals,
        "targets": {**card.targets, INDEX: card.min_index},
        "layers": _rows(card.layers),
        "assets": _rows(card.assets),
        "warnings": [
            {**dataclasses.asdict(r), "registered": known} for r, known in zip(card.warnings, card.known, strict=True)
        ],
        "warnings_unrecorded": card.unrecorded,
        "warnings_unattributed": len(card.unattributed),
        "registered_dependencies": card.dependencies,
        "unchecked_model_path": card.unchecked_model_path,
        "gate": {"fail_under": fail_under, "passed": not failures, "failures": failures},
    }


def _dimensions(card: Scorecard) -> str:
    rows = [
        (
            name,
            f"{card.totals[name]:.3f}",
            f"{card.targets[name]:g}",
            "ok" if card.totals[name] >= card.targets[name] else "MISS",
        )
        for name in DIMENSIONS
    ]
    index = card.totals[INDEX]
    rows.append((INDEX, f"{index:.3f}", f"{card.min_index:g}", "ok" if index >= card.min_index else "MISS"))
    return tabulate(rows, headers=["dimension", "score", "target", ""], tablefmt="simple")


def _warnings(card: Scorecard) -> str:
    if not card.warnings:
        return "none"
    rows = [
        (r.site, r.category, "yes" if known else "NO", r.message[:100])
        for r, known in zip(card.warnings, card.known, strict=True)
    ]
    return tabulate(rows, headers=["Ballast call site", "category", "registered", "message"], tablefmt="simple")


def as_text(card: Scorecard) -> str:
    worst = card.assets.head(WORST_ASSETS_SHOWN)
    lines = [
        f"Debt scorecard: {len(card.assets)} assets, {len(card.layers)} layers (1 = no debt)",
        "",
        _dimensions(card),
        "",
        "Layers:",
        tabulate(card.layers.round(3), headers="keys", tablefmt="simple", showindex=False),
        "",
        f"Worst assets ({len(worst)} of {len(card.assets)}):",
        tabulate(worst.round(3), headers="keys", tablefmt="simple", showindex=False),
        "",
        f"Warnings raised through Ballast ({len(card.warnings)}, {card.unrecorded} not in the register):",
        _warnings(card),
        f"Unattributed warnings (no Ballast frame; reported, not counted): {len(card.unattributed)}",
        f"Registered dependencies: {', '.join(card.dependencies) or 'none'}",
        "Assets upstream of the model without a check: " + (", ".join(card.unchecked_model_path) or "none"),
    ]
    return "\n".join(lines)
