"""The `ballast` command: generate data, run the platform, report on it, open the UI."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from ballast.cli import preflight
from ballast.cli.preflight import PreflightError
from ballast.settings import AUTOMATION_ENV, REPO_ROOT, Settings, SettingsError

DEMO_CUSTOMERS = 2000
DEMO_DAYS = 180
DEMO_SEED = 7
DEMO_FAULT_RATE = 0.005
GATES_STEP = "promotion_gates"
# A failed blocking check withholds its asset (ballast.common.gates): the run succeeds, the
# steps below it are skipped, and Dagster resolves their checks as "Skipped".
BLOCKED_NOTE = (
    "note: what depends on a failed blocking check was not built and its checks did not run;"
    ' the UI shows those checks as "Skipped", the blocking check as "Failed";'
    " the next ballast run builds those days again and re-verifies them"
)
# After a run: at most this many failed non-blocking checks, each in at most WARNING_CHARS characters.
MAX_CHECK_WARNINGS = 10
WARNING_CHARS = 300
# How long `ballast dev` waits at exit for a dbt docs build still running.
DOCS_WAIT_SECONDS = 60
# Linux prctl option: the signal a child receives when its parent dies.
PR_SET_PDEATHSIG = 1
# Exit status for a fault in Ballast itself (BSD sysexits EX_SOFTWARE), apart from user errors (1).
INTERNAL_ERROR = 70


class UserError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""

    exit_code = 1


class UnknownNameError(UserError):
    """A name on the command line that Ballast does not know (a table, column or feature): a usage error."""

    exit_code = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _date_range(text: str) -> tuple[dt.date, dt.date]:
    first, sep, last = text.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range (expected FROM:TO, e.g. 2025-06-01:2025-06-30)")
    start, end = _date(first.strip()), _date(last.strip())
    if start > end:
        raise argparse.ArgumentTypeError(f"{text!r}: {start} is after {end} (expected FROM:TO with FROM <= TO)")
    return start, end


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a fraction in [0, 1)")
    return value


def _unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} must be between 0 and 1")
    return value


def _existing_dir(text: str) -> Path:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"folder {text!r} does not exist")
    return path.resolve()


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ballast", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    gen = commands.add_parser("generate", help="write synthetic transaction files, one per event date")
    gen.add_argument("--out", type=Path, required=True, help="folder to write the files into")
    gen.add_argument("--customers", type=_positive_int, required=True)
    gen.add_argument("--days", type=_positive_int, required=True)
    gen.add_argument("--start", type=_date, required=True, help="first event date, YYYY-MM-DD")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--format", choices=("csv", "parquet"), default="csv")
    gen.add_argument("--rows-per-day", type=_positive_int, help="scale purchase rates to about this many rows a day")
    gen.add_argument("--drift-from", type=_date, help="shift amounts and the channel mix from this date on")
    gen.add_argument("--faults", type=_fraction, default=0.0, help="fraction of rows made invalid")

    demo = commands.add_parser("demo", help="generate a small dataset into BALLAST_HOME and run every asset on it")
    demo.add_argument("--customers", type=_positive_int, default=DEMO_CUSTOMERS)
    demo.add_argument(
        "--days",
        type=_positive_int,
        help=f"how many days of data, ending yesterday (default {DEMO_DAYS}); on a home whose start date is set"
        " (BALLAST_START_DATE, or an earlier demo's) the data runs from that date instead",
    )
    demo.add_argument("--seed", type=int, default=DEMO_SEED)

    run = commands.add_parser(
        "run",
        help="refresh the partitions whose landing files are new or changed, what depends on them, and what is missing",
    )
    run.add_argument(
        "--landing", type=_existing_dir, help="landing folder (default: BALLAST_LANDING_DIR or BALLAST_HOME/landing)"
    )
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--full", action="store_true", help="materialize every asset for every partition with files")
    scope.add_argument(
        "--dates",
        type=_date_range,
        metavar="FROM:TO",
        help="refresh these days (YYYY-MM-DD:YYYY-MM-DD, both included) and what depends on them",
    )

    report = commands.add_parser("report", help="rows per layer, quarantine by reason and the latest model")
    report.add_argument("--json", action="store_true", help="print JSON for scripts")

    audit = commands.add_parser(
        "audit", help="the debt scorecard of every asset and layer, without running the graph; exits 1 under the gate"
    )
    audit.add_argument("--json", action="store_true", help="print one JSON document for scripts")
    audit.add_argument(
        "--fail-under",
        type=_unit_interval,
        metavar="X",
        help="fail only when the overall debt index is below X (default gate: BALLAST_AUDIT_MIN_INDEX and every"
        " dimension's target)",
    )

    features = commands.add_parser("features", help="the Feast feature store")
    feature_commands = features.add_subparsers(dest="features_command", required=True, parser_class=_Parser)
    get = feature_commands.add_parser("get", help="print the online churn_v1 features of customers as JSON")
    get.add_argument("--customer", action="append", required=True, metavar="ID", help="a customer id (repeatable)")

    model = commands.add_parser("model", help="the model registry: versions, champion, promotion, rollback")
    model_commands = model.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    model_commands.add_parser(
        "list",
        help="every version with its AUC, the recency baseline's AUC, its margin and gate results; * marks the champion",
    )
    show = model_commands.add_parser("show", help="a version's metadata as JSON")
    show.add_argument("version")
    promote = model_commands.add_parser("promote", help="make a version champion (an override if it failed a gate)")
    promote.add_argument("version")
    promote.add_argument("--reason", required=True, help="why; recorded in the registry")
    rollback = model_commands.add_parser("rollback", help="restore the previous champion")
    rollback.add_argument("--reason", default="rollback", help="why; recorded in the registry")

    lineage = commands.add_parser(
        "lineage",
        help="a model version back to its training set, partitions, raw files and code; or a column back to landing",
    )
    lineage.add_argument("version", nargs="?", help="a model version (without --column)")
    lineage.add_argument(
        "--column",
        metavar="NAME",
        help="schema.table.column, service:feature or a feature name: its column path back to the landing columns",
    )

    dev = commands.add_parser("dev", help="start `dagster dev` on the workspace with all state under BALLAST_HOME")
    dev.add_argument("--port", type=_positive_int, default=3000)
    dev.add_argument(
        "--files-port",
        type=_positive_int,
        help="port of the file server for drift reports, plots and dbt docs (default: BALLAST_FILES_PORT, 3001)",
    )
    dev.add_argument(
        "--automation",
        action="store_true",
        help="start Ballast's sensors and schedule RUNNING (landing files, alerts, retraining); default: STOPPED",
    )
    return parser


def _generate(args: argparse.Namespace) -> None:
    from tqdm import tqdm

    from ballast.cli.generator import GenerateSpec, generate

    try:
        spec = GenerateSpec(
            out=args.out.expanduser().resolve(),
            customers=args.customers,
            days=args.days,
            start=args.start,
            seed=args.seed,
            fmt=args.format,
            rows_per_day=args.rows_per_day,
            drift_from=args.drift_from,
            faults=args.faults,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None
    preflight.writable_folder(spec.out, "--out", "choose a folder you can write")
    with tqdm(total=spec.days, unit="day", file=sys.stderr, desc="generating") as bar:
        rows = 0

        def advance(day_rows: int) -> None:
            nonlocal rows
            rows += day_rows
            bar.set_postfix(rows=f"{rows:,}", refresh=False)
            bar.update(1)

        result = generate(spec, progress=advance)
    print(f"wrote {result.rows:,} rows in {len(result.files)} files to {spec.out}")


def _run(settings: Settings, announce: str, full: bool = False, dates: tuple[dt.date, dt.date] | None = None) -> None:
    """Refresh what the landing files changed (default), every partition (`full`) or the days `dates`."""
    from ballast.cli.progress import RunProgress
    from ballast.definitions import build_defs
    from ballast.incremental import execute, plan_run
    from ballast.runs import instance, prepare_run

    # One instance for the whole command: recovery, the plan and every run read and write it.
    dagster_instance = instance(settings)
    try:
        # One run per home; runs whose process died are cleaned up first (said in one line).
        prepare_run(settings, dagster_instance=dagster_instance)
        start, end = _landing_window(settings, dates)
        if full:
            days = (end - start).days + 1
            print(f"{announce}: materializing every asset for {start} to {end} ({days} daily partitions)")
        # dbt and Dagster echo every log line; keep them in a file and print only the summary.
        log_path = settings.home / "logs" / "last_run.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("w") as log:
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                defs = build_defs(settings)
                todo = plan_run(settings, defs, dagster_instance, (start, end), full=full, dates=dates)
            if not full:
                for line in todo.summary():
                    print(f"{announce}: {line}" if not line.startswith("note:") else line)
            # Progress goes to the real stderr, and ends before the results are printed.
            progress = RunProgress(sys.stderr, dagster_instance, defs, len(todo.steps))
            with progress, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                results = execute(settings, defs, dagster_instance, todo, log_level="INFO", on_run=progress.follow)
    finally:
        dagster_instance.dispose()
    if results:
        print(f"run log: {log_path}")
        _warn_failed_checks(results)
        _check_result(results[-1], log_path, settings)
    from ballast.cli.report import build_report, format_report

    print(format_report(build_report(settings)))
    print(f"Open the UI: make dev   (or BALLAST_HOME={settings.home} ballast dev), then http://127.0.0.1:3000")


def _landing_window(settings: Settings, dates: tuple[dt.date, dt.date] | None) -> tuple[dt.date, dt.date]:
    """The first and last landing date (notes on files not loaded printed); `dates` must overlap them."""
    from ballast.raw.landing import LandingError, plan

    try:
        window = plan(settings.landing_dir, settings.start_date)
    except LandingError as exc:
        raise UserError(str(exc)) from None
    for note in window.notes:
        print(note)
    if dates is not None and (dates[0] > window.end or dates[1] < window.start):
        raise UserError(
            f"--dates {dates[0]}:{dates[1]} is outside the landing files' days ({window.start} to {window.end});"
            " choose days in that range"
        )
    return window.start, window.end


def _warn_failed_checks(results: list) -> None:
    """One line per check that failed without stopping the run (a missing day, a volume jump, drift): what it found."""
    from ballast.common.gates import WITHHELD

    failed = [
        e
        for result in results
        for e in result.get_asset_check_evaluations()
        if not e.passed and not e.blocking and WITHHELD not in e.metadata
    ]
    for e in failed[:MAX_CHECK_WARNINGS]:
        found = f": {_one_line(e.description)[:WARNING_CHARS]}" if e.description else ""
        print(
            f"ballast: warning: check {e.asset_key.to_user_string()}:{e.check_name} failed ({e.severity.value}){found}",
            file=sys.stderr,
        )
    if len(failed) > MAX_CHECK_WARNINGS:
        print(
            f"ballast: warning: {len(failed) - MAX_CHECK_WARNINGS} more check(s) failed; `ballast report` lists them",
            file=sys.stderr,
        )


def _check_result(result, log_path: Path, settings: Settings) -> None:
    """Say why the run failed, in one line per failed step; a failed promotion gate alone is not a failure."""
    from ballast.common.gates import withholding_checks
    from ballast.lineage.export import undelivered

    if waiting := undelivered(settings):
        print(f"ballast: warning: {waiting}", file=sys.stderr)
    failures = [e for e in result.all_events if e.is_step_failure]
    # A candidate that fails a promotion gate is the platform working, not failing:
    # the data layers are built and the champion stays. The report says which gate.
    gates_only = bool(failures) and all(e.step_key == GATES_STEP for e in failures)
    failed = not result.success and not gates_only
    withheld = withholding_checks(result)
    if withheld:
        print(BLOCKED_NOTE)
    if failed:
        for event in failures:
            reason = _failure_reason(event.step_failure_data)
            if _blocked_by_checks(event.step_failure_data):
                reason = _failed_checks(result) or reason
            print(f"ballast: error: step {event.step_key} failed: {reason}", file=sys.stderr)
    # A run a blocking check stopped succeeds in Dagster (the check withheld its asset); not here.
    for e in withheld:
        print(f"ballast: error: {_describe_check(e)}", file=sys.stderr)
    if failed:
        steps = f"{len(failures)} failed step(s)" if failures else "no step failed; the run itself did"
        raise UserError(f"the run failed ({steps}); full log: {log_path}")
    if withheld:
        raise UserError(f"the run was stopped by {len(withheld)} blocking check(s); full log: {log_path}")


def _failure_reason(failure) -> str:
    """The root cause of a failed step in one line: the step's own description, else the innermost user error.

    Dagster wraps what a step raised (DagsterExecutionStepExecutionError: Error occurred
    while executing op ...); the user's exception is further down the cause chain.
    """
    if failure.user_failure_data is not None and failure.user_failure_data.description:
        return _one_line(failure.user_failure_data.description)
    error = failure.error
    if error is None:
        return "failed (no error recorded; see the run log)"
    while error.cls_name and error.cls_name.startswith("Dagster") and (error.cause or error.context):
        error = error.cause or error.context
    return _one_line(error.message)


def _blocked_by_checks(failure) -> bool:
    error = failure.error
    while error is not None:
        if error.cls_name == "DagsterAssetCheckFailedError":
            return True
        error = error.cause or error.context
    return False


def _failed_checks(result) -> str:
    """The blocking checks that stopped the run, each with what it found (its description)."""
    import dagster as dg

    failed = [
        e
        for e in result.get_asset_check_evaluations()
        if not e.passed and e.severity == dg.AssetCheckSeverity.ERROR and e.blocking is not False
    ]
    return "; ".join(_describe_check(e) for e in failed)


def _describe_check(e) -> str:
    found = f" ({_one_line(e.description)})" if e.description else ""
    return f"blocking check {e.asset_key.to_user_string()}:{e.check_name} failed{found}"


def _one_line(text: str) -> str:
    """The first non-empty line of a message (later lines are context such as a SQL excerpt)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "failed"


