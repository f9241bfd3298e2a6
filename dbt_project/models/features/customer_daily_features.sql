{#-
    Features of a day D use transactions on days <= D only, so a row for D is what was
    knowable at the end of D. Customers are included on every day within the long window
    of a transaction, whether or not they bought that day: windows and recency change daily.
    The windows (short, medium, long days) are the var feature_windows in dbt_project.yml.
-#}
{%- set window_days = var('feature_windows') %}

with days as (

    -- generate_series includes its end and is aliased: the same in DuckDB and in the
    -- Spark SQL that sqlglot generates from this model for the Spark engine.
    select cast(day as date) as feature_date
    from unnest(generate_series(
        cast({{ window_start() }} as timestamp),
        cast({{ window_end() }} as timestamp),
        interval 1 day
    )) as days_series(day)

),

transactions as (

    select transaction_id, customer_id, merchant_id, amount, channel, country, event_date
    from {{ ref('transactions') }}
    where event_date > {{ window_start() }} - interval {{ window_days.long }} day
      and event_date <= {{ window_end() }}

),

customer_days as (

    select
        customer_id,
        event_date,
        -- Counted by id (never null in clean), not count(*): the counts' column lineage then
        -- names the column they count.
        count(transaction_id) as txn_count,
        sum(amount) as spend,
        count(transaction_id) filter (where channel = 'web') as web_count
    from transactions
    group by customer_id, event_date

),

windows as (

    select
        d.feature_date,
        c.customer_id,
        sum(c.txn_count) filter (where c.event_date > d.feature_date - {{ window_days.short }}) as txn_count_7d,
        sum(c.txn_count) filter (where c.event_date > d.feature_date - {{ window_days.medium }}) as txn_count_30d,
        sum(c.txn_count) as txn_count_90d,
        sum(c.spend) filter (where c.event_date > d.feature_date - {{ window_days.short }}) as spend_7d,
        sum(c.spend) filter (where c.event_date > d.feature_date - {{ window_days.medium }}) as spend_30d,
        sum(c.spend) as spend_90d,
        sum(c.web_count) filter (where c.event_date > d.feature_date - {{ window_days.medium }}) as web_count_30d,
        max(c.event_date) as last_event_date
    from days as d
    inner join customer_days as c
        on c.event_date > d.feature_date - {{ window_days.long }}
        and c.event_date <= d.feature_date
    group by d.feature_date, c.customer_id

),

customer_day_merchants as (

    select distinct customer_id, event_date, merchant_id
    from transactions

),

customer_day_countries as (

    select customer_id, event_date, country, count(*) as n
    from transactions
    where country is not null
    group by customer_id, event_date, country

),

merchants as (

    -- Joined per customer-day, not per transaction: the join grows with days x customer
    -- days, whatever the number of transactions per customer and day.
    select d.feature_date, m.customer_id, count(distinct m.merchant_id) as distinct_merchants_30d
    from days as d
    inner join customer_day_merchants as m
        on m.event_date > d.feature_date - {{ window_days.medium }}
        and m.event_date <= d.feature_date
    group by d.feature_date, m.customer_id

),

country_counts as (

    select d.feature_date, c.customer_id, c.country, sum(c.n) as n
    from days as d
    inner join customer_day_countries as c
        on c.event_date > d.feature_date - {{ window_days.long }}
        and c.event_date <= d.feature_date
    group by d.feature_date, c.customer_id, c.country

),

home_country as (

    -- The most frequent country over the long window; ties go to the first alphabetically.
    select feature_date, customer_id, country as home_country
    from country_counts
    qualify row_number() over (
        partition by feature_date, customer_id order by n desc, country
    ) = 1

),

first_seen as (

    select customer_id, min(event_date) as first_event_date
    from {{ ref('transactions') }}
    where event_date <= {{ window_end() }}
    group by customer_id

)

select
    w.customer_id,
    w.feature_date,
    cast(w.feature_date + interval 1 day as timestamp) as feature_timestamp,
    cast(coalesce(w.txn_count_7d, 0) as integer) as txn_count_7d,
    cast(coalesce(w.txn_count_30d, 0) as integer) as txn_count_30d,
    cast(w.txn_count_90d as integer) as txn_count_90d,
    cast(coalesce(w.spend_7d, 0) as double) as spend_7d,
    cast(coalesce(w.spend_30d, 0) as double) as spend_30d,
    cast(w.spend_90d as double) as spend_90d,
    case
        when coalesce(w.txn_count_30d, 0) = 0 then 0.0
        else cast(w.spend_30d as double) / w.txn_count_30d
    end as avg_amount_30d,
    cast(w.feature_date - w.last_event_date as integer) as days_since_last_txn,
    cast(w.feature_date - f.first_event_date as integer) as tenure_days,
    cast(coalesce(m.distinct_merchants_30d, 0) as integer) as distinct_merchants_30d,
    case
        when coalesce(w.txn_count_30d, 0) = 0 then 0.0
        else cast(w.web_count_30d as double) / w.txn_count_30d
    end as web_share_30d,
    h.home_country
from windows as w
inner join first_seen as f on w.customer_id = f.customer_id
left join merchants as m on w.feature_date = m.feature_date and w.customer_id = m.customer_id
left join home_country as h on w.feature_date = h.feature_date and w.customer_id = h.customer_id
