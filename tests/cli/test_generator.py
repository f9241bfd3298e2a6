"""The synthetic generator: determinism, the input contract, faults and drift."""

import datetime as dt
import json
import re
from pathlib import Path

import duckdb
import pytest

from ballast.cli.generator import FAULT_KINDS, GenerateSpec, generate
from ballast.raw.landing import CONTRACT_COLUMNS

START = dt.date(2025, 3, 1)


def _spec(out: Path, **kw) -> GenerateSpec:
    return GenerateSpec(**{"out": out, "customers": 300, "days": 10, "start": START, "seed": 3} | kw)


def _read(paths: list[Path]):
    """The well-formed rows of the files; malformed lines are left out (see _malformed)."""
    files = ", ".join(f"'{p}'" for p in paths)
    return duckdb.sql(
        f"select * from read_csv([{files}], all_varchar = true, filename = true, ignore_errors = true)"
    ).df()


def _malformed(paths: list[Path]) -> int:
    return sum(1 for p in paths for line in p.read_text().splitlines() if line.count(",") != 7)


def test_same_seed_same_bytes_other_seed_other_data(tmp_path: Path) -> None:
    a = generate(_spec(tmp_path / "a"))
    b = generate(_spec(tmp_path / "b"))
    c = generate(_spec(tmp_path / "c", seed=4))
    assert [p.read_bytes() for p in a.files] == [p.read_bytes() for p in b.files]
    assert [p.read_bytes() for p in a.files] != [p.read_bytes() for p in c.files]


def test_the_start_date_moves_only_the_dates(tmp_path: Path) -> None:
    """`ballast demo` starts wherever yesterday puts it: a seed must give the same data on any start date."""
    a = generate(_spec(tmp_path / "a", faults=0.05))
    # Another year, month and weekday.
    b = generate(_spec(tmp_path / "b", faults=0.05, start=START + dt.timedelta(days=400)))

    def undated(path: Path) -> str:
        return re.sub(r"\d{4}-\d{2}-\d{2}|T\d{8}-", "<date>", path.read_text())

    assert a.rows == b.rows and a.faults == b.faults
    assert [undated(p) for p in a.files] == [undated(p) for p in b.files]
    assert [p.read_text() for p in a.files] != [p.read_text() for p in b.files]


def test_files_follow_the_input_contract(tmp_path: Path) -> None:
    result = generate(_spec(tmp_path))
    assert [p.name for p in result.files] == [f"transactions_{START + dt.timedelta(days=i)}.csv" for i in range(10)]
    rows = _read(result.files)
    assert tuple(rows.columns[:-1]) == CONTRACT_COLUMNS
    assert len(rows) == result.rows > 0
    checked = duckdb.execute(
        """
        select
            count(*) filter (where transaction_id is null) as null_ids,
            count(distinct transaction_id) = count(*) as unique_ids,
            min(cast(amount as decimal(18, 2))) >= 0.01 and max(cast(amount as decimal(18, 2))) <= 100000 as amounts_ok,
            bool_and(currency in ('USD', 'EUR', 'GBP')) as currencies_ok,
            bool_and(channel in ('web', 'store', 'mobile')) as channels_ok,
            bool_and(regexp_full_match(country, '[A-Z]{2}')) as countries_ok,
            -- the UTC date of every timestamp is the date in the file name
            bool_and(
                strftime(
                    case when regexp_matches(event_timestamp, '[+-]\\d{2}:\\d{2}$')
                         then timezone('UTC', cast(event_timestamp as timestamptz))
                         else cast(event_timestamp as timestamp) end,
                    '%Y-%m-%d'
                ) = regexp_extract(filename, '(\\d{4}-\\d{2}-\\d{2})', 1)
            ) as dates_ok,
            count(distinct regexp_extract(event_timestamp, '([+-]\\d{2}:\\d{2})$', 1)) as offsets
        from rows
        """
    ).fetchall()[0]
    null_ids, unique_ids, amounts_ok, currencies_ok, channels_ok, countries_ok, dates_ok, offsets = checked
    assert (null_ids, unique_ids, amounts_ok, currencies_ok, channels_ok, countries_ok, dates_ok) == (
        0,
        True,
        True,
        True,
        True,
        True,
        True,
    )
    assert offsets >= 3, "offsets and naive timestamps are mixed"


