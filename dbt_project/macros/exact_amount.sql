{#-
    Amounts are read as plain decimal text: an optional sign, digits and at most one
    decimal point (`12.30`, `+12.3`, `.5`, `5.`, `012.300`). Thousands separators, decimal
    commas, exponents (`1e3`), NaN and Infinity are not amounts. The clean type holds two
    decimals, so digits beyond the second must be zeros: DuckDB's cast would round
    12.345 to 12.35 and 0.005 up to 0.01, into the valid range.
-#}

{% macro amount_problem(text) -%}
    case
        when not coalesce(regexp_full_match({{ text }}, '[+-]?(\d+\.?\d*|\.\d+)'), false) then 'bad_amount'
        when not regexp_full_match({{ text }}, '[+-]?\d*(\.\d{0,2}0*)?') then 'amount_precision'
    end
{%- endmacro %}
