"""Customer daily features: a hand-computed row, daily coverage, no leakage, idempotent re-runs."""

import datetime as dt

import dagster as dg
import duckdb
import pandas as pd
import pytest

from ballast.cli.generator import GenerateSpec, generate
from ballast.runs import refresh
from tests.conftest import START, Platform, make_settings

SNAPSHOT_TABLES = {
    "raw.transactions": "source_file, line_number",
    "clean.transactions": "transaction_id",
    "clean.transactions_quarantine": "source_file, line_number",
    "features.customer_daily_features": "customer_id, feature_date",
}


def _hand_features(txns: pd.DataFrame, customer: str, day: dt.date) -> dict:
    t = txns[(txns.customer_id == customer) & (txns.event_date <= day)]
    age = t.event_date.map(lambda d: (day - d).days)
    w7, w30, w90 = t[age < 7], t[age < 30], t[age < 90]
    countries = w90.country.value_counts()
    top = countries[countries == countries.max()].index.min()
    return {
        "txn_count_7d": len(w7),
        "txn_count_30d": len(w30),
        "txn_count_90d": len(w90),
        "spend_7d": float(w7.amount.sum()),
        "spend_30d": float(w30.amount.sum()),
        "spend_90d": float(w90.amount.sum()),
        "avg_amount_30d": float(w30.amount.mean()) if len(w30) else 0.0,
        "days_since_last_txn": (day - w90.event_date.max()).days,
        "tenure_days": (day - t.event_date.min()).days,
        "distinct_merchants_30d": w30.merchant_id.nunique(),
        "web_share_30d": float((w30.channel == "web").mean()) if len(w30) else 0.0,
        "home_country": top,
    }


def test_hand_computed_row_equals_the_feature_table(platform: Platform) -> None:
    day = platform.start + dt.timedelta(days=100)
    txns = platform.df(
        "select customer_id, merchant_id, amount::double as amount, channel, country, event_date from clean.transactions"
    )
    txns["event_date"] = txns.event_date.dt.date
    # A customer with activity in several windows, so every feature is exercised.
    customer = platform.query(
        "select customer_id from features.customer_daily_features where feature_date = ?"
        " and txn_count_7d > 0 and txn_count_90d > txn_count_30d order by customer_id limit 1",
        [day],
    )[0][0]
    row = (
        platform.df(
            "select * exclude (customer_id, feature_date, feature_timestamp) from features.customer_daily_features"
            " where customer_id = ? and feature_date = ?",
            [customer, day],
        )
        .iloc[0]
        .to_dict()
    )
    expected = _hand_features(txns, customer, day)
    assert row.keys() == expected.keys()
    assert row.pop("home_country") == expected.pop("home_country")
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


def test_every_customer_active_in_90_days_has_a_row_every_day(platform: Platform) -> None:
    [(expected, found)] = platform.query(
        """
        with days as (
            select cast(range as date) as d
            from range(cast(? as timestamp), cast(? as timestamp) + interval 1 day, interval 1 day)
        ),
        expected as (
            select distinct days.d, t.customer_id
            from days join clean.transactions t on t.event_date > days.d - 90 and t.event_date <= days.d
        )
        select (select count(*) from expected),
               (select count(*) from expected e join features.customer_daily_features f
                  on f.customer_id = e.customer_id and f.feature_date = e.d)
        """,
        [platform.start, platform.end],
    )
    [(rows,)] = platform.query("select count(*) from features.customer_daily_features")
    assert expected == found == rows


@pytest.fixture(scope="module")
def small_home(tmp_path_factory: pytest.TempPathFactory):
    # 3 % faults on 30 to 70 rows a day exceed the default 5 % quarantine limit on some days (up to 11 %).
    settings = make_settings(tmp_path_factory.mktemp("small_home"), max_quarantine_share=0.25)
    settings.ensure_dirs()
    generate(GenerateSpec(out=settings.landing_dir, customers=150, days=40, start=START, seed=5, faults=0.03))
    end = START + dt.timedelta(days=39)
    selection = dg.AssetSelection.groups("raw", "clean", "features")
    assert refresh(settings, START, end, selection=selection, log_level="WARNING").success
    return settings, end, selection


def _snapshot(settings) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return {
            table: con.execute(f"select * from {table} order by {order}").df()
            for table, order in SNAPSHOT_TABLES.items()
        }
    finally:
        con.close()


@pytest.mark.full
def test_rerunning_partitions_leaves_identical_tables(small_home) -> None:
    settings, end, selection = small_home
    before = _snapshot(settings)
    assert refresh(settings, START + dt.timedelta(days=10), end, selection=selection, log_level="WARNING").success
    after = _snapshot(settings)
    for table in SNAPSHOT_TABLES:
        pd.testing.assert_frame_equal(before[table], after[table], check_exact=True, obj=table)


@pytest.mark.full
def test_later_data_never_reaches_earlier_features(small_home) -> None:
    settings, _end, selection = small_home
    day = START + dt.timedelta(days=30)
    later = START + dt.timedelta(days=31)
    before = _snapshot(settings)["features.customer_daily_features"]
    # A corrected delivery for a later day with much larger amounts for every row.
    path = settings.landing_dir / f"transactions_{later}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["amount"] = frame["amount"].map(lambda a: "999.99" if a not in ("", "XYZ") else a)
    frame.to_csv(path, index=False)
    assert refresh(settings, day, later, selection=selection, log_level="WARNING").success
    after = _snapshot(settings)["features.customer_daily_features"]
    on = lambda f, d: f[f.feature_date.dt.date == d].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(on(before, day), on(after, day), check_exact=True)
    assert not on(before, later).equals(on(after, later))
