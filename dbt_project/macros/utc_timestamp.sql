{#-
    Event timestamps are read strictly, by pattern, never by a cast that guesses: DuckDB's
    own casts drop zone names (`10:00 America/New_York` became 10:00 UTC), accept
    impossible offsets (+25:00, +05:99), roll 24:00 into the next day and cut nanoseconds
    to microseconds, and a cast to TIMESTAMPTZ reads a naive value in the session's time
    zone. Accepted (ISO 8601 / RFC 3339):

        YYYY-MM-DD                                  midnight UTC
        YYYY-MM-DD(T|t|space)HH:MM[:SS[.fraction]][zone]
                                                    zone: Z, z, ±HH:MM, ±HHMM, ±HH; none = UTC

    Hours 00-23, minutes and seconds 00-59, offsets up to ±23:59; fractional digits beyond
    the sixth must be zeros (microseconds are the clean type's precision). A zone name is
    unsupported_timezone, digits beyond microseconds timestamp_precision, anything else
    bad_timestamp.
-#}

{% macro timestamp_pattern() -%}
    '^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$'
{%- endmacro %}

{#- A date and time followed by a zone name or abbreviation (UTC, EST, Europe/Paris, CET). -#}
{% macro zone_name_pattern() -%}
    '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)? ?[A-Za-z][A-Za-z0-9_/+-]*$'
{%- endmacro %}

{#- The pattern's parts as a struct of strings ('' for a part that is absent). -#}
{% macro timestamp_parts(text) -%}
    regexp_extract(
        {{ text }},
        {{ timestamp_pattern() }},
        ['year', 'month', 'day', 'hour', 'minute', 'second', 'fraction', 'z', 'sign', 'offset_hour', 'offset_minute']
    )
{%- endmacro %}

{#- Why the text is not an accepted timestamp, or null when it is. -#}
{% macro timestamp_problem(text, parts) -%}
    case
        when {{ text }} is null then 'bad_timestamp'
        when not regexp_full_match({{ text }}, {{ timestamp_pattern() }}) then
            case
                when regexp_full_match({{ text }}, {{ zone_name_pattern() }}) and upper(right({{ text }}, 2)) not in ('AM', 'PM')
                    then 'unsupported_timezone'
                else 'bad_timestamp'
            end
        when coalesce(try_cast(nullif({{ parts }}.hour, '') as int), 0) > 23
            or coalesce(try_cast(nullif({{ parts }}.minute, '') as int), 0) > 59
            or coalesce(try_cast(nullif({{ parts }}.second, '') as int), 0) > 59
            or coalesce(try_cast(nullif({{ parts }}.offset_hour, '') as int), 0) > 23
            or coalesce(try_cast(nullif({{ parts }}.offset_minute, '') as int), 0) > 59 then 'bad_timestamp'
        when try_cast({{ parts }}.year || '-' || {{ parts }}.month || '-' || {{ parts }}.day as date) is null then 'bad_timestamp'
        when ltrim(substr({{ parts }}.fraction, 7), '0') <> '' then 'timestamp_precision'
    end
{%- endmacro %}

{#-
    The UTC instant of an accepted timestamp (see timestamp_problem), built from its parts
    as a naive TIMESTAMP so that the session's time zone plays no part.
-#}
{% macro utc_timestamp(parts) -%}
    (try_cast(
        {{ parts }}.year || '-' || {{ parts }}.month || '-' || {{ parts }}.day || ' '
        || coalesce(nullif({{ parts }}.hour, ''), '00') || ':'
        || coalesce(nullif({{ parts }}.minute, ''), '00') || ':'
        || coalesce(nullif({{ parts }}.second, ''), '00') || '.'
        || rpad(left({{ parts }}.fraction, 6), 6, '0')
        as timestamp
    )
    - to_minutes(
        case when {{ parts }}.sign = '-' then -1 else 1 end
        * (coalesce(try_cast(nullif({{ parts }}.offset_hour, '') as int), 0) * 60
           + coalesce(try_cast(nullif({{ parts }}.offset_minute, '') as int), 0))
    ))
{%- endmacro %}
