"""audit/debt_scorecard in Ballast's own code location: its history table, metadata and checks; failure history from a real instance."""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import pytest

from ballast.audit import facts
from ballast.audit.assets import DEBT_INDEX_CHECK, DEBT_INDEX_HISTORY_TABLE, DEBT_SCORECARD, MODEL_PATH_CHECK
from ballast.audit.scoring import MTTR_BUDGET_HOURS, score_assets
from ballast.audit.warning_capture import capture
from ballast.common.metadata import readable_float
from ballast.common.partitions import range_tags
from ballast.definitions import REFRESH_JOB, load_defs
from ballast.model.keys import MODEL_KEY
from tests.conftest import START, make_settings, query


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory):
    """Ballast's definitions, and the scorecard materialized twice on one instance."""
    settings = make_settings(tmp_path_factory.mktemp("audit_home"))
    defs, _ = load_defs(settings)
    job = defs.resolve_job_def(REFRESH_JOB)
    instance = dg.DagsterInstance.ephemeral()
    results = [
        job.execute_in_process(
            instance=instance, asset_selection=[DEBT_SCORECARD], tags=range_tags(START, START), raise_on_error=False
        )
        for _ in range(2)
    ]
    return settings, defs, results


def test_each_evaluation_adds_one_overall_row_and_one_row_per_scope(evaluated) -> None:
    settings, defs, results = evaluated
    assert all(r.success for r in results)
    graph = defs.resolve_asset_graph()
    assets = len(graph.get_all_asset_keys())
    layers = len({graph.get(k).group_name for k in graph.get_all_asset_keys()})
    rows = query(
        settings,
        f"select evaluation_id, count(*) filter (scope_kind = 'overall'), count(*) filter (scope_kind = 'asset'),"
        f" count(*) filter (scope_kind = 'layer'), min(evaluated_at) from {DEBT_INDEX_HISTORY_TABLE}"
        " group by 1 order by 5",
    )
    assert [r[1:4] for r in rows] == [(1, assets, layers)] * 2
    # The overall row holds what the materialization reports (the UI's trend plot).
    for result, (evaluation_id, *_) in zip(results, rows, strict=True):
        [materialization] = result.asset_materializations_for_node("audit__debt_scorecard")
        [(index,)] = query(
            settings,
            f"select debt_index from {DEBT_INDEX_HISTORY_TABLE} where evaluation_id = ? and scope_kind = 'overall'",
            [evaluation_id],
        )
        assert materialization.metadata["debt_index"].value == readable_float(index)


def test_checks_warn_under_the_threshold_and_name_unchecked_assets_upstream_of_the_model(evaluated) -> None:
    settings, defs, results = evaluated
    graph = defs.resolve_asset_graph()
    checked = {k.asset_key for k in graph.asset_check_keys}
    upstream, todo = set(), [MODEL_KEY]
    while todo:
        for parent in graph.get(todo.pop()).parent_keys:
            if parent not in upstream:
                upstream.add(parent)
                todo.append(parent)
    unchecked = sorted(k.to_user_string() for k in upstream - checked)
    [materialization] = results[-1].asset_materializations_for_node("audit__debt_scorecard")
    index = materialization.metadata["debt_index"].value
    evaluations = {e.check_name: e for e in results[-1].get_asset_check_evaluations()}
    warn = evaluations[DEBT_INDEX_CHECK]
    assert warn.passed == (index >= settings.audit_min_index)
    assert warn.severity == dg.AssetCheckSeverity.WARN
    error = evaluations[MODEL_PATH_CHECK]
    assert error.severity == dg.AssetCheckSeverity.ERROR
    assert error.passed == (not unchecked)
    if unchecked:
        assert error.description == f"no asset check on {', '.join(unchecked)}"


class Flaky(dg.Config):
    fail: bool = False


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=0), pool="warehouse")
def orders(config: Flaky) -> None:
    """One row per order."""
    if config.fail:
        raise dg.Failure("the source is down")


def test_failure_rate_and_time_to_recovery_from_a_real_instance(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    failing = {"ops": {"orders": {"config": {"fail": True}}}}
    assert not dg.materialize([orders], instance=instance, run_config=failing, raise_on_error=False).success
    failed_at = time.time()
    time.sleep(0.5)
    assert dg.materialize([orders], instance=instance).success
    recovered_at = time.time()
    assert dg.materialize([orders], instance=instance).success
    repo = dg.Definitions(assets=[orders]).get_repository_def()
    with capture() as captured:
        [found] = facts.collect(repo, {"nodes": {}}, tmp_path, instance, dt.datetime.now(dt.UTC))
    # The audit reads the instance through APIs that are neither deprecated nor in preview.
    assert [r.site for r in captured.attributed if r.file.startswith("audit/")] == []
    assert (found.attempts, found.failures) == (3, 1)
    assert 0.5 / 3600 <= found.mttr_hours <= (recovered_at - failed_at + 1) / 3600
    card = score_assets([found]).iloc[0]
    # In a pool, so it touches shared storage, and it has a retry policy: that item scores 1.
    assert found.touches_external and found.retry_handled
    expected = (1 - 1 / 3 + 1 - found.mttr_hours / MTTR_BUDGET_HOURS + 1) / 3
    assert card["error_handling"] == pytest.approx(expected)
    # Outside the 30-day window the same history counts for nothing.
    [later] = facts.collect(repo, {"nodes": {}}, tmp_path, instance, dt.datetime.now(dt.UTC) + dt.timedelta(days=31))
    assert (later.attempts, later.failures, later.mttr_hours) == (0, 0, None)
