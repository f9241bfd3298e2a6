"""The scorecard's formulas on facts gathered from real Dagster definitions and on hand-made facts."""

import datetime as dt
import statistics
from pathlib import Path

import dagster as dg
import pytest

from ballast.audit import facts
from ballast.audit.register import REGISTER_FILE, Register, RegisterError, debts, load_register
from ballast.audit.scoring import (
    DIMENSIONS,
    INDEX,
    KNOWN_DEBT_COST,
    MTTR_BUDGET_HOURS,
    UNRECORDED_COST,
    AssetFacts,
    by_layer,
    gate_failures,
    overall,
    recovery,
    score_assets,
    warning_scope,
    with_debt,
)
from ballast.audit.warning_capture import WarningRecord
from ballast.common.metadata import NO_RETRY_REASON
from ballast.settings import Settings, SettingsError

NOW = dt.datetime(2026, 1, 31, tzinfo=dt.UTC)


def _asset(described: bool, checked: bool) -> dg.AssetsDefinition:
    checks = (
        [
            dg.AssetCheckSpec("positive", asset="orders", description="Every amount is positive."),
            dg.AssetCheckSpec("fresh", asset="orders"),
        ]
        if checked
        else []
    )

    @dg.asset(
        name="orders",
        group_name="clean",
        description="One row per order." if described else None,
        check_specs=checks,
        pool="warehouse",
        metadata={NO_RETRY_REASON: "a local, deterministic step"},
    )
    def orders():  # never run: the scorecard reads definitions (no docstring: it would be the description)
        return None

    return orders


def _facts(assets_def: dg.AssetsDefinition, tmp_path: Path) -> AssetFacts:
    repo = dg.Definitions(assets=[assets_def]).get_repository_def()
    [found] = facts.collect(repo, {"nodes": {}}, tmp_path, None, NOW)
    return found


def test_an_asset_stripped_of_description_and_checks_loses_exactly_their_share(tmp_path: Path) -> None:
    full = _facts(_asset(described=True, checked=True), tmp_path)
    stripped = _facts(_asset(described=False, checked=False), tmp_path)
    assert (full.described, full.checks, full.checks_described) == (True, 2, 1)
    assert (stripped.described, stripped.checks) == (False, 0)
    scores = score_assets([full]).iloc[0]
    bare = score_assets([stripped]).iloc[0]
    # Documentation: the description (1) and the share of described checks (1/2) before; only the description after.
    assert scores["documentation"] == pytest.approx(statistics.fmean([1.0, 0.5]))
    assert scores["documentation"] - bare["documentation"] == pytest.approx(0.75)
    # Coverage: "has a check" is its only item for an asset without dbt model or contract.
    assert (scores["coverage"], bare["coverage"]) == (1.0, 0.0)
    # The other dimensions do not move; the index moves by a quarter of the two drops.
    for name in ("freshness", "error_handling"):
        assert scores[name] == bare[name] == 1.0
    assert scores[INDEX] - bare[INDEX] == pytest.approx((0.75 + 1.0) / 4)


def test_a_dbt_asset_without_description_and_checks() -> None:
    documented = AssetFacts(
        key="clean/orders",
        layer="clean",
        described=True,
        checks=4,
        checks_described=4,
        touches_external=True,
        retry_handled=True,
        dbt_model_described=True,
        dbt_columns=4,
        dbt_columns_described=3,
        dbt_columns_tested=2,
        contract_columns=5,
        contract_columns_checked=4,
    )
    stripped = AssetFacts(**{**documented.__dict__, "described": False, "checks": 0, "checks_described": 0})
    before, after = score_assets([documented]).iloc[0], score_assets([stripped]).iloc[0]
    assert before["documentation"] == pytest.approx((1 + 1 + 0.75 + 1) / 4)
    assert after["documentation"] == pytest.approx((0 + 1 + 0.75) / 3)
    assert before["coverage"] == pytest.approx((1 + 0.5 + 0.8) / 3)
    assert after["coverage"] == pytest.approx((0 + 0.5 + 0.8) / 3)


def test_error_handling_retry_failures_and_recovery() -> None:
    base = AssetFacts("raw/x", "raw", True, 1, 1, touches_external=True, retry_handled=False)
    assert score_assets([base]).iloc[0]["error_handling"] == pytest.approx(2 / 3)
    flaky = AssetFacts(**{**base.__dict__, "retry_handled": True, "attempts": 4, "failures": 1, "mttr_hours": 6.0})
    expected = statistics.fmean([0.75, 1 - 6.0 / MTTR_BUDGET_HOURS, 1.0])
    assert score_assets([flaky]).iloc[0]["error_handling"] == pytest.approx(expected)
    local = AssetFacts(**{**base.__dict__, "touches_external": False})
    assert score_assets([local]).iloc[0]["error_handling"] == 1.0


