with validated as (

    select * from {{ ref('transactions_validated') }}

)

select
    reject_reason,
    event_date,
    source_file,
    file_hash,
    line_number,
    load_id,
    raw_transaction_id as transaction_id,
    raw_customer_id as customer_id,
    raw_merchant_id as merchant_id,
    raw_amount as amount,
    raw_currency as currency,
    raw_event_timestamp as event_timestamp,
    raw_channel as channel,
    raw_country as country,
    raw_line
from validated
where reject_reason is not null
