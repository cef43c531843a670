{#- The books as they stood on given days (the as-of models read one: the as-of date).

    `dates`: the name of a relation with `book_date` (a day) and `known_at` (the moment whose knowledge
    counts: the end of that day, UTC, unless the `known_at` variable says otherwise for the as-of date).
    Emits four CTEs, every row keyed by `book_date`:
      invoices_at       each invoice as the books held it (stg_accounting__invoices' columns, and
                        `version_seen_at`: when a load saw that version; NULL where it is today's row)
      payments_at       each payment likewise (stg_accounting__payments' columns and `version_seen_at`)
      payment_lines_at  the line items of those payments (the version's own lines)
      applications_at   one row per (payment, invoice) a payment applies to (int_accounting__payment_applications)

    Where a connection's history began before `known_at` (int_accounting__history_began), each record is the
    version the loads had seen by then: a version a later one replaced (seen before `known_at`, replaced at or
    after it) is read from the history, deleted ones left out; a record whose latest version was seen before
    `known_at` is today's row (the same content; `version_seen_at` NULL); a record first seen at or after it is
    not on the books yet. Where the history began later (a day before the first load, or before history was
    kept), they are today's rows, which the models then rebuild (see accounting__invoice_settlement). Nothing
    here filters by date: the models keep what is dated on or before the day (`booked_on`, `applied_on`). -#}
{% macro books_on(dates) -%}
    {%- set invoice_names = invoice_columns('invoices') -%}
    {%- set payment_names = payment_columns('payments') -%}
    {%- set line_names = payment_line_item_columns('payments__line_items') -%}
invoices_at as (
    {{ records_known_at(dates, 'stg_accounting__invoice_versions', 'stg_accounting__invoices', 'invoice_id',
                        invoice_names) }}
),

payments_at as (
    {{ records_known_at(dates, 'stg_accounting__payment_versions', 'stg_accounting__payments', 'payment_id',
                        payment_names) }}
),

payment_lines_at as (
    select
        payments_at.book_date,
        {{- column_names(line_names, 'lines') }}
    from payments_at
    inner join {{ ref('stg_accounting__payment_line_item_versions') }} as lines
        on lines.payment_id = payments_at.payment_id and lines.valid_from = payments_at.version_seen_at
    union all
    select
        payments_at.book_date,
        {{- column_names(line_names, 'lines') }}
    from payments_at
    inner join (
        select {{ select_columns(line_names) }}
        from {{ source('accounting', 'payments__line_items') }} as payment_line_items
    ) as lines on lines.payment_id = payments_at.payment_id
    where payments_at.version_seen_at is null
),

line_applications_at as (
    -- a payment applies through its invoice lines; its `invoice_id` (its whole total) only when it has none
    select
        payment_lines_at.book_date,
        payment_lines_at.payment_id,
        payment_lines_at.related_object_id as invoice_id,
        sum(payment_lines_at.applied_minor) as applied_minor,
        'line_items' as applied_via,
        max(coalesce(payment_lines_at.applied_date, payments_at.booked_on)) as applied_on
    from payment_lines_at
    inner join payments_at
        on payments_at.book_date = payment_lines_at.book_date and payments_at.payment_id = payment_lines_at.payment_id
    where payment_lines_at.related_object_type = 'INVOICE' and payment_lines_at.related_object_id is not null
    group by payment_lines_at.book_date, payment_lines_at.payment_id, payment_lines_at.related_object_id
),

applications_at as (
    select
        applications.book_date,
        applications.payment_id,
        applications.invoice_id,
        payments_at.connection,
        applications.applied_minor,
        applications.applied_via,
        payments_at.currency as payment_currency,
        payments_at.transaction_date,
        invoices_at.invoice_id is not null as invoice_in_warehouse,
        invoices_at.currency as invoice_currency,
        applications.applied_on,
        applications.applied_on is null or applications.applied_on <= applications.book_date as on_books
    from (
        select * from line_applications_at
        union all
        select
            payments_at.book_date,
            payments_at.payment_id,
            payments_at.invoice_id,
            payments_at.total_minor as applied_minor,
            'invoice_id' as applied_via,
            payments_at.booked_on as applied_on
        from payments_at
        where payments_at.invoice_id is not null
            and not exists (
                select 1
                from line_applications_at
                where line_applications_at.book_date = payments_at.book_date
                    and line_applications_at.payment_id = payments_at.payment_id
            )
    ) as applications
    inner join payments_at
        on payments_at.book_date = applications.book_date and payments_at.payment_id = applications.payment_id
    left join invoices_at
        on invoices_at.book_date = applications.book_date
        and invoices_at.invoice_id = applications.invoice_id
        and invoices_at.connection = payments_at.connection
)
{%- endmacro %}

{#- One object's records on each day of `dates`, as described above: `versions` and `today` are the object's
    version and staging models (the same columns, `names`), `key` its id column. -#}
{% macro records_known_at(dates, versions, today, key, names) -%}
    select
        {{ dates }}.book_date,
        {{- column_names(names, 'versions') }},
        versions.valid_from as version_seen_at
    from {{ dates }}
    inner join {{ ref('int_accounting__history_began') }} as began on began.history_began < {{ dates }}.known_at
    inner join (
        -- only versions a later one replaced: a record's latest version is read as today's row
        select * from {{ ref(versions) }} where valid_to is not null
    ) as versions
        on versions.connection = began.connection
        and versions.valid_from < {{ dates }}.known_at
        and versions.valid_to >= {{ dates }}.known_at
    where not versions.is_deleted
    union all
    select
        {{ dates }}.book_date,
        {{- column_names(names, 'today') }},
        cast(null as timestamp with time zone) as version_seen_at
    from {{ dates }}
    cross join {{ ref(today) }} as today
    left join (
        select {{ key }}, connection, max(valid_from) as latest_seen
        from {{ ref(versions) }}
        group by {{ key }}, connection
    ) as latest on latest.{{ key }} = today.{{ key }} and latest.connection = today.connection
    left join {{ ref('int_accounting__history_began') }} as began on began.connection = today.connection
    -- today's row was known then unless its latest version was seen at or after that moment, where history
    -- had begun (where it had not, today's rows are read, and rebuilt). Joins, not a subquery per day and row:
    -- the check per row is one hash join whatever the number of days.
    where latest.latest_seen is null
        or latest.latest_seen < {{ dates }}.known_at
        or began.history_began is null
        or began.history_began >= {{ dates }}.known_at
{%- endmacro %}

{#- One row: the as-of date and the moment whose knowledge counts for it. -#}
{% macro as_of_dates() -%}
    select {{ as_of_date() }} as book_date, {{ known_at() }} as known_at
{%- endmacro %}