def test_recovery_episodes() -> None:
    hour = 3600.0
    # fail, fail, success 3 h after the first failure; fail again, still failing 2 h later.
    attempts = [(0.0, True), (1 * hour, False), (2 * hour, False), (4 * hour, True), (5 * hour, False)]
    runs, failures, mttr = recovery(attempts, now=7 * hour)
    assert (runs, failures) == (5, 3)
    assert mttr == pytest.approx((3 + 2) / 2)
    assert recovery([(0.0, True)], now=hour) == (1, 0, None)


def test_layers_and_overall_are_means_of_assets() -> None:
    rows = [
        AssetFacts("raw/a", "raw", True, 1, 1, False, False),
        AssetFacts("raw/b", "raw", False, 0, 0, False, False),
        AssetFacts("model/c", "model", False, 1, 0, False, False),
    ]
    card = score_assets(rows)
    assert card["asset"].iloc[0] == "raw/b"  # worst first
    layers = by_layer(card).set_index("layer")
    assert layers.loc["raw", INDEX] == pytest.approx(card[card.layer == "raw"][INDEX].mean())
    totals = overall(card)
    assert totals[INDEX] == pytest.approx(card[INDEX].mean())
    assert totals[INDEX] == pytest.approx(statistics.fmean(totals[d] for d in DIMENSIONS))


def test_freshness_counts_unrecorded_sites_fully_and_register_entries_once_per_layer() -> None:
    layers = ["raw", "features", "monitoring"]
    beta = "Parameter `backfill_policy` of function `asset` is currently in beta"
    records = [
        WarningRecord("BetaWarning", beta, "features/assets.py", 10, "f"),
        WarningRecord("BetaWarning", beta, "features/assets.py", 20, "g"),
        WarningRecord("BetaWarning", beta, "monitoring/assets.py", 30, "h"),
        WarningRecord("DeprecationWarning", "old", "definitions.py", 40, "build"),
        WarningRecord("DeprecationWarning", "a library about itself", "", 0, ""),
    ]
    register = Register(
        dependencies=({"package": "whylogs", "status": "unmaintained", "layers": ["monitoring"]},),
        warnings=({"category": "BetaWarning", "match": "backfill_policy"},),
    )
    found = debts(records, register, layers)
    base = [AssetFacts(f"{layer}/t", layer, True, 1, 1, False, False) for layer in layers]
    scored = {f.key: f for f in with_debt(base, found)}
    assert (scored["raw/t"].unrecorded_warnings, scored["raw/t"].known_debt) == (1, 0)
    assert (scored["features/t"].unrecorded_warnings, scored["features/t"].known_debt) == (1, 1)
    assert (scored["monitoring/t"].unrecorded_warnings, scored["monitoring/t"].known_debt) == (1, 2)
    card = score_assets(list(scored.values())).set_index("asset")
    assert card.loc["monitoring/t", "freshness"] == pytest.approx(1 - UNRECORDED_COST - 2 * KNOWN_DEBT_COST)
    assert warning_scope("features/assets.py", layers) == "features"
    assert warning_scope("resources.py", layers) is None


def test_gate_fail_under_alone_or_every_target() -> None:
    totals = {"documentation": 0.9, "coverage": 0.5, "freshness": 1.0, "error_handling": 1.0, INDEX: 0.85}
    targets = {"documentation": 0.8, "coverage": 0.7, "freshness": 0.9, "error_handling": 0.9}
    assert gate_failures(totals, targets, 0.8, unrecorded=0, fail_under=0.0) == []
    assert gate_failures(totals, targets, 0.8, unrecorded=0, fail_under=0.99) == [
        "overall debt index 0.850 is below --fail-under 0.99"
    ]
    failed = gate_failures(totals, targets, 0.8, unrecorded=2)
    assert failed == [
        "coverage 0.500 misses its target 0.7",
        "2 deprecation/Beta/Preview warning(s) raised through Ballast are not in the register",
    ]


def test_thresholds_and_targets_are_settings(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"BALLAST_HOME": str(tmp_path), "BALLAST_AUDIT_MIN_INDEX": "0.75", "BALLAST_AUDIT_TARGET_COVERAGE": "0.6"}
    )
    assert (settings.audit_min_index, settings.audit_target_coverage) == (0.75, 0.6)
    assert settings.audit_target_documentation == 0.8  # the target, by default
    with pytest.raises(SettingsError, match=r"BALLAST_AUDIT_TARGET_FRESHNESS=1\.5 must be between 0 and 1"):
        Settings.from_env({"BALLAST_HOME": str(tmp_path), "BALLAST_AUDIT_TARGET_FRESHNESS": "1.5"})


def test_a_register_entry_with_a_key_twice_is_refused_naming_the_key_and_line(tmp_path: Path) -> None:
    """YAML would keep the second reason silently: the entry would show another warning's text."""
    shipped = load_register()
    assert shipped.warnings and all(entry["reason"] for entry in shipped.warnings)
    doubled = tmp_path / "register.yaml"
    doubled.write_text(
        REGISTER_FILE.read_text().replace("    plan: >-\n", "    reason: first\n    reason: second\n    plan: >-\n", 1)
    )
    with pytest.raises(RegisterError, match=r"register\.yaml cannot be read \(duplicate key 'reason' at line \d+\)$"):
        load_register(doubled)
