{{ config(meta={'dagster': {'ref': {'name': 'transactions_quarantine'}}}) }}

{#- Every raw row of the window is either clean or quarantined, exactly once. -#}

with raw_rows as (

    select event_date, count(*) as raw_rows
    from {{ source('raw', 'transactions') }}
    where event_date between {{ window_start() }} and {{ window_end() }}
    group by event_date

),

clean_rows as (

    select event_date, count(*) as clean_rows
    from {{ ref('transactions') }}
    where event_date between {{ window_start() }} and {{ window_end() }}
    group by event_date

),

quarantined_rows as (

    select event_date, count(*) as quarantined_rows
    from {{ ref('transactions_quarantine') }}
    where event_date between {{ window_start() }} and {{ window_end() }}
    group by event_date

)

select
    coalesce(r.event_date, c.event_date, q.event_date) as event_date,
    coalesce(r.raw_rows, 0) as raw_rows,
    coalesce(c.clean_rows, 0) as clean_rows,
    coalesce(q.quarantined_rows, 0) as quarantined_rows
from raw_rows as r
full outer join clean_rows as c on r.event_date = c.event_date
full outer join quarantined_rows as q on coalesce(r.event_date, c.event_date) = q.event_date
where coalesce(r.raw_rows, 0) <> coalesce(c.clean_rows, 0) + coalesce(q.quarantined_rows, 0)
