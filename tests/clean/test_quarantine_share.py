"""A broken delivery does not flow on thin: a day mostly quarantined stops the run's features.

Data at the demo's fault rate (0.5 % broken rows) plus one bad re-send on one day, run
with the default limit: only that day fails the blocking check, which withholds the clean
layer, so features are not built. The data is small (the check's rule does not depend on size): 500 customers over
40 days, about 170 rows a day.
"""

import datetime as dt
from dataclasses import dataclass

import dagster as dg
import pytest

from ballast.clean.assets import CLEAN_TRANSACTIONS, QUARANTINE_SHARE_CHECK
from ballast.cli.generator import GenerateSpec, generate
from ballast.cli.main import DEMO_FAULT_RATE, DEMO_SEED
from ballast.common.metadata import readable_float
from ballast.features.assets import CUSTOMER_DAILY_FEATURES
from ballast.runs import refresh
from ballast.settings import Settings, SettingsError
from tests.conftest import START, make_settings, query

CUSTOMERS, DAYS = 500, 40
BROKEN_DAY = START + dt.timedelta(days=29)
# A provider re-sends the day with amounts in three decimals: every row is amount_precision.
BROKEN_ROWS = 150


@dataclass(frozen=True)
class ThinRun:
    settings: Settings
    result: dg.ExecuteInProcessResult
    end: dt.date


@pytest.fixture(scope="module")
def thin_run(tmp_path_factory: pytest.TempPathFactory) -> ThinRun:
    settings = make_settings(tmp_path_factory.mktemp("thin_home"))
    assert settings.max_quarantine_share == 0.05
    settings.ensure_dirs()
    generate(
        GenerateSpec(
            out=settings.landing_dir,
            customers=CUSTOMERS,
            days=DAYS,
            start=START,
            seed=DEMO_SEED,
            faults=DEMO_FAULT_RATE,
        )
    )
    header = "transaction_id,customer_id,merchant_id,amount,currency,event_timestamp,channel,country"
    rows = [f"R{i:04d},C{i:07d},M00001,{i + 1}.125,USD,{BROKEN_DAY}T12:00:00Z,web,US" for i in range(BROKEN_ROWS)]
    (settings.landing_dir / f"transactions_{BROKEN_DAY}_resend.csv").write_text("\n".join([header, *rows]) + "\n")
    end = START + dt.timedelta(days=DAYS - 1)
    selection = dg.AssetSelection.groups("raw", "clean", "features")
    result = refresh(settings, START, end, selection=selection, log_level="WARNING")
    return ThinRun(settings, result, end)


def _check(run: ThinRun) -> dg.AssetCheckEvaluation:
    [check] = [e for e in run.result.get_asset_check_evaluations() if e.check_name == QUARANTINE_SHARE_CHECK]
    return check


@pytest.mark.full
def test_the_thin_day_fails_the_blocking_check_and_is_named(thin_run: ThinRun) -> None:
    check = _check(thin_run)
    assert check.asset_key == CLEAN_TRANSACTIONS and not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    [(raw, quarantined)] = query(
        thin_run.settings,
        "select (select count(*) from raw.transactions where event_date = $d),"
        " (select count(*) from clean.transactions_quarantine where event_date = $d)",
        {"d": BROKEN_DAY},
    )
    assert quarantined >= BROKEN_ROWS and quarantined / raw > 0.05
    # Only the broken day: every day at the demo's fault rate stays within the default limit.
    assert check.metadata["days_over_limit"].value == 1
    assert check.metadata["days_checked"].value == DAYS
    table = check.metadata["days"].value.splitlines()
    assert [c.strip() for c in table[0].strip("|").split("|")] == [
        "event_date",
        "raw_rows",
        "quarantined_rows",
        "share",
    ]
    assert [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]] == [
        [str(BROKEN_DAY), str(raw), str(quarantined), f"{100 * quarantined / raw:.1f} %"]
    ]
    assert str(BROKEN_DAY) in check.description


@pytest.mark.full
def test_features_are_not_built_from_a_thin_day(thin_run: ThinRun) -> None:
    materialized = {e.materialization.asset_key for e in thin_run.result.get_asset_materialization_events()}
    assert CLEAN_TRANSACTIONS not in materialized and CUSTOMER_DAILY_FEATURES not in materialized
    started = {e.step_key for e in thin_run.result.all_events if e.event_type == dg.DagsterEventType.STEP_START}
    assert "features_dbt_models" not in started
    assert "withheld" in _check(thin_run).metadata
    assert query(
        thin_run.settings, "select count(*) from information_schema.tables where table_schema = 'features'"
    ) == [(0,)]


@pytest.mark.full
def test_the_worst_days_are_listed_worst_first(thin_run: ThinRun) -> None:
    shares = query(
        thin_run.settings,
        """
        select r.event_date, count(q.event_date) / any_value(r.n)
        from (select event_date, count(*) as n from raw.transactions group by 1) as r
        left join clean.transactions_quarantine as q using (event_date)
        group by 1 order by 2 desc, 1
        """,
    )
    assert shares[0][0] == BROKEN_DAY and shares[1][1] <= 0.05
    assert _check(thin_run).metadata["worst_share"].value == readable_float(shares[0][1])


@pytest.mark.parametrize("value", ["0", "-0.1", "1.01", "nan", "five percent"])
def test_a_limit_outside_0_to_1_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="BALLAST_MAX_QUARANTINE_SHARE"):
        Settings.from_env({"BALLAST_MAX_QUARANTINE_SHARE": value})


def test_the_limit_is_read_from_the_environment() -> None:
    assert Settings.from_env({"BALLAST_MAX_QUARANTINE_SHARE": "1"}).max_quarantine_share == 1.0
    assert Settings.from_env({}).max_quarantine_share == 0.05