def _demo(args: argparse.Namespace, settings: Settings) -> None:
    """Generate data ending yesterday, so every partition up to yesterday is materialized, and run every asset on it.

    The first day is the home's start date when one is set (BALLAST_START_DATE, or the one an
    earlier demo recorded), else `--days` before yesterday; the home records it, so the
    partitions of processes started later on it (`ballast dev`) begin there too.
    """
    from ballast.cli.generator import GenerateSpec, generate

    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    if settings.start_date_origin == "default":
        days = args.days or DEMO_DAYS
        settings = dataclasses.replace(settings, start_date=yesterday - dt.timedelta(days=days - 1))
        print(f"demo: this home's partitions start on {settings.start_date} (recorded in {settings.start_date_file})")
    else:
        from_env = settings.start_date_origin == "BALLAST_START_DATE"
        origin = "BALLAST_START_DATE" if from_env else f"{settings.start_date_file}, recorded by an earlier demo"
        if args.days is not None:
            raise UserError(
                f"--days cannot be used when the start date is set ({settings.start_date}, from {origin}):"
                " the demo's data runs from it to yesterday; drop --days, or "
                + ("unset BALLAST_START_DATE" if from_env else "use a new BALLAST_HOME")
            )
        if settings.start_date > yesterday:
            raise UserError(
                f"the start date {settings.start_date} (from {origin}) leaves no complete day before today"
                f" ({yesterday + dt.timedelta(days=1)}, UTC) for the demo; set an earlier BALLAST_START_DATE"
            )
        days = (yesterday - settings.start_date).days + 1
        print(f"demo: the start date is set ({settings.start_date}, from {origin}): generating it to {yesterday}")
    settings.ensure_dirs()
    settings.record_start_date()
    spec = GenerateSpec(
        out=settings.landing_dir,
        customers=args.customers,
        days=days,
        start=settings.start_date,
        seed=args.seed,
        faults=DEMO_FAULT_RATE,
    )
    result = generate(spec)
    print(f"generated {result.rows:,} transactions for {args.customers:,} customers into {settings.landing_dir}")
    _run(settings, "demo", full=True)


