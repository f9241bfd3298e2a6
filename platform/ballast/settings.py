"""Every path and environment value Ballast uses, read once.

Nothing else in the package reads the environment: modules receive a `Settings`
object, so tests build one on a `tmp_path` and production reads it from the
environment through `Settings.from_env()`.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import os
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
CONTRACTS_DIR = REPO_ROOT / "contracts"

WAREHOUSE_POOL = "warehouse"
# The warehouse file's name, which DuckDB (and dbt-duckdb) also take as its catalog name.
WAREHOUSE_CATALOG = "warehouse"
# Feast registry writes and materializations run one at a time, like warehouse writes.
FEAST_POOL = "feast"
# Where features/customer_daily_features is computed: dbt on DuckDB, or the same dbt
# model transpiled to Spark SQL and run by PySpark over the clean layer's Parquet.
FEATURE_ENGINES = ("duckdb", "spark")
# How runs launched from the UI (and by sensors) execute their steps: all in the run's own
# process (the warehouse pool serialises them anyway, and a process per step costs seconds
# of start-up and imports each), or one process per step, Dagster's default.
EXECUTORS = ("in_process", "multiprocess")
# SQLite's values of PRAGMA synchronous, for Dagster's run history; "full" is SQLite's default.
HISTORY_SYNC_MODES = ("off", "normal", "full")
# Spark settings Ballast needs for results equal to DuckDB's; BALLAST_SPARK_CONF adds to them.
SPARK_DEFAULTS = {
    "spark.app.name": "ballast",
    "spark.sql.session.timeZone": "UTC",
    # Timestamps without time zone, like DuckDB's TIMESTAMP, in Spark's SQL and its Parquet.
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
}
# The local alert log is always on; these add a webhook (BALLAST_ALERT_WEBHOOK_URL) and
# Slack (BALLAST_SLACK_WEBHOOK_URL), whose addresses Dagster reads through EnvVar.
ALERT_SINKS = ("webhook", "slack")
# Where OpenLineage events go: a JSONL file under BALLAST_HOME (default), an HTTP endpoint
# such as Marquez (BALLAST_OPENLINEAGE_URL), or nowhere.
OPENLINEAGE_TRANSPORTS = ("file", "http", "none")
# The API key of the HTTP endpoint is a secret: Dagster reads it through EnvVar, Settings only notes it is set.
OPENLINEAGE_API_KEY_ENV = "BALLAST_OPENLINEAGE_API_KEY"
# The longest trailing window the raw anomaly checks compare a day with (a year).
MAX_ANOMALY_WINDOW_DAYS = 366
# Freshness (ballast.monitoring.freshness): at each tick of this cron, in this time zone, the
# last completed day must be materialized on the raw, clean and features layers.
FRESHNESS_DEADLINE_CRON = "0 9 * * *"
FRESHNESS_TIMEZONE = "UTC"
# The freshness policy counts a materialization in this span before each deadline, so
# deadlines must be at least this far apart.
FRESHNESS_LOOKBACK = dt.timedelta(days=1)
# The home's own start date: `ballast demo` writes its first day here, and it is the default of
# BALLAST_START_DATE for every later process on the home (`ballast dev`, `dagster dev`, `ballast run`).
START_DATE_FILE = "start_date"


class SettingsError(ValueError):
    """A setting has a value Ballast cannot use; the message names the variable."""


def _parse_date(name: str, value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a date (expected YYYY-MM-DD)") from None


def _recorded_start_date(home: Path) -> dt.date | None:
    """The start date recorded in the home (START_DATE_FILE), or None when it has none."""
    path = home / START_DATE_FILE
    try:
        text = path.read_text()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise SettingsError(
            f"{path} cannot be read ({exc.strerror}); it holds this home's start date: fix its permissions or delete it"
        ) from None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise SettingsError(
            f"{path} holds {text.strip()[:40]!r}, not a date (expected YYYY-MM-DD); it holds this home's start date"
            " (written by `ballast demo`): fix or delete it, or set BALLAST_START_DATE"
        ) from None


def _parse_int(name: str, value: str) -> int:
    try:
        parsed = int(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a whole number") from None
    if parsed < 1:
        raise SettingsError(f"{name}={value!r} must be at least 1")
    return parsed


def _parse_spark_conf(value: str) -> tuple[tuple[str, str], ...]:
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"BALLAST_SPARK_CONF is not JSON ({exc.msg}); expected an object of Spark properties"
        ) from None
    if not isinstance(parsed, dict) or not all(str(k).startswith("spark.") for k in parsed):
        raise SettingsError(
            'BALLAST_SPARK_CONF must be a JSON object of "spark.*" properties, e.g. {"spark.executor.memory": "4g"}'
        )
    return tuple((str(k), str(v)) for k, v in parsed.items())


_CURRENCY_CODE = re.compile(r"[A-Z]{3}")


def folder_problem(path: Path) -> str | None:
    """Why `path` cannot be or become a folder (it, or a folder above it, is a file), or None."""
    for candidate in (path, *path.parents):
        try:
            if candidate.is_dir():
                return None
            if candidate.exists() or candidate.is_symlink():
                if not candidate.exists():
                    return f"is a broken link ({candidate})"
                if candidate == path:
                    return "is a file, not a folder"
                return f"is under {candidate}, a file, not a folder"
        except OSError as exc:
            return f"cannot be inspected ({exc.strerror}: {candidate})"
    return None


@functools.lru_cache(maxsize=16)
def _memory_limit_problem(value: str) -> str | None:
    """DuckDB's own reason for refusing `value` as a memory limit, or None."""
    import duckdb

    if value.startswith("-"):
        return "it is negative; DuckDB would silently ignore it"
    try:
        con = duckdb.connect(":memory:", config={"memory_limit": value})
    except duckdb.Error as exc:
        return str(exc).strip().splitlines()[0]
    try:
        # A limit DuckDB parses can still be too small for any work: try a little.
        con.execute("create table probe as select range as i, range::varchar as s from range(100000)")
    except duckdb.OutOfMemoryException as exc:
        return f"too small for a small query: {str(exc).strip().splitlines()[0]}"
    finally:
        con.close()
    return None


