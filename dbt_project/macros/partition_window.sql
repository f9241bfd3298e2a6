{#- Incremental models rebuild exactly the days of the partition window being materialized.
    Ballast's dbt steps give the window as environment variables, not --vars, and read them
    only when executing: dbt re-parses the whole project whenever --vars change, and the
    files that read a changed environment variable while parsing. So a new window costs
    no parsing at all. The vars start_date/end_date remain for a hand-run
    `dbt build --vars` and for the unit tests' overrides. -#}
{% macro window_start() -%}
    date '{{ _window_day("BALLAST_DBT_WINDOW_START", "start_date") }}'
{%- endmacro %}

{% macro window_end() -%}
    date '{{ _window_day("BALLAST_DBT_WINDOW_END", "end_date") }}'
{%- endmacro %}

{% macro _window_day(env_name, var_name) -%}
    {%- if execute -%}{{ env_var(env_name, var(var_name)) }}{%- else -%}{{ var(var_name) }}{%- endif -%}
{%- endmacro %}

{#- Pre-hook: drop the window's old rows so a re-run replaces them instead of appending. -#}
{% macro delete_window(date_column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ date_column }} between {{ window_start() }} and {{ window_end() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
