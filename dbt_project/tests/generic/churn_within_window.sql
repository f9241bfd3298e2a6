{#-
    The label is true exactly when the customer has no transaction in the `window_days`
    days after `date_column`, recomputed from the model `transactions` with an existence test
    rather than the model's next-purchase date.
-#}
{% test churn_within_window(model, column_name, date_column, transactions, window_days) %}

select l.customer_id, l.{{ date_column }}
from {{ model }} as l
where l.{{ column_name }} = exists (
    select 1
    from {{ model_relation(transactions) }} as t
    where t.customer_id = l.customer_id
        and t.event_date > l.{{ date_column }}
        and t.event_date <= l.{{ date_column }} + {{ window_days }}
)

{% endtest %}
