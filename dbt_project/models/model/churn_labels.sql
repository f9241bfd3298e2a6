{#-
    A customer active on D churns when their next transaction after D is later than
    D + the label window (or never comes). Only days whose whole label window lies
    inside the data get a label, so a label never guesses about days not yet received.
-#}

{%- set window = var('churn_label_window_days') %}

with features as (

    select customer_id, feature_date
    from {{ ref('customer_daily_features') }}

),

horizon as (

    select max(feature_date) as last_date
    from features

),

customer_days as (

    select distinct customer_id, event_date
    from {{ ref('transactions') }}

),

next_purchase as (

    select f.customer_id, f.feature_date, c.event_date as next_event_date
    from features as f
    asof left join customer_days as c
        on f.customer_id = c.customer_id
        and c.event_date > f.feature_date

)

select
    n.customer_id,
    n.feature_date as snapshot_date,
    n.next_event_date,
    coalesce(n.next_event_date > n.feature_date + {{ window }}, true) as churned
from next_purchase as n
cross join horizon as h
where n.feature_date + {{ window }} <= h.last_date
