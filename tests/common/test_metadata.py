"""Metadata as a person reads it in the UI: rounded floats, no empty fields, plots inline."""

import math

import dagster as dg
import pytest

from ballast.common.metadata import INLINE_MARKDOWN_CHARS, file_url, readable, readable_float
from ballast.model.evaluation import CHALLENGER
from ballast.model.keys import EVALUATION_KEY
from tests.conftest import Platform


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0.9611951003712583, 0.9612),
        (0.035295267042987466, 0.0353),
        (0.0123456, 0.01235),
        (1.23456e-7, 1.235e-7),
        (123.456, 123.46),
        (15260.318, 15260.32),
        (-0.5, -0.5),
        (0.0, 0.0),
    ],
)
def test_floats_keep_four_significant_digits_and_two_decimals(value: float, shown: float) -> None:
    assert readable_float(value) == shown


def test_absent_values_are_left_out_and_the_rest_kept() -> None:
    shown = readable(
        {
            "none": None,
            "empty": "",
            "null": dg.MetadataValue.null(),
            "empty_md": dg.MetadataValue.md(""),
            "auc": dg.MetadataValue.float(0.9611951003712583),
            "share": 1 / 3,
            "rows": 12,
            "passed": False,
            "version": "v0001",
            "values": dg.MetadataValue.json([{"z": 1 / 3}]),
        }
    )
    assert list(shown) == ["auc", "share", "rows", "passed", "version", "values"]
    assert (shown["auc"], shown["share"], shown["rows"], shown["passed"]) == (0.9612, 0.3333, 12, False)
    # JSON is for scripts: exact.
    assert shown["values"].value == [{"z": 1 / 3}]


def _events(platform: Platform) -> list[tuple[str, dict]]:
    """Every materialization and check evaluation of the session's whole-graph run, with its metadata."""
    found = []
    for event in platform.result.all_events:
        data = event.event_specific_data
        if event.is_step_materialization:
            found.append((data.materialization.asset_key.to_user_string(), data.materialization.metadata))
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            found.append((f"{data.asset_key.to_user_string()}:{data.check_name}", data.metadata))
    return found


def test_every_event_of_a_run_reads_rounded_and_without_empty_fields(platform: Platform) -> None:
    events = _events(platform)
    assert len(events) > 50
    empty = [
        (where, key)
        for where, metadata in events
        for key, entry in metadata.items()
        if isinstance(entry, dg.NullMetadataValue) or (isinstance(entry.value, str) and not entry.value.strip())
    ]
    assert empty == []
    floats = [
        (where, key, entry.value)
        for where, metadata in events
        for key, entry in metadata.items()
        if isinstance(entry, dg.FloatMetadataValue)
    ]
    assert any(key == "roc_auc" for _, key, _ in floats)
    unrounded = [f for f in floats if math.isfinite(f[2]) and readable_float(f[2]) != f[2]]
    assert unrounded == []


def test_a_first_model_shows_no_champion_figures_and_its_plot_inline(platform: Platform) -> None:
    [evaluation] = [
        data.materialization.metadata
        for data in (e.event_specific_data for e in platform.result.all_events if e.is_step_materialization)
        if data.materialization.asset_key == EVALUATION_KEY
    ]
    assert evaluation["champion_version"].value == "none" and "champion_roc_auc" not in evaluation
    [challenger] = [e for e in platform.result.get_asset_check_evaluations() if e.check_name == CHALLENGER]
    assert "value" not in challenger.metadata and "no champion yet" in challenger.description
    # A short markdown image (shown inline by the UI) of the PNG the file server serves, and the embedded copy.
    inline = evaluation["roc_and_calibration"].value
    [plot] = list(platform.settings.plots_dir.glob("churn_model_*_evaluation.png"))
    assert len(inline) < INLINE_MARKDOWN_CHARS and f"({file_url(platform.settings, plot)})" in inline
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert "data:image/png;base64," in evaluation["roc_and_calibration_embedded"].value
