{{ config(materialized='ephemeral') }}

{#-
    Types every raw row received up to the end of the window and gives each one either
    no reason (it is clean) or the first rule it breaks. Duplicates are ranked over the
    whole history so that a transaction id is clean once, in the earliest delivery.
-#}

with source as (

    select * from {{ source('raw', 'transactions') }}
    where event_date <= {{ window_end() }}

),

parsed as (

    select
        *,
        trim(amount) as amount_text,
        trim(event_timestamp) as timestamp_text,
        {{ timestamp_parts('timestamp_text') }} as timestamp_parts
    from source

),

typed as (

    select
        nullif(trim(transaction_id), '') as transaction_id,
        nullif(trim(customer_id), '') as customer_id,
        nullif(trim(merchant_id), '') as merchant_id,
        {{ amount_problem('amount_text') }} as amount_problem,
        -- Cast only what is exact in two decimals, so that the cast never rounds.
        case when amount_problem is null then try_cast(amount_text as decimal(18, 2)) end as amount,
        nullif(upper(trim(currency)), '') as currency,
        {{ timestamp_problem('timestamp_text', 'timestamp_parts') }} as timestamp_problem,
        case when timestamp_problem is null then {{ utc_timestamp('timestamp_parts') }} end as event_timestamp,
        nullif(lower(trim(channel)), '') as channel,
        nullif(upper(trim(country)), '') as country,
        event_date,
        source_file,
        file_hash,
        line_number,
        load_id,
        raw_line,
        transaction_id as raw_transaction_id,
        customer_id as raw_customer_id,
        merchant_id as raw_merchant_id,
        amount as raw_amount,
        currency as raw_currency,
        event_timestamp as raw_event_timestamp,
        channel as raw_channel,
        country as raw_country
    from parsed

),

checked as (

    select
        *,
        case
            when raw_line is not null then 'malformed_line'
            when transaction_id is null or customer_id is null or merchant_id is null then 'missing_id'
            when timestamp_problem is not null then timestamp_problem
            when event_timestamp is null then 'bad_timestamp'
            when year(event_timestamp) < {{ var('min_year') }} or year(event_timestamp) > {{ var('max_year') }}
                then 'bad_timestamp'
            when cast(event_timestamp as date) > current_date then 'future_timestamp'
            when cast(event_timestamp as date) <> event_date then 'out_of_partition'
            when amount_problem is not null then amount_problem
            when amount is null
                or amount < {{ var('min_amount') }}
                or amount > {{ var('max_amount') }} then 'bad_amount'
            when currency is null
                or currency not in ({{ "'" ~ var('currencies') | join("', '") ~ "'" }}) then 'bad_currency'
            when channel is not null and channel not in ('web', 'store', 'mobile') then 'bad_channel'
            when country is not null and not regexp_full_match(country, '[A-Z]{2}') then 'bad_country'
        end as row_reason
    from typed

),

ranked as (

    select
        *,
        row_number() over (
            partition by transaction_id, row_reason is null
            order by event_date, source_file, line_number
        ) as id_rank,
        first_value(
            {{ payload_hash(['customer_id', 'merchant_id', 'amount', 'currency', 'event_timestamp', 'channel', 'country']) }}
        ) over (
            partition by transaction_id, row_reason is null
            order by event_date, source_file, line_number
        ) as first_payload,
        {{ payload_hash(['customer_id', 'merchant_id', 'amount', 'currency', 'event_timestamp', 'channel', 'country']) }} as payload
    from checked

)

select
    *,
    case
        when row_reason is not null then row_reason
        when id_rank > 1 and payload = first_payload then 'duplicate_id'
        when id_rank > 1 then 'conflicting_duplicate'
    end as reject_reason
from ranked
where event_date between {{ window_start() }} and {{ window_end() }}
