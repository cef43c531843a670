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

{#- The last `count` month-ends on or before the as-of date, newest first (the as-of date itself when it is a
    month's last day), as (month_start, month_end) ISO dates, computed when the model compiles. -#}
{% macro month_ends_to_as_of(count) -%}
    {%- set day = modules.datetime.date.fromisoformat(as_of_value() | trim) -%}
    {%- set one_day = modules.datetime.timedelta(days=1) -%}
    {#- a namespace: a plain `set` inside a loop does not outlive the iteration in Jinja -#}
    {%- set at = namespace(month_end=day if (day + one_day).day == 1 else day.replace(day=1) - one_day) -%}
    {%- set ends = [] -%}
    {%- for _ in range(count) -%}
        {%- do ends.append((at.month_end.replace(day=1).isoformat(), at.month_end.isoformat())) -%}
        {%- set at.month_end = at.month_end.replace(day=1) - one_day -%}
    {%- endfor -%}
    {{ return(ends) }}
{%- endmacro %}
