{#- For the integrity tests: a loaded table's rows as the loads knew them at the as-of date's `known_at`,
    read straight from the raw tables, independently of the models' own way (macros/books_on.sql): for a
    connection whose history began before `known_at`, each record's newest version seen before it (a child
    table's rows: those of its parent's version); for any other connection, today's rows. `columns`: the
    columns to select: expressions over the table's row `known`, each with its name. -#}
{% macro raw_rows_known_at(table, columns, parent=none, parent_key=none) -%}
    {%- set history = optional_raw_relation(table ~ '_history') -%}
    {%- set names = columns | join(', ') -%}
    (
    {%- if history is not none %}
        {%- if parent is none %}
        select {{ names }}
        from (
            select h.*, row_number() over (partition by h.id order by h._seen_at desc) as newest
            from {{ source('accounting', table ~ '_history') }} as h
            where h._seen_at < {{ known_at() }}
        ) as known
        where known.newest = 1 and known.connection in ({{ raw_history_connections() }})
        {%- else %}
        select {{ names }}
        from {{ source('accounting', table ~ '_history') }} as known
        where exists (
            select 1
            from (
                select p.id, p._seen_at, row_number() over (partition by p.id order by p._seen_at desc) as newest
                from {{ source('accounting', parent ~ '_history') }} as p
                where p._seen_at < {{ known_at() }} and p.connection in ({{ raw_history_connections() }})
            ) as parents
            where parents.newest = 1
                and parents.id = known.{{ parent_key }}
                and parents._seen_at = known._seen_at
        )
        {%- endif %}
        union all
    {%- endif %}
        select {{ names }}
        from {{ source('accounting', table) }} as known
        {%- if history is not none %}
        where known.connection not in ({{ raw_history_connections() }})
        {%- endif %}
    )
{%- endmacro %}

{#- The connections whose invoices' and payments' history both began before `known_at`, from the raw tables. -#}
{% macro raw_history_connections() -%}
    select connection
    from (
        select connection, min(_seen_at) as began from {{ source('accounting', 'invoices_history') }} group by connection
        {%- if optional_raw_relation('payments_history') is not none %}
        union all
        select connection, min(_seen_at) as began from {{ source('accounting', 'payments_history') }} group by connection
        {%- endif %}
    ) as firsts
    group by connection
    having max(began) < {{ known_at() }}
{%- endmacro %}
