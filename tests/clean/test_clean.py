"""The clean layer on generated data with faults, after a full materialization."""

import dagster as dg

from tests.conftest import Platform

# Each fault the generator injects: what the broken row holds (a condition on its values as
# received, kept in the quarantine) and the reason the README's input contract gives such a row.
INJECTED = {
    "missing_id": ("transaction_id is null or trim(transaction_id) = ''", "missing_id"),
    "bad_amount": ("amount like '-%' or amount = '250000.00'", "bad_amount"),
    "bad_currency": ("currency = 'XYZ'", "bad_currency"),
    "bad_timestamp": ("event_timestamp = 'not-a-time'", "bad_timestamp"),
    # A re-send with the same id and payload: the first delivery is the clean one.
    "duplicate_id": (
        "transaction_id in (select transaction_id from clean.transactions)",
        "duplicate_id",
    ),
    "malformed_line": ("raw_line like '%,UNEXPECTED'", "malformed_line"),
}


def test_every_raw_row_is_clean_or_quarantined_per_partition(platform: Platform) -> None:
    rows = platform.query(
        """
        with r as (select event_date, count(*) as n from raw.transactions group by 1),
             c as (select event_date, count(*) as n from clean.transactions group by 1),
             q as (select event_date, count(*) as n from clean.transactions_quarantine group by 1)
        select r.event_date, r.n, coalesce(c.n, 0), coalesce(q.n, 0)
        from r left join c using (event_date) left join q using (event_date)
        order by 1
        """
    )
    assert len(rows) == (platform.end - platform.start).days + 1
    assert all(raw == clean + quarantined for _, raw, clean, quarantined in rows)
    assert sum(r[1] for r in rows) == platform.manifest["rows"]


def test_quarantine_reasons_match_the_injected_faults(platform: Platform) -> None:
    found = dict(platform.query("select reject_reason, count(*) from clean.transactions_quarantine group by 1"))
    expected = {INJECTED[k][1]: n for k, n in platform.manifest["faults"].items() if n}
    assert found == expected and len(expected) == len(INJECTED)
    # Every row quarantined with a reason holds the defect that reason names.
    for fault, (defect, reason) in INJECTED.items():
        [(rows, with_defect)] = platform.query(
            f"select count(*), count(*) filter (where {defect})"
            " from clean.transactions_quarantine where reject_reason = ?",
            [reason],
        )
        assert rows == with_defect == platform.manifest["faults"][fault], (fault, rows, with_defect)


def test_clean_holds_every_row_but_the_faulty_ones(platform: Platform) -> None:
    faults = platform.manifest["faults"]
    [(clean,)] = platform.query("select count(*) from clean.transactions")
    # Each fault makes one row invalid, except a duplicate, which adds its invalid copy.
    assert clean == platform.manifest["rows"] - sum(faults.values())
    assert platform.query(
        "select count(*) from clean.transactions where currency = 'XYZ' or amount < 0.01 or amount > 100000"
    ) == [(0,)]


def test_clean_rows_are_typed_valid_and_unique(platform: Platform) -> None:
    [(rows, ids, bad)] = platform.query(
        """
        select count(*), count(distinct transaction_id),
               count(*) filter (where amount < 0.01 or amount > 100000
                                or currency not in ('USD', 'EUR', 'GBP')
                                or cast(event_timestamp as date) <> event_date)
        from clean.transactions
        """
    )
    assert rows == ids and bad == 0
    types = dict(
        platform.query(
            "select column_name, data_type from information_schema.columns"
            " where table_schema = 'clean' and table_name = 'transactions'"
        )
    )
    assert types["amount"] == "DECIMAL(18,2)" and types["event_timestamp"] == "TIMESTAMP"


def test_quarantined_rows_keep_their_raw_values_and_origin(platform: Platform) -> None:
    [(joined, total)] = platform.query(
        """
        select count(r.source_file), count(*)
        from clean.transactions_quarantine as q
        left join raw.transactions as r
          on r.source_file = q.source_file and r.line_number = q.line_number
         and r.amount is not distinct from q.amount and r.currency is not distinct from q.currency
        """
    )
    assert joined == total > 0


def test_dbt_builds_each_layer_once_for_the_whole_window(platform: Platform) -> None:
    steps = [e.step_key for e in platform.result.all_events if e.event_type == dg.DagsterEventType.STEP_START]
    assert steps.count("clean_dbt_models") == 1 and steps.count("features_dbt_models") == 1
    materialized = {
        (m.asset_key.to_user_string(), m.partition)
        for m in platform.result.get_asset_materialization_events()
        for m in [m.materialization]
    }
    days = (platform.end - platform.start).days + 1
    assert sum(1 for key, _ in materialized if key == "clean/transactions") == days


def test_accounting_and_contract_checks_passed(platform: Platform) -> None:
    evaluations = platform.result.get_asset_check_evaluations()
    by_name = {e.check_name: e.passed for e in evaluations}
    assert by_name["assert_rows_accounted_for"] is True
    assert by_name["transaction_id_duplicate"] is True
    assert all(by_name.values()), [k for k, v in by_name.items() if not v]
