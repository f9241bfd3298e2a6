with validated as (

    select * from {{ ref('transactions_validated') }}

)

select
    transaction_id,
    customer_id,
    merchant_id,
    amount,
    currency,
    event_timestamp,
    event_date,
    channel,
    country,
    source_file,
    line_number,
    load_id
from validated
where reject_reason is null
