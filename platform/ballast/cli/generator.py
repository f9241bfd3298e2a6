"""Synthetic transaction files that follow the landing input contract.

Customers differ in purchase rate, channel mix and spending level; some sign up during
the window and some stop buying. As on real data, churn shows in several behaviours, so
that a model can beat the recency-only rule: leavers buy less often and smaller baskets
for a few weeks first, low spenders leave more often, and some loyal customers take
regular breaks (long recency, no churn). Random draws happen in NumPy, one vector per day;
formatting and file writing happen in DuckDB, so no Python code touches single rows.
The output depends only on the arguments: a seed gives byte-identical files.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

COUNTRIES = np.array(["US", "GB", "DE", "FR", "ES", "NL", "IE", "CA"])
COUNTRY_WEIGHTS = np.array([0.34, 0.16, 0.12, 0.10, 0.08, 0.07, 0.05, 0.08])
COUNTRY_CURRENCY = np.array(["USD", "GBP", "EUR", "EUR", "EUR", "EUR", "EUR", "USD"])
COUNTRY_SPEND = np.array([0.10, 0.0, 0.05, -0.05, -0.15, 0.0, 0.05, -0.05])
CHANNELS = np.array(["web", "store", "mobile"])
CHANNEL_SPEND = np.array([0.10, -0.10, -0.05])
# Offsets (minutes east of UTC) used to write local timestamps; None writes a naive UTC value.
OFFSETS = [0, 60, -300, 120, -480, 330]
MERCHANTS_PER_1000_CUSTOMERS = 60
# Share of customers who take regular breaks, and how much a spending level one standard
# deviation lower raises the log-odds of leaving: churn must not be recency alone.
BREAK_SHARE = 0.35
LEAVE_SPEND_EFFECT = 1.0
# Row-level faults --faults injects, each at an equal share of the rate. A malformed line
# (one field too many) only exists in CSV; Parquet files get the other kinds.
FAULT_KINDS = ("missing_id", "bad_amount", "bad_currency", "bad_timestamp", "duplicate_id", "malformed_line")


@dataclass(frozen=True)
class GenerateSpec:
    out: Path
    customers: int
    days: int
    start: dt.date
    seed: int = 0
    fmt: str = "csv"
    rows_per_day: int | None = None
    drift_from: dt.date | None = None
    faults: float = 0.0
    # A home country whose customers churn much more often (fairness-gate tests).
    segment_bias: str | None = None

    def __post_init__(self) -> None:
        if self.customers < 1:
            raise ValueError(f"customers must be at least 1, got {self.customers}")
        if self.days < 1:
            raise ValueError(f"days must be at least 1, got {self.days}")
        if self.fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be csv or parquet, got {self.fmt!r}")
        if self.rows_per_day is not None and self.rows_per_day < 1:
            raise ValueError(f"rows-per-day must be at least 1, got {self.rows_per_day}")
        if not 0.0 <= self.faults < 1.0:
            raise ValueError(f"faults must be a fraction in [0, 1), got {self.faults}")
        if self.segment_bias is not None and self.segment_bias not in COUNTRIES:
            raise ValueError(f"segment bias must be one of {', '.join(COUNTRIES)}, got {self.segment_bias!r}")


@dataclass(frozen=True)
class GenerateResult:
    files: list[Path]
    rows: int
    faults: dict[str, int]


@dataclass(frozen=True)
class _Population:
    rate: np.ndarray
    signup_day: np.ndarray
    churn_day: np.ndarray
    country: np.ndarray
    channel_p: np.ndarray
    spend_level: np.ndarray
    merchant_base: np.ndarray
    merchant_count: int
    break_every: np.ndarray
    break_days: np.ndarray
    break_phase: np.ndarray


def _population(spec: GenerateSpec) -> _Population:
    rng = np.random.default_rng([spec.seed, 0])
    n = spec.customers
    rate = rng.lognormal(mean=np.log(0.35), sigma=0.8, size=n)
    # 60 % of customers predate the window; the others sign up during it.
    signup_day = np.where(rng.random(n) < 0.6, 0, rng.integers(0, spec.days, size=n))
    leave_draw = rng.random(n)
    leave_after = rng.integers(14, spec.days + 60, size=n)
    country = rng.choice(len(COUNTRIES), size=n, p=COUNTRY_WEIGHTS)
    channel_p = rng.dirichlet([2.0, 1.5, 1.5], size=n)
    spend_z = rng.normal(0.0, 1.0, size=n)
    spend_level = np.log(40.0) + 0.6 * spend_z + COUNTRY_SPEND[country]
    # About 40 % churn at a random point after signup; customers who spend little for their
    # market leave more often than those who spend much. The rest stay beyond the window.
    leave_p = 1.0 / (1.0 + np.exp(0.4 + LEAVE_SPEND_EFFECT * spend_z))
    churn_day = np.where(leave_draw < leave_p, signup_day + leave_after, spec.days + 10_000)
    if spec.segment_bias is not None:
        # A stream of its own, so that every other seed's output keeps its bytes.
        bias = np.random.default_rng([spec.seed, 2])
        biased = (country == list(COUNTRIES).index(spec.segment_bias)) & (churn_day > spec.days + 60)
        churn_now = biased & (bias.random(n) < 0.85)
        churn_day = np.where(churn_now, signup_day + bias.integers(14, max(15, spec.days // 2), size=n), churn_day)
    merchant_count = max(5, n * MERCHANTS_PER_1000_CUSTOMERS // 1000)
    merchant_base = rng.integers(0, merchant_count, size=n)
    # Some loyal customers take regular breaks (holidays, seasonal shopping) and come back:
    # long recency without churn, told apart from leaving by the steady spend and pace before.
    breaks = rng.random(n) < BREAK_SHARE
    break_every = rng.integers(50, 110, size=n)
    break_days = np.where(breaks, rng.integers(15, 40, size=n), 0)
    break_phase = rng.integers(0, 110, size=n)
    pop = _Population(
        rate,
        signup_day,
        churn_day,
        country,
        channel_p,
        spend_level,
        merchant_base,
        merchant_count,
        break_every,
        break_days,
        break_phase,
    )
    if spec.rows_per_day:
        expected = np.mean([(rate * _activity(pop, day)).sum() for day in range(spec.days)])
        pop = replace(pop, rate=rate * (spec.rows_per_day / max(expected, 1e-9)))
    return pop


def _activity(pop: _Population, day: int) -> np.ndarray:
    """Each customer's purchase-rate multiplier on a day: 0 before signup, after churn and on a break.

    Customers slow down over the six weeks before they stop, so frequency features carry
    churn signal that recency does not.
    """
    on_break = (day + pop.break_phase) % pop.break_every < pop.break_days
    return _fading(pop, day, 0.15) * (day >= pop.signup_day) * (day < pop.churn_day) * ~on_break


def _fading(pop: _Population, day: int, floor: float) -> np.ndarray:
    """1 until six weeks before a customer churns, then falling linearly towards `floor`."""
    return np.clip((pop.churn_day - day).astype(np.float64) / 42.0, floor, 1.0)


def _day_table(spec: GenerateSpec, pop: _Population, day: int) -> pa.Table:
    rng = np.random.default_rng([spec.seed, 1, day])
    date = spec.start + dt.timedelta(days=day)
    drifted = spec.drift_from is not None and date >= spec.drift_from
    counts = rng.poisson(pop.rate * _activity(pop, day))
    customer = np.repeat(np.arange(spec.customers), counts)
    n = customer.size
    channel_p = pop.channel_p[customer]
    if drifted:
        channel_p = channel_p * np.array([0.6, 0.6, 2.2])
        channel_p = channel_p / channel_p.sum(axis=1, keepdims=True)
    channel = (rng.random(n)[:, None] > np.cumsum(channel_p, axis=1)[:, :-1]).sum(axis=1)
    merchant = (pop.merchant_base[customer] + rng.geometric(0.3, size=n) - 1) % pop.merchant_count
    merchant_spend = ((merchant * 7919) % 101) / 100.0 - 0.5
    # Baskets shrink on the way out, as purchases thin.
    fading = np.log(_fading(pop, day, 0.4)[customer])
    log_amount = pop.spend_level[customer] + CHANNEL_SPEND[channel] + 0.4 * merchant_spend + fading
    amount = np.round(np.exp(log_amount + rng.normal(0.0, 0.5, size=n)), 2)
    if drifted:
        amount = np.round(amount * 1.6, 2)
    amount = np.clip(amount, 0.01, 100_000.0)
    # A few customers shop abroad; the home country dominates.
    abroad = rng.random(n) < 0.03
    country = np.where(abroad, rng.integers(0, len(COUNTRIES), size=n), pop.country[customer])
    offset_idx = rng.integers(-1, len(OFFSETS), size=n)
    return pa.table(
        {
            "seq": np.arange(n, dtype=np.int64),
            "customer": customer.astype(np.int64),
            "merchant": merchant.astype(np.int64),
            "amount": amount,
            "currency": COUNTRY_CURRENCY[pop.country[customer]],
            "second": np.sort(rng.integers(0, 86_400, size=n)),
            "offset_idx": offset_idx,
            "channel": CHANNELS[channel],
            "country": COUNTRIES[country],
            "fault": _fault_draw(rng, n, spec.faults, len(FAULT_KINDS) - (spec.fmt == "parquet")),
        }
    )


def _fault_draw(rng: np.random.Generator, n: int, rate: float, kinds: int) -> np.ndarray:
    """Index into FAULT_KINDS for the rows made invalid, -1 for valid rows."""
    if rate <= 0:
        return np.full(n, -1, dtype=np.int64)
    hit = rng.random(n) < rate
    return np.where(hit, rng.integers(0, kinds, size=n), -1).astype(np.int64)


_OFFSETS_SQL = ", ".join(str(o) for o in OFFSETS)

# The local wall-clock time for an offset is the UTC instant shifted by it; offset index
# -1 writes the UTC instant without an offset (naive values are taken as UTC).
_FORMAT_SQL = f"""
with base as (
    select
        *,
        timestamp '{{date}}' + to_seconds(second) as ts_utc,
        case when offset_idx < 0 then null else [{_OFFSETS_SQL}][offset_idx + 1] end as offset_min
    from day_rows
),
formatted as (
    select
        seq,
        fault,
        printf('T{{compact}}-%08d', seq) as transaction_id,
        printf('C%07d', customer) as customer_id,
        printf('M%05d', merchant) as merchant_id,
        printf('%.2f', amount) as amount,
        currency,
        case
            when offset_min is null then strftime(ts_utc, '%Y-%m-%d %H:%M:%S')
            else strftime(ts_utc + to_minutes(offset_min), '%Y-%m-%dT%H:%M:%S')
                || case when offset_min >= 0 then '+' else '-' end
                || printf('%02d:%02d', abs(offset_min) // 60, abs(offset_min) % 60)
        end as event_timestamp,
        channel,
        country
    from base
)
select
    0 as copy,
    seq,
    fault,
    case when fault = 0 then null else transaction_id end as transaction_id,
    customer_id,
    merchant_id,
    case when fault = 1 then (case when seq % 2 = 0 then '-' || amount else '250000.00' end) else amount end as amount,
    case when fault = 2 then 'XYZ' else currency end as currency,
    case when fault = 3 then 'not-a-time' else event_timestamp end as event_timestamp,
    channel,
    country
from formatted
union all
-- A duplicate fault re-sends a transaction later in the same file with the same id and payload.
select 1, seq, -1, transaction_id, customer_id, merchant_id, amount, currency, event_timestamp, channel, country
from formatted
where fault = 4
"""

_COLUMNS = "transaction_id, customer_id, merchant_id, amount, currency, event_timestamp, channel, country"

# CSV is written line by line so that a malformed-line fault can add a field; no
# generated value contains a comma, a quote or a newline, so no quoting is needed.
_CSV_SQL = f"""
select line from (
    select -1 as copy, 0 as seq, '{_COLUMNS.replace(", ", ",")}' as line
    union all
    select
        copy,
        seq,
        concat_ws(',', coalesce(transaction_id, ''), customer_id, merchant_id, amount, currency,
                  event_timestamp, channel, country)
        || case when fault = 5 then ',UNEXPECTED' else '' end
    from ({{rows}})
)
order by copy, seq
"""


def iter_days(spec: GenerateSpec) -> Iterator[dt.date]:
    for day in range(spec.days):
        yield spec.start + dt.timedelta(days=day)


def generate(spec: GenerateSpec, progress: Callable[[int], None] | None = None) -> GenerateResult:
    """Write one file per event date into `spec.out` and a manifest of what was written."""
    spec.out.mkdir(parents=True, exist_ok=True)
    pop = _population(spec)
    con = duckdb.connect()
    files: list[Path] = []
    total = 0
    faults = dict.fromkeys(FAULT_KINDS, 0)
    for day, date in enumerate(iter_days(spec)):
        day_rows = _day_table(spec, pop, day)
        injected = np.bincount(day_rows.column("fault").to_numpy() + 1, minlength=len(FAULT_KINDS) + 1)[1:]
        for kind, count in zip(FAULT_KINDS, injected, strict=True):
            faults[kind] += int(count)
        con.register("day_rows", day_rows)
        sql = _FORMAT_SQL.format(date=date.isoformat(), compact=date.strftime("%Y%m%d"))
        path = spec.out / f"transactions_{date.isoformat()}.{spec.fmt}"
        if spec.fmt == "csv":
            query = _CSV_SQL.format(rows=sql)
            options = "(format csv, header false, quote '', escape '', delimiter E'\\x1f')"
        else:
            query = f"select {_COLUMNS} from ({sql}) order by copy, seq"
            options = "(format parquet)"
        con.execute(f"copy ({query}) to '{path}' {options}")
        con.unregister("day_rows")
        files.append(path)
        # Each duplicate fault adds one row: the re-sent copy.
        total += day_rows.num_rows + int(injected[FAULT_KINDS.index("duplicate_id")])
        if progress:
            progress(day_rows.num_rows)
    con.close()
    manifest = {
        "spec": {k: (str(v) if isinstance(v, Path | dt.date) else v) for k, v in asdict(spec).items()},
        "rows": total,
        "files": [f.name for f in files],
        "faults": faults,
    }
    (spec.out / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return GenerateResult(files=files, rows=total, faults=faults)