def _report(args: argparse.Namespace, settings: Settings) -> None:
    from ballast.cli.report import ReportError, build_report, format_report
    from ballast.features.feast_repo import FeatureStoreError
    from ballast.model.registry import RegistryError

    try:
        report = build_report(settings)
    except (RegistryError, FeatureStoreError, ReportError) as exc:
        raise UserError(str(exc)) from None
    print(json.dumps(report, indent=2, default=str) if args.json else format_report(report))


def _audit(args: argparse.Namespace, settings: Settings) -> None:
    from ballast.audit.register import RegisterError
    from ballast.audit.scorecard import evaluate
    from ballast.cli.audit_report import as_json, as_text
    from ballast.definitions import load_defs
    from ballast.resources import dbt_project
    from ballast.runs import instance

    # Loading the definitions runs no step: it captures the warnings of building them.
    with contextlib.redirect_stdout(sys.stderr):
        defs, load_warnings = load_defs(settings)
    dagster_instance = instance(settings)
    try:
        card = evaluate(
            defs.get_repository_def(), settings, dbt_project(settings).manifest_path, load_warnings, dagster_instance
        )
    except RegisterError as exc:
        raise UserError(str(exc)) from None
    finally:
        dagster_instance.dispose()
    print(json.dumps(as_json(card, args.fail_under), indent=2) if args.json else as_text(card))
    failures = card.gate(args.fail_under)
    if failures:
        raise UserError(f"the debt gate failed: {'; '.join(failures)}")


