"""Warnings raised through Ballast's calls: captured whatever the filters say, attributed to the Ballast line, counted."""

import datetime as dt
import inspect
import json
import locale
import warnings
from pathlib import Path

import dagster as dg
import pytest

from ballast.audit.register import Register, debts
from ballast.audit.scoring import KNOWN_DEBT_COST, UNRECORDED_COST, AssetFacts, score_assets, with_debt
from ballast.audit.warning_capture import append_run_warnings, capture, read_run_warnings
from ballast.cli import generator
from ballast.cli.generator import GenerateSpec, generate

LAYERS = ["raw", "clean"]


def _progress_call_line() -> int:
    """The line of generator.generate that calls its progress callback."""
    lines, first = inspect.getsourcelines(generator.generate)
    return first + next(i for i, text in enumerate(lines) if text.strip().startswith("progress("))


def _deprecated_progress(rows: int) -> None:
    locale.getdefaultlocale()  # deprecated since Python 3.11: a real DeprecationWarning


def test_a_deprecation_raised_through_a_ballast_call_is_attributed_and_counted(tmp_path: Path) -> None:
    spec = GenerateSpec(out=tmp_path, customers=5, days=3, start=dt.date(2025, 1, 1), seed=1)
    # pytest's configuration ignores DeprecationWarning; the capture must see it anyway.
    with capture("run") as captured:
        generate(spec, progress=_deprecated_progress)
    [record] = captured.records  # three raises at one site: one finding
    assert record.category == "DeprecationWarning"
    assert "getdefaultlocale" in record.message
    assert (record.file, record.line, record.function) == ("cli/generator.py", _progress_call_line(), "generate")
    assert record.site == f"cli/generator.py:{_progress_call_line()}"

    facts = [AssetFacts(f"{layer}/t", layer, True, 1, 1, False, False) for layer in LAYERS]
    unknown = score_assets(with_debt(facts, debts(captured.records, Register((), ()), LAYERS)))
    # cli/ is shared code, not a layer: the warning weighs on every asset.
    assert list(unknown["freshness"]) == [1 - UNRECORDED_COST] * len(LAYERS)
    known = Register((), ({"category": "DeprecationWarning", "match": "getdefaultlocale"},))
    registered = score_assets(with_debt(facts, debts(captured.records, known, LAYERS)))
    assert list(registered["freshness"]) == [1 - KNOWN_DEBT_COST] * len(LAYERS)


def test_unattributed_and_other_warnings_and_the_filters_after() -> None:
    with warnings.catch_warnings(record=True) as outside:
        warnings.simplefilter("always")
        with capture() as captured:
            # Raised from this test file: no Ballast frame on the stack.
            warnings.warn("a library about itself", dg.BetaWarning, stacklevel=1)
            warnings.warn("not a deprecation", UserWarning, stacklevel=1)
        warnings.warn("after the block", DeprecationWarning, stacklevel=1)
    [record] = captured.records
    assert (record.category, record.attributed, record.site) == ("BetaWarning", False, "(no Ballast frame)")
    assert captured.attributed == []
    # Other categories, and anything after the block, go to the handler that was in place.
    assert [str(w.message) for w in outside] == ["not a deprecation", "after the block"]


def test_run_warnings_log_survives_a_torn_line(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "run_warnings.jsonl"
    spec = GenerateSpec(out=tmp_path / "landing", customers=5, days=2, start=dt.date(2025, 1, 1), seed=1)
    with capture("run") as captured:
        generate(spec, progress=_deprecated_progress)
    append_run_warnings(log, captured.attributed, run_id="run-1")
    with log.open("a") as f:
        f.write('{"category": "Deprecat')  # a writer killed mid-line
    append_run_warnings(log, captured.attributed, run_id="run-2")
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["run_id"] == "run-2"
    since = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    [read] = read_run_warnings(log, since)  # the same site in two runs: one finding
    assert (read.file, read.source) == ("cli/generator.py", "run")
    assert read_run_warnings(log, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)) == []
    assert read_run_warnings(tmp_path / "missing.jsonl", since) == []


@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning, FutureWarning])
def test_every_deprecation_category_is_forced_on(category: type[Warning]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with capture() as captured:
            warnings.warn("going away", category, stacklevel=1)
    assert [r.category for r in captured.records] == [category.__name__]
