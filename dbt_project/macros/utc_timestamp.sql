{#-
    Text to a UTC timestamp, whatever the session's time zone: values with an offset
    (Z, +05:30, -0800) are converted to UTC; naive values are taken as UTC already.
    Unparseable text gives null.
-#}
{% macro utc_timestamp(text) -%}
    case
        when regexp_matches({{ text }}, '([zZ]|[+-]\d{2}(:?\d{2})?)$')
            then timezone('UTC', try_cast({{ text }} as timestamptz))
        else try_cast({{ text }} as timestamp)
    end
{%- endmacro %}