def _features_get(args: argparse.Namespace, settings: Settings) -> None:
    from ballast.features import feast_repo

    try:
        _print_online_features(args.customer, settings)
    except feast_repo.FeatureStoreError as exc:
        raise UserError(str(exc)) from None


def _print_online_features(customers: list[str], settings: Settings) -> None:
    from ballast.features import feast_repo

    if feast_repo.online_status(settings.home) is None:
        raise UserError(
            f"the online store under {settings.home} is empty; run `ballast demo` or `ballast run` (or materialize"
            " features/online_store in the UI) first"
        )
    registry_file = feast_repo.registry_path(settings.home)
    if not registry_file.is_file():
        # Checked here because Feast would quietly create an empty registry on first access.
        raise UserError(
            f"the Feast registry {registry_file} is missing; run `ballast run` (or materialize"
            " features/feature_registry) to rebuild it from feature_repo/"
        )
    from ballast.features import feast_store
    from ballast.resources import feature_windows

    store = feast_store.open_store(settings.home)
    feast_store.require_applied(store)
    ids = list(dict.fromkeys(customers))
    found, missing = feast_store.online_features(store, ids)
    found["event_timestamp"] = found["event_timestamp"].map(lambda t: t.isoformat())
    # Plain Python values, missing ones as null: a float's repr round-trips exactly, where
    # pandas' JSON writer would round it to 15 digits and print another value than served.
    records = found.astype(object).where(found.notna(), None).to_dict(orient="records")
    print(json.dumps({"feature_service": feast_repo.FEATURE_SERVICE, "customers": records}, indent=2))
    if missing:
        raise UserError(
            f"not in the online store: {', '.join(missing)} (unknown customer,"
            f" or not active in the last {feature_windows().long} days)"
        )


