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

{#- The moment whose knowledge the as-of date's books are read with: the `known_at` variable (an ISO 8601
    date-time; without an offset it is UTC), else the end of the as-of date (UTC). Versions seen before it
    count, later ones do not (macros/books_on.sql). -#}
{% macro known_at() -%}
    {{ return(timestamp_literal(var('known_at', none) or end_of_day(as_of_value() | trim))) }}
{%- endmacro %}

{#- The last day of a closed period (`closed_through`, YYYY-MM-DD): by default the last day of the month
    before the as-of date's. -#}
{% macro closed_through_value() -%}
    {%- set value = var('closed_through', none) -%}
    {%- if value -%}
        {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', value | string) -%}
            {{ exceptions.raise_compiler_error("the closed_through variable must be a date written YYYY-MM-DD, got " ~ value) }}
        {%- endif -%}
        {{ return(value | string) }}
    {%- endif -%}
    {%- set day = modules.datetime.date.fromisoformat(as_of_value() | trim) -%}
    {{ return((day.replace(day=1) - modules.datetime.timedelta(days=1)).isoformat()) }}
{%- endmacro %}

{#- When the period through `closed_through` was closed (`closed_at`, an ISO 8601 date-time): by default the
    end of `closed_through` (UTC). -#}
{% macro closed_at() -%}
    {{ return(timestamp_literal(var('closed_at', none) or end_of_day(closed_through_value()))) }}
{%- endmacro %}

{#- The start of the day after `day` (YYYY-MM-DD), UTC, as an ISO date-time. -#}
{% macro end_of_day(day) -%}
    {%- set next_day = modules.datetime.date.fromisoformat(day) + modules.datetime.timedelta(days=1) -%}
    {{ return(next_day.isoformat() ~ 'T00:00:00+00:00') }}
{%- endmacro %}

{#- A timestamp with time zone literal of an ISO 8601 date-time (UTC when it has no offset). -#}
{% macro timestamp_literal(value) -%}
    {%- set text = value | string | trim -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text.replace('Z', '+00:00')) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return("cast('" ~ parsed.astimezone(modules.pytz.utc).strftime('%Y-%m-%d %H:%M:%S.%f') ~ "+00' as timestamp with time zone)") }}
{%- endmacro %}
