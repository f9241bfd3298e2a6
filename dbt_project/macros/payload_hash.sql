{#- A null-safe hash of several columns, to compare whole payloads in one expression. -#}
{% macro payload_hash(columns) -%}
    md5(concat_ws('|', {% for c in columns %}coalesce(cast({{ c }} as varchar), '<null>'){% if not loop.last %}, {% endif %}{% endfor %}))
{%- endmacro %}