def _model(args: argparse.Namespace, settings: Settings) -> None:
    from ballast.model import registry
    from ballast.model.training import MODEL_NAME

    root = settings.registry_dir
    try:
        if args.model_command == "list":
            found = registry.versions(root, MODEL_NAME)
            if not found:
                raise UserError(f"no {MODEL_NAME} versions under {root}; run `ballast demo` or `ballast run` first")
            current = registry.champion(root, MODEL_NAME)
            print(f"{'':2}{'version':<9}{'created':<27}{'ROC AUC':>8}{'baseline':>9}{'margin':>8}  gates")
            for v in found:
                mark = "*" if current and v.version == current.version else ""
                metrics = v.metadata.get("evaluation", v.metadata.get("metrics", {}))
                auc = metrics.get("roc_auc")
                # The recency baseline exists once the version has been evaluated.
                baseline, margin = metrics.get("baseline_roc_auc"), metrics.get("baseline_margin")
                print(
                    f"{mark:<2}{v.version:<9}{v.metadata.get('created_at', ''):<27}{auc or float('nan'):>8.3f}"
                    f"{_number(baseline, '.3f'):>9}{_number(margin, '+.3f'):>8}"
                    f"  {_gate_summary(v.metadata)}"
                )
        elif args.model_command == "show":
            print(json.dumps(registry.get(root, MODEL_NAME, args.version).metadata, indent=2, default=str))
        elif args.model_command == "promote":
            chosen = registry.get(root, MODEL_NAME, args.version)
            failed = [g["name"] for g in chosen.metadata.get("gates", []) if not g["passed"]]
            registry.load(chosen)  # refuse a tampered artifact before it can serve
            registry.promote(
                root, MODEL_NAME, args.version, args.reason, override=bool(failed) or "gates" not in chosen.metadata
            )
            note = f" (override of failed gate(s): {', '.join(failed)})" if failed else ""
            print(f"{MODEL_NAME} {args.version} is champion{note}; reason: {args.reason}")
        elif args.model_command == "rollback":
            current = registry.champion(root, MODEL_NAME)
            # Refuse a damaged artifact before the switch, so a failed rollback changes nothing.
            registry.load(registry.previous_champion(root, MODEL_NAME))
            restored = registry.rollback(root, MODEL_NAME, args.reason)
            print(f"{MODEL_NAME} champion rolled back from {current.version} to {restored.version}")
    except registry.RegistryError as exc:
        raise UserError(str(exc)) from None