@functools.lru_cache(maxsize=16)
def _deadline_problem(cron: str) -> str | None:
    """Why `cron` cannot be a daily freshness deadline, or None."""
    problem = _cron_problem(cron)
    if problem:
        return problem
    minute, hour = cron.split()[:2]
    # One minute of one hour: the policy's look-back (a day) must not span two deadlines.
    if not (minute.isdigit() and hour.isdigit()):
        return "it fires more than once a day; give the minute and the hour as single numbers"
    return None


def _check_freshness(s: Settings) -> None:
    try:
        zoneinfo.ZoneInfo(s.freshness_timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(
            f"BALLAST_FRESHNESS_TIMEZONE={s.freshness_timezone!r} is not a known time zone;"
            " set an IANA name such as UTC or Europe/Berlin"
        ) from None
    problem = _deadline_problem(s.freshness_deadline_cron)
    if problem:
        raise SettingsError(
            f"BALLAST_FRESHNESS_DEADLINE_CRON={s.freshness_deadline_cron!r} cannot be used ({problem});"
            " set a cron expression of five fields (minute hour day-of-month month day-of-week) that fires at most"
            " once a day, such as '0 9 * * *' (09:00 every day)"
        )


def _check_values(s: Settings) -> None:
    """Refuse values no run could use, before any work starts."""
    if not s.currencies:
        raise SettingsError("BALLAST_CURRENCIES lists no currency; set it to codes such as USD,EUR,GBP (or unset it)")
    bad = [c for c in s.currencies if not _CURRENCY_CODE.fullmatch(c)]
    if bad:
        raise SettingsError(
            f"BALLAST_CURRENCIES has {', '.join(repr(c) for c in bad)};"
            " each entry must be a 3-letter ISO 4217 code such as USD"
        )
    problem = _memory_limit_problem(s.duckdb_memory_limit)
    if problem:
        raise SettingsError(
            f"BALLAST_DUCKDB_MEMORY_LIMIT={s.duckdb_memory_limit!r} cannot be used ({problem});"
            " set a size such as 2GB or 512MiB"
        )
    if not s.spark_master:
        raise SettingsError(
            "BALLAST_SPARK_MASTER is empty; set it to local[*] or a cluster URL such as spark://host:7077 (or unset it)"
        )
    for name, value, low, high in (
        ("BALLAST_DRIFT_SHARE_WARN", s.drift_share_warn, 0.0, 1.0),
        ("BALLAST_DRIFT_P_VALUE", s.drift_p_value, 0.0, 1.0),
        ("BALLAST_PSI_ERROR", s.psi_error, 0.0, math.inf),
        ("BALLAST_DRIFT_PSI", s.drift_psi, 0.0, math.inf),
        ("BALLAST_RETRAIN_COOLDOWN_HOURS", s.retrain_cooldown_hours, 0.0, math.inf),
    ):
        if not (math.isfinite(value) and low <= value <= high):
            bounds = f"between {low:g} and {high:g}" if math.isfinite(high) else "a finite number of at least 0"
            raise SettingsError(f"{name}={value} must be {bounds}")
    today = dt.datetime.now(dt.UTC).date()
    if s.start_date > today:
        if s.start_date_origin == START_DATE_FILE:
            raise SettingsError(
                f"{s.start_date_file} holds {s.start_date}, a day in the future (today is {today}, UTC); it holds"
                " this home's start date: delete it, or set BALLAST_START_DATE to the first event date of your data"
            )
        raise SettingsError(
            f"BALLAST_START_DATE={s.start_date} is in the future (today is {today}, UTC);"
            " set it to the first event date of your data"
        )
    if not s.segment_column:
        raise SettingsError(
            "BALLAST_SEGMENT_COLUMN is empty; set it to a customer column such as home_country (or unset it)"
        )


def _check_paths(s: Settings) -> None:
    """Refuse a home, landing folder or contracts folder that cannot work, naming the variable and the path."""
    problem = folder_problem(s.home)
    if problem:
        raise SettingsError(
            f"BALLAST_HOME={s.home} {problem}; set BALLAST_HOME to a folder Ballast may create and write"
        )
    problem = folder_problem(s.landing_dir)
    if problem:
        raise SettingsError(
            f"the landing folder {s.landing_dir} {problem};"
            " set BALLAST_LANDING_DIR (default BALLAST_HOME/landing) to a folder"
        )
    if not s.contracts_dir.is_dir():
        raise SettingsError(
            f"BALLAST_CONTRACTS_DIR={s.contracts_dir} is not a folder; point it at a copy of {CONTRACTS_DIR} (or unset it)"
        )
    missing = sorted(p.name for p in CONTRACTS_DIR.glob("*.yml") if not (s.contracts_dir / p.name).is_file())
    if missing:
        raise SettingsError(
            f"BALLAST_CONTRACTS_DIR={s.contracts_dir} lacks {', '.join(missing)}; copy them from {CONTRACTS_DIR}"
        )


def _check_openlineage(s: Settings) -> None:
    if s.openlineage_transport not in OPENLINEAGE_TRANSPORTS:
        raise SettingsError(
            f"BALLAST_OPENLINEAGE_TRANSPORT={s.openlineage_transport!r} is not one of {', '.join(OPENLINEAGE_TRANSPORTS)}"
        )
    if s.openlineage_transport == "http" and not re.fullmatch(r"https?://[^/\s]+(/\S*)?", s.openlineage_url or ""):
        raise SettingsError(
            "BALLAST_OPENLINEAGE_TRANSPORT=http needs BALLAST_OPENLINEAGE_URL, the address of the OpenLineage"
            " endpoint such as http://localhost:5000 (Marquez)"
        )
    if not s.openlineage_namespace:
        raise SettingsError("BALLAST_OPENLINEAGE_NAMESPACE is empty; set it to a name such as ballast (or unset it)")


# Cron fields: minute, hour, day of month, month, day of week (0 and 7 are Sunday).
_CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_CRON_ITEM = re.compile(r"(\*|(\d+)(?:-(\d+))?)(?:/([1-9]\d*))?")
SWITCH_VALUES = {"on": True, "off": False}
# Set to "on" by `ballast dev --automation`: Ballast's sensors and schedules default to RUNNING.
AUTOMATION_ENV = "BALLAST_AUTOMATION"


def _cron_problem(cron: str) -> str | None:
    """Why `cron` is not a five-field cron expression of numbers, ranges, lists and steps, or None."""
    fields = cron.split()
    if len(fields) != 5:
        return f"has {len(fields)} field(s), not 5 (minute hour day-of-month month day-of-week)"
    for text, (low, high) in zip(fields, _CRON_RANGES, strict=True):
        for item in text.split(","):
            match = _CRON_ITEM.fullmatch(item)
            if match is None:
                return f"{text!r} is not a cron field (use numbers, *, ranges a-b, lists a,b and steps /n)"
            bounds = [int(v) for v in match.group(2, 3) if v is not None]
            if any(not low <= v <= high for v in bounds) or (len(bounds) == 2 and bounds[0] > bounds[1]):
                return f"{text!r} is outside {low}-{high}"
    if fields[3] == "2" and fields[2] in ("30", "31"):
        return "names February 30 or 31, a day that never comes"
    return None


def _parse_switch(name: str, value: str) -> bool:
    switch = SWITCH_VALUES.get(value.strip().lower())
    if switch is None:
        raise SettingsError(f"{name}={value!r} must be on or off")
    return switch


@functools.lru_cache(maxsize=16)
def _dagster_accepts_owner(owner: str) -> bool:
    """Whether Dagster takes `owner` as an asset owner: its own rule, not a copy of it."""
    import dagster as dg

    try:
        dg.AssetSpec("owner_probe", owners=[owner])
    except dg.DagsterInvalidDefinitionError:
        return False
    return True


def _check_owners(s: Settings) -> None:
    if not s.owners:
        raise SettingsError(
            "BALLAST_OWNERS lists no owner; set it to e-mail addresses or team names such as team:data-platform"
            " (or unset it)"
        )
    bad = [o for o in s.owners if not _dagster_accepts_owner(o)]
    if bad:
        raise SettingsError(
            f"BALLAST_OWNERS has {', '.join(repr(o) for o in bad)}; each entry must be an e-mail address"
            " (jane@example.com) or a team name prefixed with team: (team:data-platform)"
        )


def _check_anomaly(s: Settings) -> None:
    if not (math.isfinite(s.anomaly_z) and s.anomaly_z > 0):
        raise SettingsError(f"BALLAST_ANOMALY_Z={s.anomaly_z} must be a finite number above 0 (e.g. 3.5)")
    if not 1 <= s.anomaly_window_days <= MAX_ANOMALY_WINDOW_DAYS:
        raise SettingsError(
            f"BALLAST_ANOMALY_WINDOW_DAYS={s.anomaly_window_days} must be between 1 and {MAX_ANOMALY_WINDOW_DAYS}"
        )
    if not 1 <= s.anomaly_min_history_days <= s.anomaly_window_days:
        raise SettingsError(
            f"BALLAST_ANOMALY_MIN_HISTORY_DAYS={s.anomaly_min_history_days} must be between 1 and"
            f" BALLAST_ANOMALY_WINDOW_DAYS ({s.anomaly_window_days}): the history is read from that window"
        )


def _check_files(s: Settings) -> None:
    if not 1 <= s.files_port <= 65535:
        raise SettingsError(f"BALLAST_FILES_PORT={s.files_port} must be a TCP port between 1 and 65535")
    if s.files_url and not s.files_url.startswith(("http://", "https://")):
        raise SettingsError(f"BALLAST_FILES_URL={s.files_url!r} must start with http:// or https://")


def _parse_float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r} is not a number") from None


