{#-
    The column is the customer's first transaction day after `date_column`, recomputed from
    the model `transactions` independently of the model's as-of join (null when none came).
-#}
{% test next_purchase_after(model, column_name, date_column, transactions) %}

select l.customer_id, l.{{ date_column }}
from {{ model }} as l
where l.{{ column_name }} is distinct from (
    select min(t.event_date)
    from {{ model_relation(transactions) }} as t
    where t.customer_id = l.customer_id and t.event_date > l.{{ date_column }}
)

{% endtest %}