def _number(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _gate_summary(metadata: dict) -> str:
    gates = metadata.get("gates")
    if gates is None:
        return "not evaluated"
    text = ", ".join(f"{g['name']} {'pass' if g['passed'] else 'FAIL'}" for g in gates)
    if metadata.get("override"):
        text += f"; overridden: {metadata['override']['reason']}"
    return text


def _column_lineage(name: str, settings: Settings) -> None:
    from ballast.definitions import load_defs
    from ballast.features.assets import FeatureStoreResource
    from ballast.lineage.columns import ColumnGraph, UnknownColumnError, render, resolve_feature, service_features

    # Building the definitions runs no step; dbt's compile for lineage is cached between calls.
    with contextlib.redirect_stdout(sys.stderr):
        graph = ColumnGraph.from_defs(load_defs(settings)[0])
    try:
        if name.count(".") == 2 and ":" not in name:
            table, _, column = name.rpartition(".")
            trace = graph.trace(graph.column(table, column))
        elif "." not in name:
            features = service_features(FeatureStoreResource(home=str(settings.home)).definitions(), settings.lake_dir)
            trace = graph.trace_feature(resolve_feature(name, features))
        else:
            raise UnknownColumnError(
                f"{name!r} is not schema.table.column, service:feature or a feature name;"
                f" tables with column lineage: {', '.join(graph.tables())}"
            )
    except UnknownColumnError as exc:
        raise UnknownNameError(str(exc)) from None
    print(render(trace))


def _lineage(args: argparse.Namespace, settings: Settings) -> None:
    if (args.column is None) == (args.version is None):
        raise UnknownNameError("give a model version or --column NAME (one of them)")
    if args.column is not None:
        _column_lineage(args.column, settings)
        return
    from ballast.model import registry
    from ballast.model.training import MODEL_NAME

    try:
        meta = registry.get(settings.registry_dir, MODEL_NAME, args.version).metadata
    except registry.RegistryError as exc:
        raise UserError(str(exc)) from None
    trace = meta.get("lineage") or {}
    training = meta.get("training_set") or {}
    print(f"model {MODEL_NAME} {args.version}  sha256 {meta.get('sha256')}  run {meta.get('dagster_run_id')}")
    print(f"  feature service {meta.get('feature_service')}: {', '.join(meta.get('features', []))}")
    print(
        f"  training set {training.get('rows', 0):,} rows, snapshots {' to '.join(training.get('snapshots', []))},"
        f" fingerprint {training.get('fingerprint')}"
    )
    print(f"  feature partitions {' to '.join(trace.get('feature_partitions', []))}")
    print(f"  clean/raw partitions {' to '.join(trace.get('clean_partitions', []))}")
    files = trace.get("raw_files", [])
    print(f"  raw files ({len(files)}):")
    for f in files:
        print(f"    {f['file']}  sha256 {f['sha256']}  {f['rows']:,} rows")
    print("  code versions:")
    for key, version in (meta.get("code_versions") or {}).items():
        print(f"    {key}  {version}")


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    """`dagster dev` as a child, beside the file server; its exit code is this command's."""
    import subprocess

    from ballast.cli import files
    from ballast.runs import PLANNED_EVENTS_ENV, prepare_dev, write_dagster_yaml

    write_dagster_yaml(settings)
    owner_env = prepare_dev(settings)
    bin_dir = Path(sys.executable).parent
    env = {
        **PLANNED_EVENTS_ENV,
        **os.environ,
        **owner_env,
        "BALLAST_HOME": str(settings.home),
        "DAGSTER_HOME": str(settings.dagster_home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if args.automation:
        # Read by Settings in the code location's processes: every Ballast sensor and schedule defaults to RUNNING.
        env[AUTOMATION_ENV] = "on"
    # Alerts link to this UI, metadata to this file server (unless set otherwise).
    env.setdefault("BALLAST_UI_URL", f"http://127.0.0.1:{args.port}")
    files_port = args.files_port or settings.files_port
    env["BALLAST_FILES_PORT"] = str(files_port)
    server = _file_server(settings, files_port)
    workspace = REPO_ROOT / "workspace.yaml"
    argv = [str(bin_dir / "dagster"), "dev", "-w", str(workspace), "--port", str(args.port)]
    # Its own process group: a Ctrl-C (or a signal to this process's group) reaches dagster dev once, forwarded.
    child = subprocess.Popen(argv, env=env, process_group=0, preexec_fn=_child_setup())
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda received, _frame: _forward(child, received))
    docs = threading.Thread(target=_dbt_docs, args=(settings,), name="dbt-docs", daemon=True)
    if server is not None:
        files.serve_in_background(server)
        docs.start()
    try:
        code = child.wait()
    finally:
        if server is not None:
            server.shutdown()
            # dbt takes seconds: let it finish rather than leave it running alone.
            docs.join(timeout=DOCS_WAIT_SECONDS)
    return 128 - code if code < 0 else code


def _file_server(settings: Settings, port: int):
    """The file server of `ballast dev` (listening, not serving yet), or None with a warning when its port is taken."""
    from ballast.cli import files

    try:
        server = files.bound_server(settings, port)
    except OSError as exc:
        print(
            f"ballast: warning: the file server cannot listen on 127.0.0.1:{port} ({exc.strerror}); drift reports,"
            " plots and dbt docs are not served: choose another port with --files-port or BALLAST_FILES_PORT",
            file=sys.stderr,
        )
        return None
    print(f"ballast: drift reports, plots and dbt docs on http://127.0.0.1:{port}/", file=sys.stderr)
    return server


def _dbt_docs(settings: Settings) -> None:
    from ballast.cli import files

    problem = files.generate_dbt_docs(settings)
    if problem:
        print(f"ballast: warning: {problem}", file=sys.stderr)


def _forward(child, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signum)


def _child_setup():
    """What dagster dev's process runs before exec: it acts on the signals forwarded to it and, on Linux, gets
    SIGTERM if `ballast dev` is killed outright (not orphaned).

    A background job of a script starts with SIGINT ignored, which exec would pass on (and dagster dev copies
    SIGINT's handling to SIGTERM). prctl is looked up here, in the parent: the child must not import.
    """
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        prctl = None

    def setup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


def _preflight(command: str, settings: Settings) -> None:
    """Prove the environment can support the command before it does any work."""
    if command == "run":
        preflight.landing(settings)
    if command in ("demo", "run", "dev"):
        preflight.home(settings)
        preflight.contracts(settings)
        preflight.dagster_instance(settings)
        # Another run's write lock is not a fault: runs take turns on the warehouse pool.
        preflight.warehouse(settings, allow_locked=True)
    elif command == "report":
        preflight.warehouse(settings)
    elif command == "audit":
        preflight.home(settings)
        preflight.dagster_instance(settings)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "demo":
        _demo(args, settings)
    elif args.command == "run":
        _run(settings, "run", full=args.full, dates=args.dates)
    elif args.command == "report":
        _report(args, settings)
    elif args.command == "audit":
        _audit(args, settings)
    elif args.command == "features":
        _features_get(args, settings)
    elif args.command == "model":
        _model(args, settings)
    elif args.command == "lineage":
        _lineage(args, settings)
    elif args.command == "dev":
        return _dev(args, settings)
    return 0


def _os_error_line(exc: OSError) -> str:
    if exc.filename is None:
        return f"{exc.strerror or exc}; check the folders under BALLAST_HOME and their permissions"
    target = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
    return (
        f"{exc.strerror or type(exc).__name__}: {target}; check that this path exists, is a folder where one is"
        " expected, and can be written"
    )


def _internal_error(exc: Exception, settings: Settings | None) -> int:
    """One line for a fault in Ballast itself; the traceback goes to a file instead of the user's screen."""
    import tempfile
    import traceback

    folders = [settings.home / "logs"] if settings is not None else []
    text = "".join(traceback.format_exception(exc))
    where = "the traceback could not be saved"
    for folder in [*folders, Path(tempfile.gettempdir())]:
        log = folder / f"error-{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}.log"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            log.write_text(text)
        except OSError:
            continue
        where = f"traceback in {log}"
        break
    summary = f"{type(exc).__name__}: {_one_line(str(exc))}"
    print(f"ballast: internal error: {summary} ({where}; please report it)", file=sys.stderr)
    return INTERNAL_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings: Settings | None = None
    try:
        if args.command == "generate":
            _generate(args)
            return 0
        settings = Settings.from_env()
        if args.command == "run" and args.landing is not None:
            settings = dataclasses.replace(settings, landing_dir=args.landing)
        _preflight(args.command, settings)
        return _dispatch(args, settings)
    except (UserError, SettingsError, PreflightError) as exc:
        print(f"ballast: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        # Filesystem faults that appear after the checks (a disk fills up, a folder is removed).
        print(f"ballast: error: {_os_error_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        import duckdb

        if isinstance(exc, duckdb.Error) and settings is not None and str(settings.warehouse_path) in str(exc):
            print(f"ballast: error: {preflight.duckdb_problem(settings.warehouse_path, exc)}", file=sys.stderr)
            return 1
        return _internal_error(exc, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