@dataclass(frozen=True)
class Settings:
    home: Path
    landing_dir: Path
    start_date: dt.date = dt.date(2025, 1, 1)
    # Where start_date came from: "default", "BALLAST_START_DATE" or START_DATE_FILE (the home's).
    start_date_origin: str = "default"
    currencies: tuple[str, ...] = ("USD", "EUR", "GBP")
    feature_engine: str = "duckdb"
    executor: str = "in_process"
    # SQLite's `synchronous` for Dagster's run history (ballast.common.history_sync).
    history_sync: str = "off"
    spark_master: str = "local[*]"
    # DuckDB's memory per connection (dbt's and the assets'); it spills to disk beyond this.
    duckdb_memory_limit: str = "2GB"
    # Extra Spark properties (BALLAST_SPARK_CONF, a JSON object), e.g. executor memory on a cluster.
    spark_conf: tuple[tuple[str, str], ...] = ()
    label_window_days: int = 30
    snapshot_every_days: int = 7
    holdout_fraction: float = 0.25
    max_file_bytes: int = 1 << 30
    max_columns: int = 64
    parity_sample_size: int = 1000
    min_auc: float = 0.70
    champion_ratio: float = 0.98
    max_fairness_gap: float = 0.10
    # The beats_baseline gate: candidate ROC AUC minus the naive recency baseline's AUC on
    # the same holdout must exceed this (negative lets a candidate trail the baseline).
    min_baseline_margin: float = 0.01
    min_segment_customers: int = 50
    segment_column: str = "home_country"
    drift_share_warn: float = 0.15
    psi_error: float = 0.2
    drift_p_value: float = 0.05
    drift_psi: float = 0.1
    drift_exempt: tuple[str, ...] = ("tenure_days",)
    reference_days: int = 28
    ui_url: str = "http://127.0.0.1:3000"
    # `ballast dev`'s file server (drift reports, plots, dbt docs) and the address metadata links name ("" = local).
    files_port: int = 3001
    files_url: str = ""
    # Which alert sinks are on (their addresses are secrets, read only through dagster.EnvVar).
    alert_sinks: tuple[str, ...] = ()
    retrain_cooldown_hours: float = 24.0
    # A partition day whose quarantined share of raw rows exceeds this fails the blocking
    # check on clean/transactions: a broken delivery must not flow on into features thin.
    max_quarantine_share: float = 0.05
    # Raw volume and null-share anomalies (raw/health.py): a day whose robust z-score against
    # the trailing window's median and MAD exceeds anomaly_z warns, once the window holds
    # anomaly_min_history_days days with data.
    anomaly_z: float = 3.5
    anomaly_window_days: int = 28
    anomaly_min_history_days: int = 14
    # The debt scorecard (audit layer): the overall debt index under which the scorecard
    # asks for a review (WARN) and `ballast audit` fails, and each dimension's target.
    audit_min_index: float = 0.8
    audit_target_documentation: float = 0.80
    audit_target_coverage: float = 0.70
    audit_target_freshness: float = 0.90
    audit_target_error_handling: float = 0.90
    contracts_dir: Path = CONTRACTS_DIR
    openlineage_transport: str = "file"
    openlineage_url: str | None = None
    # Marquez's path; DataHub and others take events elsewhere (BALLAST_OPENLINEAGE_ENDPOINT).
    openlineage_endpoint: str = "api/v1/lineage"
    # The OpenLineage namespace of Ballast's jobs (and of datasets that are not warehouse tables).
    openlineage_namespace: str = "ballast"
    openlineage_api_key_set: bool = False
    # When landing_daily_schedule looks for new or changed landing files (cron, UTC, like the partitions).
    landing_cron: str = "0 2 * * *"
    # `ballast dev --automation` (BALLAST_AUTOMATION=on): Ballast's sensors and schedules start RUNNING.
    automation: bool = False
    freshness_deadline_cron: str = FRESHNESS_DEADLINE_CRON
    freshness_timezone: str = FRESHNESS_TIMEZONE
    # The owners of every asset in Dagster's catalogue: e-mail addresses or team:<name>.
    owners: tuple[str, ...] = ("team:data-platform",)

    def __post_init__(self) -> None:
        if self.feature_engine not in FEATURE_ENGINES:
            raise SettingsError(
                f"BALLAST_FEATURE_ENGINE={self.feature_engine!r} is not one of {', '.join(FEATURE_ENGINES)}"
            )
        if self.executor not in EXECUTORS:
            raise SettingsError(f"BALLAST_EXECUTOR={self.executor!r} is not one of {', '.join(EXECUTORS)}")
        if self.history_sync not in HISTORY_SYNC_MODES:
            raise SettingsError(
                f"BALLAST_HISTORY_SYNC={self.history_sync!r} is not one of {', '.join(HISTORY_SYNC_MODES)}"
            )
        if not 0 < self.holdout_fraction < 1:
            raise SettingsError(f"BALLAST_HOLDOUT_FRACTION={self.holdout_fraction} must be between 0 and 1")
        unknown = set(self.alert_sinks) - set(ALERT_SINKS)
        if unknown:
            raise SettingsError(
                f"BALLAST_ALERT_SINKS has {', '.join(sorted(unknown))}; choose from {', '.join(ALERT_SINKS)}"
            )
        for name, value in (
            ("BALLAST_MIN_AUC", self.min_auc),
            ("BALLAST_CHAMPION_RATIO", self.champion_ratio),
            ("BALLAST_MAX_FAIRNESS_GAP", self.max_fairness_gap),
        ):
            if not 0 <= value <= 1:
                raise SettingsError(f"{name}={value} must be between 0 and 1")
        if not -1 <= self.min_baseline_margin < 1:
            raise SettingsError(
                f"BALLAST_MIN_BASELINE_MARGIN={self.min_baseline_margin} must be at least -1 and below 1"
                " (a difference of two ROC AUCs)"
            )
        if not 0 < self.max_quarantine_share <= 1:
            raise SettingsError(
                f"BALLAST_MAX_QUARANTINE_SHARE={self.max_quarantine_share} must be above 0 and at most 1"
            )
        _check_anomaly(self)
        for name, value in self.audit_targets_by_env().items():
            if not 0 <= value <= 1:
                raise SettingsError(f"{name}={value} must be between 0 and 1")
        problem = _cron_problem(self.landing_cron)
        if problem:
            raise SettingsError(
                f"BALLAST_LANDING_CRON={self.landing_cron!r} {problem}; e.g. '0 2 * * *' (02:00 UTC every day)"
            )
        _check_openlineage(self)
        _check_freshness(self)
        _check_owners(self)
        _check_values(self)
        _check_files(self)
        _check_paths(self)

    def audit_targets_by_env(self) -> dict[str, float]:
        """The debt scorecard's thresholds by their environment variable."""
        return {
            "BALLAST_AUDIT_MIN_INDEX": self.audit_min_index,
            "BALLAST_AUDIT_TARGET_DOCUMENTATION": self.audit_target_documentation,
            "BALLAST_AUDIT_TARGET_COVERAGE": self.audit_target_coverage,
            "BALLAST_AUDIT_TARGET_FRESHNESS": self.audit_target_freshness,
            "BALLAST_AUDIT_TARGET_ERROR_HANDLING": self.audit_target_error_handling,
        }

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        home = Path(env.get("BALLAST_HOME", ".ballast")).expanduser().resolve()
        landing = env.get("BALLAST_LANDING_DIR")
        kwargs: dict = {
            "home": home,
            "landing_dir": Path(landing).expanduser().resolve() if landing else home / "landing",
        }
        if "BALLAST_CONTRACTS_DIR" in env:
            kwargs["contracts_dir"] = Path(env["BALLAST_CONTRACTS_DIR"]).expanduser().resolve()
        if "BALLAST_START_DATE" in env:
            kwargs["start_date"] = _parse_date("BALLAST_START_DATE", env["BALLAST_START_DATE"])
            kwargs["start_date_origin"] = "BALLAST_START_DATE"
        elif (recorded := _recorded_start_date(home)) is not None:
            kwargs["start_date"] = recorded
            kwargs["start_date_origin"] = START_DATE_FILE
        if "BALLAST_CURRENCIES" in env:
            kwargs["currencies"] = tuple(c.strip().upper() for c in env["BALLAST_CURRENCIES"].split(",") if c.strip())
        if "BALLAST_FEATURE_ENGINE" in env:
            kwargs["feature_engine"] = env["BALLAST_FEATURE_ENGINE"].strip().lower()
        if "BALLAST_EXECUTOR" in env:
            kwargs["executor"] = env["BALLAST_EXECUTOR"].strip().lower()
        if "BALLAST_HISTORY_SYNC" in env:
            kwargs["history_sync"] = env["BALLAST_HISTORY_SYNC"].strip().lower()
        if "BALLAST_DUCKDB_MEMORY_LIMIT" in env:
            kwargs["duckdb_memory_limit"] = env["BALLAST_DUCKDB_MEMORY_LIMIT"].strip()
        if "BALLAST_SPARK_MASTER" in env:
            kwargs["spark_master"] = env["BALLAST_SPARK_MASTER"].strip()
        if "BALLAST_SPARK_CONF" in env:
            kwargs["spark_conf"] = _parse_spark_conf(env["BALLAST_SPARK_CONF"])
        for name, key in (
            ("holdout_fraction", "BALLAST_HOLDOUT_FRACTION"),
            ("min_auc", "BALLAST_MIN_AUC"),
            ("champion_ratio", "BALLAST_CHAMPION_RATIO"),
            ("max_fairness_gap", "BALLAST_MAX_FAIRNESS_GAP"),
            ("min_baseline_margin", "BALLAST_MIN_BASELINE_MARGIN"),
            ("drift_share_warn", "BALLAST_DRIFT_SHARE_WARN"),
            ("psi_error", "BALLAST_PSI_ERROR"),
            ("drift_p_value", "BALLAST_DRIFT_P_VALUE"),
            ("drift_psi", "BALLAST_DRIFT_PSI"),
            ("retrain_cooldown_hours", "BALLAST_RETRAIN_COOLDOWN_HOURS"),
            ("max_quarantine_share", "BALLAST_MAX_QUARANTINE_SHARE"),
            ("anomaly_z", "BALLAST_ANOMALY_Z"),
            ("audit_min_index", "BALLAST_AUDIT_MIN_INDEX"),
            ("audit_target_documentation", "BALLAST_AUDIT_TARGET_DOCUMENTATION"),
            ("audit_target_coverage", "BALLAST_AUDIT_TARGET_COVERAGE"),
            ("audit_target_freshness", "BALLAST_AUDIT_TARGET_FRESHNESS"),
            ("audit_target_error_handling", "BALLAST_AUDIT_TARGET_ERROR_HANDLING"),
        ):
            if key in env:
                kwargs[name] = _parse_float(key, env[key])
        if "BALLAST_DRIFT_EXEMPT" in env:
            kwargs["drift_exempt"] = tuple(c.strip() for c in env["BALLAST_DRIFT_EXEMPT"].split(",") if c.strip())
        if "BALLAST_UI_URL" in env:
            kwargs["ui_url"] = env["BALLAST_UI_URL"].rstrip("/")
        if "BALLAST_FILES_URL" in env:
            kwargs["files_url"] = env["BALLAST_FILES_URL"].strip().rstrip("/")
        if "BALLAST_ALERT_SINKS" in env:
            kwargs["alert_sinks"] = tuple(c.strip() for c in env["BALLAST_ALERT_SINKS"].split(",") if c.strip())
        if "BALLAST_OPENLINEAGE_TRANSPORT" in env:
            kwargs["openlineage_transport"] = env["BALLAST_OPENLINEAGE_TRANSPORT"].strip().lower()
        for name, key in (
            ("openlineage_url", "BALLAST_OPENLINEAGE_URL"),
            ("openlineage_endpoint", "BALLAST_OPENLINEAGE_ENDPOINT"),
            ("openlineage_namespace", "BALLAST_OPENLINEAGE_NAMESPACE"),
        ):
            if key in env:
                kwargs[name] = env[key].strip()
        kwargs["openlineage_api_key_set"] = bool(env.get(OPENLINEAGE_API_KEY_ENV))
        if "BALLAST_LANDING_CRON" in env:
            kwargs["landing_cron"] = " ".join(env["BALLAST_LANDING_CRON"].split())
        if AUTOMATION_ENV in env:
            kwargs["automation"] = _parse_switch(AUTOMATION_ENV, env[AUTOMATION_ENV])
        if "BALLAST_FRESHNESS_DEADLINE_CRON" in env:
            kwargs["freshness_deadline_cron"] = " ".join(env["BALLAST_FRESHNESS_DEADLINE_CRON"].split())
        if "BALLAST_FRESHNESS_TIMEZONE" in env:
            kwargs["freshness_timezone"] = env["BALLAST_FRESHNESS_TIMEZONE"].strip()
        if "BALLAST_OWNERS" in env:
            kwargs["owners"] = tuple(o.strip() for o in env["BALLAST_OWNERS"].split(",") if o.strip())
        if "BALLAST_SEGMENT_COLUMN" in env:
            kwargs["segment_column"] = env["BALLAST_SEGMENT_COLUMN"].strip()
        for name, key in (
            ("max_file_bytes", "BALLAST_MAX_FILE_BYTES"),
            ("max_columns", "BALLAST_MAX_COLUMNS"),
            ("parity_sample_size", "BALLAST_PARITY_SAMPLE_SIZE"),
            ("min_segment_customers", "BALLAST_MIN_SEGMENT_CUSTOMERS"),
            ("reference_days", "BALLAST_REFERENCE_DAYS"),
            ("anomaly_window_days", "BALLAST_ANOMALY_WINDOW_DAYS"),
            ("anomaly_min_history_days", "BALLAST_ANOMALY_MIN_HISTORY_DAYS"),
            ("files_port", "BALLAST_FILES_PORT"),
        ):
            if key in env:
                kwargs[name] = _parse_int(key, env[key])
        return cls(**kwargs)

    @cached_property
    def start_date_file(self) -> Path:
        """The home's start date, the default of BALLAST_START_DATE (written by `ballast demo`)."""
        return self.home / START_DATE_FILE

    def record_start_date(self) -> None:
        """Make start_date the home's default, so processes started later on it share the partitions."""
        self.home.mkdir(parents=True, exist_ok=True)
        partial = self.start_date_file.with_name(f".{START_DATE_FILE}.{os.getpid()}.tmp")
        partial.write_text(f"{self.start_date.isoformat()}\n")
        partial.replace(self.start_date_file)

    @cached_property
    def warehouse_path(self) -> Path:
        return self.home / f"{WAREHOUSE_CATALOG}.duckdb"

    @cached_property
    def lake_dir(self) -> Path:
        return self.home / "lake"

    @cached_property
    def spark_config(self) -> dict[str, str]:
        """Spark properties for the PySpark resource: the master, Ballast's defaults, then BALLAST_SPARK_CONF."""
        return {"spark.master": self.spark_master, **SPARK_DEFAULTS, **dict(self.spark_conf)}

    @cached_property
    def registry_dir(self) -> Path:
        return self.home / "registry"

    @cached_property
    def monitoring_dir(self) -> Path:
        """whylogs profiles, drift reports (HTML) and the alert log and outbox."""
        return self.home / "monitoring"

    @cached_property
    def alert_log(self) -> Path:
        """The local alert sink: one JSON line per check-failure alert."""
        return self.monitoring_dir / "alerts" / "alerts.jsonl"

    @cached_property
    def alert_outbox(self) -> Path:
        """Alert delivery state: which sink has received which alert, and what waits for a retry."""
        return self.monitoring_dir / "alerts" / "outbox.json"

    @cached_property
    def lineage_dir(self) -> Path:
        return self.home / "lineage"

    @cached_property
    def openlineage_file(self) -> Path:
        """The default OpenLineage transport: one JSON line per event."""
        return self.lineage_dir / "openlineage.jsonl"

    @cached_property
    def openlineage_outbox(self) -> Path:
        """OpenLineage delivery state: every event built, whether it was sent, and what it covers."""
        return self.lineage_dir / "openlineage_outbox.sqlite"

    @cached_property
    def files_base_url(self) -> str:
        """Where `ballast dev` serves the home's reports: BALLAST_FILES_URL, else this machine at BALLAST_FILES_PORT."""
        return self.files_url or f"http://127.0.0.1:{self.files_port}"

    @cached_property
    def plots_dir(self) -> Path:
        """Plots shown on asset pages (PNG), served by `ballast dev`."""
        return self.home / "plots"

    @cached_property
    def dbt_docs_dir(self) -> Path:
        """dbt's documentation site of this home (`dbt docs generate`, a dbt target folder), served by `ballast dev`."""
        return self.dbt_runs_dir / "docs"

    @cached_property
    def dagster_home(self) -> Path:
        return self.home / "dagster_home"

    @cached_property
    def dbt_profiles_dir(self) -> Path:
        return self.home / "dbt_profiles"

    @cached_property
    def soda_data_source(self) -> Path:
        return self.home / "soda" / "datasource.yml"

    @cached_property
    def dbt_runs_dir(self) -> Path:
        return self.home / "dbt_runs"

    @cached_property
    def audit_dir(self) -> Path:
        return self.home / "audit"

    @cached_property
    def run_warnings_log(self) -> Path:
        """Deprecation, Beta and Preview warnings raised through Ballast's calls during CLI runs, one JSON line each."""
        return self.audit_dir / "run_warnings.jsonl"

    def ensure_dirs(self) -> None:
        for path in (self.home, self.landing_dir, self.lake_dir, self.registry_dir, self.dagster_home):
            path.mkdir(parents=True, exist_ok=True)

    def dbt_vars(self) -> dict:
        """dbt variables: the configured values, the same for every invocation (dbt re-parses the project when they change).

        A partitioned layer's days go to dbt as environment variables (ballast.resources.dbt_window).
        """
        return {
            "currencies": list(self.currencies),
            "churn_label_window_days": self.label_window_days,
        }
