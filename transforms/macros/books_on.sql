{#- The books as they stood on given days (the as-of models read one: the as-of date).

    `dates`: the name of a relation with `book_date` (a day) and `known_at` (the moment whose knowledge
    counts: the end of that day, UTC, unless the `known_at` variable says otherwise for the as-of date).
    Emits three CTEs, every row keyed by `book_date`:
      invoices_at       each invoice as the books held it (stg_accounting__invoices' columns, and
                        `version_seen_at`: when a load saw that version; NULL where it is today's row)
      payments_at       each payment likewise (stg_accounting__payments' columns and `version_seen_at`)
      applications_at   one row per (payment, invoice) a payment applies to (int_accounting__payment_applications),
                        the applications of the payment's version (int_accounting__payment_version_applications)

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
invoices_at as (
    {{ records_known_at(dates, 'stg_accounting__invoice_versions', 'stg_accounting__invoices', 'invoice_id',
                        invoice_names) }}
),

payments_at as (
    {{ records_known_at(dates, 'stg_accounting__payment_versions', 'stg_accounting__payments', 'payment_id',
                        payment_names) }}
),

applications_at as (
    {{ applications_known_at('payments_at', 'invoices_at') }}
)
{%- endmacro %}

{#- The applications of the payments in `payments_at` (a relation from records_known_at: `book_date`,
    `payment_id`, `connection`, `version_seen_at`), each its version's, with the invoice as `invoices_at` (the
    same, with `invoice_id` and `currency`) holds it on that day. The join hashes on the payment's key and
    compares the version after it (a payment has few). -#}
{% macro applications_known_at(payments_at, invoices_at) -%}
    select
        {{ payments_at }}.book_date,
        applications.payment_id,
        applications.invoice_id,
        applications.connection,
        applications.applied_minor,
        applications.applied_via,
        applications.payment_currency,
        applications.transaction_date,
        {{ invoices_at }}.invoice_id is not null as invoice_in_warehouse,
        {{ invoices_at }}.currency as invoice_currency,
        applications.applied_on,
        applications.applied_on is null or applications.applied_on <= {{ payments_at }}.book_date as on_books
    from {{ payments_at }}
    inner join {{ ref('int_accounting__payment_version_applications') }} as applications
        on applications.payment_id = {{ payments_at }}.payment_id
        and applications.connection = {{ payments_at }}.connection
        and applications.version_seen_at is not distinct from {{ payments_at }}.version_seen_at
    left join {{ invoices_at }}
        on {{ invoices_at }}.book_date = {{ payments_at }}.book_date
        and {{ invoices_at }}.invoice_id = applications.invoice_id
        and {{ invoices_at }}.connection = applications.connection
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

{#- Whether a row of int_accounting__payment_version_applications (`alias`) is the books' at the moment
    `known_at`: the same rule as records_known_at, read from the row's own columns, so that a model can ask it
    of many days with no join but a filter. A replaced version: history had begun, and the version was seen
    before the moment and replaced at or after it. Today's row: its latest version was seen before the moment,
    or history had not begun. -#}
{% macro applies_at(alias, known_at) -%}
    case
        when {{ alias }}.version_seen_at is not null then {{ alias }}.history_began < {{ known_at }}
            and {{ alias }}.version_seen_at < {{ known_at }} and {{ alias }}.valid_to >= {{ known_at }}
        else {{ alias }}.latest_seen is null or {{ alias }}.latest_seen < {{ known_at }}
            or {{ alias }}.history_began is null or {{ alias }}.history_began >= {{ known_at }}
    end
{%- endmacro %}

{#- One row: the as-of date and the moment whose knowledge counts for it. -#}
{% macro as_of_dates() -%}
    select {{ as_of_date() }} as book_date, {{ known_at() }} as known_at
{%- endmacro %}
