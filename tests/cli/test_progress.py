"""Live progress of `ballast run`: a line per step started or ended without a terminal, a bar with one."""

import io
import os
import pty
import re
import uuid
from pathlib import Path

import dagster as dg
import pytest

from ballast.cli.progress import RunProgress, draws_a_bar
from tests.cli.test_cli import _ballast

# [run 2/3 12/48 1m03s] clean/transactions +1 done (9.4s); the run part only when a plan has several.
PROGRESS_LINE = re.compile(
    r"^\[(?:run (?P<run>\d+)/(?P<runs>\d+) )?(?P<ended>\d+)/(?P<total>\d+) (?P<min>\d+)m(?P<sec>\d\d)s\]"
    r" (?P<step>.+) (?P<what>started|done \(\d+\.\ds\)|failed \(\d+\.\ds\))$"
)


def progress_and_rest(stderr: str) -> tuple[list[re.Match], list[str]]:
    """The progress lines of a command's stderr, parsed, and its other lines."""
    lines = stderr.strip().splitlines()
    progress = [m for line in lines if (m := PROGRESS_LINE.match(line))]
    return progress, [line for line in lines if not PROGRESS_LINE.match(line)]


def test_each_run_of_a_plan_is_counted_in_the_users_names_of_its_steps() -> None:
    @dg.multi_asset(specs=[dg.AssetSpec(["raw", "transactions"]), dg.AssetSpec(["raw", "ignored_files"])])
    def raw_transactions():
        yield dg.MaterializeResult(asset_key=["raw", "transactions"])
        yield dg.MaterializeResult(asset_key=["raw", "ignored_files"])

    @dg.asset(key_prefix="clean", deps=[["raw", "transactions"]])
    def orders() -> None:
        pass

    @dg.multi_asset_check(
        specs=[dg.AssetCheckSpec("contract_amount", asset=orders), dg.AssetCheckSpec("contract_currency", asset=orders)]
    )
    def orders_contract():
        yield dg.AssetCheckResult(asset_key=orders.key, check_name="contract_amount", passed=True)
        yield dg.AssetCheckResult(asset_key=orders.key, check_name="contract_currency", passed=True)

    @dg.asset_check(asset=orders)
    def no_missing_days() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    @dg.asset(key_prefix="model", deps=[orders])
    def churn_model() -> None:
        raise ValueError("too little data")

    @dg.asset(key_prefix="model", deps=[churn_model])
    def churn_scores() -> None:
        pass

    defs = dg.Definitions(
        assets=[raw_transactions, orders, churn_model, churn_scores],
        asset_checks=[orders_contract, no_missing_days],
        jobs=[dg.define_asset_job("refresh")],
    )
    job = defs.resolve_job_def("refresh")
    instance = dg.DagsterInstance.ephemeral()
    out = io.StringIO()
    with RunProgress(out, instance, defs, runs=2) as progress:
        for selection in ([*raw_transactions.keys, orders.key], [orders.key, churn_model.key, churn_scores.key]):
            run_id = str(uuid.uuid4())
            progress.follow(None, run_id)
            job.execute_in_process(instance=instance, run_id=run_id, asset_selection=selection, raise_on_error=False)
    lines, rest = progress_and_rest(out.getvalue())
    assert rest == []
    assert {(m["run"], m["runs"]) for m in lines} == {("1", "2"), ("2", "2")}
    shown = [(m["run"], f"{m['ended']}/{m['total']}", m["step"], m["what"].split(" ")[0]) for m in lines]
    # In run 2 the model fails: the scores never start, and 4 of its 5 steps end.
    assert shown == [
        ("1", "0/4", "raw/transactions +1", "started"),
        ("1", "1/4", "raw/transactions +1", "done"),
        ("1", "1/4", "clean/orders", "started"),
        ("1", "2/4", "clean/orders", "done"),
        ("1", "2/4", "clean/orders:no_missing_days", "started"),
        ("1", "3/4", "clean/orders:no_missing_days", "done"),
        ("1", "3/4", "clean/orders: 2 checks", "started"),
        ("1", "4/4", "clean/orders: 2 checks", "done"),
        ("2", "0/5", "clean/orders", "started"),
        ("2", "1/5", "clean/orders", "done"),
        ("2", "1/5", "clean/orders:no_missing_days", "started"),
        ("2", "2/5", "clean/orders:no_missing_days", "done"),
        ("2", "2/5", "model/churn_model", "started"),
        ("2", "3/5", "model/churn_model", "failed"),
        ("2", "3/5", "clean/orders: 2 checks", "started"),
        ("2", "4/5", "clean/orders: 2 checks", "done"),
    ], shown


def test_a_terminal_that_reports_no_width_gets_the_lines_not_a_bar() -> None:
    """tqdm draws nothing at 0 columns: a pty nobody sized (`script`, `docker exec -t`) would show no progress at all."""
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "w", closefd=False) as out:
            assert out.isatty() and os.get_terminal_size(follower).columns == 0
            assert not draws_a_bar(out)
    finally:
        os.close(leader)
        os.close(follower)
    assert not draws_a_bar(io.StringIO())


@pytest.mark.full  # one `ballast run` of every layer on 45 small days (about 80 s)
def test_a_run_without_a_terminal_prints_each_step_up_to_the_total(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    gen = _ballast("generate", "--out", str(landing), "--customers", "100", "--days", "45", "--start", "2025-01-01")
    assert gen.returncode == 0, gen.stderr
    # Gates any first model passes, so that every step of the run succeeds.
    gates = {"BALLAST_MIN_AUC": "0", "BALLAST_MIN_BASELINE_MARGIN": "-1", "BALLAST_MAX_FAIRNESS_GAP": "1"}
    run = _ballast("run", home=tmp_path, BALLAST_START_DATE="2025-01-01", **gates)
    assert run.returncode == 0, run.stderr[-3000:]
    lines, rest = progress_and_rest(run.stderr)
    assert all(line.startswith("ballast: warning: ") for line in rest), rest
    # The total is the run's own step count, as Dagster recorded it.
    instance = dg.DagsterInstance.from_config(str(tmp_path / "dagster_home"))
    try:
        [record] = instance.get_run_records()
        total = len(record.dagster_run.step_keys_to_execute)
    finally:
        instance.dispose()
    assert {int(m["total"]) for m in lines} == {total} and {m["run"] for m in lines} == {None}
    ended = [m for m in lines if not m["what"].startswith("started")]
    assert [int(m["ended"]) for m in ended] == list(range(1, total + 1))
    assert all(m["what"].startswith("done") for m in ended)
    assert lines[-1]["ended"] == str(total)
    started = [m["step"] for m in lines if m["what"] == "started"]
    assert sorted(started) == sorted(m["step"] for m in ended) and len(set(started)) == total
    # Steps are named by their assets, in graph order, and time only goes forward.
    for name in ["raw/transactions +2", "clean/transactions +1", "features/customer_daily_features", "model/champion"]:
        assert name in started, (name, started)
    assert (
        started.index("raw/transactions +2") < started.index("clean/transactions +1") < started.index("model/champion")
    )
    assert not [name for name in started if "__" in name]
    seconds = [int(m["min"]) * 60 + int(m["sec"]) for m in lines]
    assert seconds == sorted(seconds) and seconds[-1] > 0