def test_faults_match_the_manifest(tmp_path: Path) -> None:
    result = generate(_spec(tmp_path, faults=0.05, customers=800))
    manifest = json.loads((tmp_path / "_manifest.json").read_text())
    assert manifest["faults"] == result.faults
    assert set(result.faults) == set(FAULT_KINDS) and all(n > 0 for n in result.faults.values())
    rows = _read(result.files)
    assert rows["transaction_id"].isna().sum() == result.faults["missing_id"]
    assert (rows["currency"] == "XYZ").sum() == result.faults["bad_currency"]
    assert (rows["event_timestamp"] == "not-a-time").sum() == result.faults["bad_timestamp"]
    ids = rows["transaction_id"].dropna()
    assert ids.duplicated().sum() == result.faults["duplicate_id"]
    amounts = rows["amount"].astype(float)
    assert ((amounts < 0.01) | (amounts > 100_000)).sum() == result.faults["bad_amount"]
    assert _malformed(result.files) == result.faults["malformed_line"]
    assert len(rows) + result.faults["malformed_line"] == manifest["rows"]


def test_drift_shifts_amounts_and_channels_from_its_date(tmp_path: Path) -> None:
    drift_from = START + dt.timedelta(days=5)
    base = _read(generate(_spec(tmp_path / "base")).files)
    drifted = _read(generate(_spec(tmp_path / "drift", drift_from=drift_from)).files)
    after = base["filename"].str.contains("2025-03-0[6-9]|2025-03-10")
    after_d = drifted["filename"].str.contains("2025-03-0[6-9]|2025-03-10")
    # Before the drift date the files are identical; after it amounts and mobile share rise.
    assert base[~after].drop(columns="filename").equals(drifted[~after_d].drop(columns="filename"))
    assert drifted[after_d]["amount"].astype(float).mean() > 1.4 * base[after]["amount"].astype(float).mean()
    assert (drifted[after_d]["channel"] == "mobile").mean() > (base[after]["channel"] == "mobile").mean() + 0.1


def test_parquet_format(tmp_path: Path) -> None:
    result = generate(_spec(tmp_path, fmt="parquet", days=2))
    assert all(p.suffix == ".parquet" for p in result.files)
    count = duckdb.execute(f"select count(*) from read_parquet('{tmp_path}/*.parquet')").fetchall()[0][0]
    assert count == result.rows


@pytest.mark.parametrize(
    ("override", "message"),
    [({"customers": 0}, "customers"), ({"days": 0}, "days"), ({"fmt": "xlsx"}, "format"), ({"faults": 1.5}, "faults")],
)
def test_bad_spec_names_the_problem(tmp_path: Path, override: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(tmp_path, **override)


def test_segment_bias_makes_one_country_churn_and_leaves_other_data_alone(tmp_path) -> None:
    import duckdb

    from ballast.cli.generator import GenerateSpec, generate

    def last_month_activity(out, bias):
        spec = GenerateSpec(out=out, customers=3000, days=90, start=dt.date(2025, 1, 1), seed=3, segment_bias=bias)
        generate(spec)
        return duckdb.sql(
            f"""
            with home as (
                select customer_id, mode(country) as home from read_csv('{out}/*.csv', all_varchar=true) group by 1
            ), late as (
                select distinct customer_id from read_csv('{out}/*.csv', all_varchar=true)
                where event_timestamp >= '2025-03-15'
            )
            select home, avg((l.customer_id is not null)::int) from home h left join late l using (customer_id)
            group by 1
            """
        ).fetchall()

    plain = dict(last_month_activity(tmp_path / "plain", None))
    biased = dict(last_month_activity(tmp_path / "biased", "GB"))
    assert biased["GB"] < plain["GB"] - 0.3
    assert abs(biased["US"] - plain["US"]) < 0.02
