{#- The calendar date (UTC) of a timestamp with time zone, whatever the session's time zone: dates are cut
    in UTC on every warehouse. -#}
{% macro utc_date(column) -%}
    {{ return(adapter.dispatch('utc_date', 'accounting')(column)) }}
{%- endmacro %}

{% macro default__utc_date(column) -%}
    cast(({{ column }} at time zone 'UTC') as date)
{%- endmacro %}

{#- The date receivables are aged to: the `as_of` variable (YYYY-MM-DD), else the run's date in UTC. -#}
{% macro as_of_date() -%}
    cast('{{ as_of_value() }}' as date)
{%- endmacro %}

{% macro as_of_value() -%}
    {%- set value = var('as_of', none) or run_started_at.strftime('%Y-%m-%d') -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value | string) -%}
        {{ exceptions.raise_compiler_error("the as_of variable must be a date written YYYY-MM-DD, got " ~ value) }}
    {%- endif -%}
    {{ value }}
{%- endmacro %}
