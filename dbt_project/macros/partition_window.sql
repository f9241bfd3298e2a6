{#- Incremental models rebuild exactly the days of the partition window being materialized. -#}
{% macro window_start() -%}
    date '{{ var("start_date") }}'
{%- endmacro %}

{% macro window_end() -%}
    date '{{ var("end_date") }}'
{%- endmacro %}

{#- Pre-hook: drop the window's old rows so a re-run replaces them instead of appending. -#}
{% macro delete_window(date_column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ date_column }} between {{ window_start() }} and {{ window_end() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
