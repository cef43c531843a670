{#- The reporting currency: the `reporting_currency` variable (an ISO 4217 code), or none when unset, in
    which case nothing is converted and the reporting-currency models are empty. -#}
{% macro reporting_currency_value() -%}
    {%- set value = var('reporting_currency', none) -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if not modules.re.fullmatch('[A-Z]{3}', value | string) -%}
        {{ exceptions.raise_compiler_error(
            "the reporting_currency variable must be an ISO 4217 code such as EUR, got " ~ value) }}
    {%- endif -%}
    {{ return(value | string) }}
{%- endmacro %}

{#- The reporting currency as a SQL literal (a typed NULL when unset). -#}
{% macro reporting_currency() -%}
    {%- set value = reporting_currency_value() -%}
    {%- if value is none -%}cast(null as {{ dbt.type_string() }}){%- else -%}cast('{{ value }}' as {{ dbt.type_string() }}){%- endif -%}
{%- endmacro %}

{#- `value` (a decimal) rounded half to even to a currency's minor unit, in exact decimal arithmetic on
    every warehouse: `exponent` is the currency's decimals (a column, so neither DuckDB's round_even, which
    wants a constant, nor PostgreSQL's round, which rounds half away from zero, will do), `minor_unit` the
    unit as a decimal (0.01). Written by hand for that reason; `transforms/tests/integrity/
    assert_round_half_even.sql` holds it to worked cases. -#}
{% macro round_half_even(value, exponent, minor_unit) -%}
    {%- set scale -%}
        cast(case {{ exponent }} when 0 then 1 when 1 then 10 when 2 then 100 when 3 then 1000 when 4 then 10000 end
            as decimal(5, 0))
    {%- endset -%}
    {%- set scaled -%}(abs({{ value }}) * {{ scale }}){%- endset -%}
    (
        case when {{ value }} < 0 then -1 else 1 end
        * (
            floor({{ scaled }})
            + case
                when {{ scaled }} - floor({{ scaled }}) > 0.5 then 1
                when {{ scaled }} - floor({{ scaled }}) < 0.5 then 0
                when floor({{ scaled }}) % 2 = 1 then 1
                else 0
            end
        )
        * {{ minor_unit }}
    )
{%- endmacro %}
