{#-
    The relation of the model `name`, looked up in the graph rather than with ref(): a test
    that ref()s a model of an earlier layer becomes that model's child too, and dbt's eager
    test selection would then run it with the earlier layer, before its own model exists.
-#}
{% macro model_relation(name) -%}
    {%- if execute -%}
        {{ (graph.nodes.values() | selectattr('resource_type', 'equalto', 'model') | selectattr('name', 'equalto', name) | first).relation_name }}
    {%- endif -%}
{%- endmacro %}
