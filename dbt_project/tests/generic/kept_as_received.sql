{#-
    The column holds exactly what the landing file delivered: each row of the model is a
    raw row (same source file and line) of the partition window, and this column equals
    raw's, null-safely. Used on the quarantine, which keeps rejected values as received.
-#}
{% test kept_as_received(model, column_name) %}

select q.source_file, q.line_number
from {{ model }} as q
left join {{ source('raw', 'transactions') }} as r
    on q.source_file = r.source_file and q.line_number = r.line_number
where q.event_date between {{ window_start() }} and {{ window_end() }}
    and (r.source_file is null or q.{{ column_name }} is distinct from r.{{ column_name }})

{% endtest %}
