{#- For the integrity tests: a loaded table's rows as the loads knew them at the as-of date's `known_at`,
    read straight from the raw tables, independently of the models' own way (macros/books_on.sql). For a
    connection whose history began before `known_at`: a record's newest version seen before it, where a later
    version replaced it at or after `known_at` (a child table's rows: those of its parent's version); else
    today's row, unless the record was first seen at or after `known_at`. For any other connection, today's
    rows. `columns`: expressions over the table's row `known`, each with its name. -#}
{% macro raw_rows_known_at(table, columns, parent=none, parent_key=none) -%}
    {%- set history = optional_raw_relation(table ~ '_history') -%}
    {%- set names = columns | join(', ') -%}
    {%- set versioned = parent or table -%}
    {%- set key = parent_key or 'id' -%}
    (
    {%- if history is not none %}
        select {{ names }}
        from {{ source('accounting', table ~ '_history') }} as known
        inner join (
            select v.id, max(v._seen_at) as seen
            from {{ source('accounting', versioned ~ '_history') }} as v
            where v._seen_at < {{ known_at() }} and v.connection in ({{ raw_history_connections() }})
                and exists (
                    select 1 from {{ source('accounting', versioned ~ '_history') }} as w
                    where w.id = v.id and w._seen_at >= {{ known_at() }}
                )
            group by v.id
        ) as chosen on chosen.id = known.{{ key }} and chosen.seen = known._seen_at
        union all
        select {{ names }}
        from {{ source('accounting', table) }} as known
        where not exists (
            select 1 from {{ source('accounting', versioned ~ '_history') }} as w
            where w.id = known.{{ key }} and w._seen_at >= {{ known_at() }}
                and w.connection in ({{ raw_history_connections() }})
        )
    {%- else %}
        select {{ names }}
        from {{ source('accounting', table) }} as known
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
