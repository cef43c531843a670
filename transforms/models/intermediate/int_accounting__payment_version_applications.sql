-- int_accounting__payment_version_applications: one row per (payment version, invoice) the version applies to,
-- whatever the date: for today's row of every live payment (`version_seen_at` NULL) and for every version a
-- later one replaced (`version_seen_at` = the moment a load saw it). A payment applies through its invoice
-- line items (related_object_type INVOICE, applied_amount) or, when it has none, through its `invoice_id` (its
-- whole total). `applied_on` is the day the application enters the books: the line's `applied_date` (the
-- latest of its lines), else the payment's `booked_on`. The books on a day (macros/books_on.sql) pick each
-- payment's version and join its applications here, so the lines are grouped once, not once per day.
-- `valid_to` (a replaced version's end), `latest_seen` (today's row: when a load saw its latest version) and
-- `history_began` (the connection's) say at which moments each row is the books' (macros/books_on.sql,
-- `applies_at`), for a model that reads many days without a join per day (accounting__receivables_trend).
{%- set line_names = payment_line_item_columns('payments__line_items') %}
with payment_versions as (
    -- the versions the books can read from history: replaced ones, deleted ones left out
    select payment_id, connection, invoice_id, currency, transaction_date, total_minor, booked_on, valid_from,
        valid_to
    from {{ ref('stg_accounting__payment_versions') }}
    where valid_to is not null and not is_deleted
),

latest_seen as (
    select payment_id, connection, max(valid_from) as latest_seen
    from {{ ref('stg_accounting__payment_versions') }}
    group by payment_id, connection
),

payments as (
    select
        payment_id,
        connection,
        invoice_id,
        currency,
        transaction_date,
        total_minor,
        booked_on,
        cast(null as timestamp with time zone) as valid_from,
        cast(null as timestamp with time zone) as valid_to
    from {{ ref('stg_accounting__payments') }}
),

line_item_versions as (
    select * from {{ ref('stg_accounting__payment_line_item_versions') }}
),

line_items as (
    select {{ select_columns(line_names) }}
    from {{ source('accounting', 'payments__line_items') }} as payment_line_items
),

lines as (
    -- each version's own lines: a replaced version's from the history, today's from the loaded table
    select payment_versions.*, line_item_versions.related_object_type, line_item_versions.related_object_id,
        line_item_versions.applied_minor, line_item_versions.applied_date
    from payment_versions
    inner join line_item_versions
        on line_item_versions.payment_id = payment_versions.payment_id
        and line_item_versions.valid_from = payment_versions.valid_from
    union all
    select payments.*, line_items.related_object_type, line_items.related_object_id, line_items.applied_minor,
        line_items.applied_date
    from payments
    inner join line_items on line_items.payment_id = payments.payment_id
),

line_applications as (
    select
        payment_id,
        connection,
        valid_from as version_seen_at,
        related_object_id as invoice_id,
        sum(applied_minor) as applied_minor,
        'line_items' as applied_via,
        currency as payment_currency,
        transaction_date,
        max(coalesce(applied_date, booked_on)) as applied_on,
        valid_to
    from lines
    where related_object_type = 'INVOICE' and related_object_id is not null
    group by payment_id, connection, valid_from, valid_to, related_object_id, currency, transaction_date
),

header_applications as (
    -- a version without invoice lines applies its whole total to its `invoice_id`
    select * from payment_versions
    where invoice_id is not null
        and not exists (
            select 1
            from line_applications
            where line_applications.payment_id = payment_versions.payment_id
                and line_applications.version_seen_at = payment_versions.valid_from
        )
    union all
    select * from payments
    where invoice_id is not null
        and not exists (
            select 1
            from line_applications
            where line_applications.payment_id = payments.payment_id
                and line_applications.version_seen_at is null
        )
),

applications as (
    select * from line_applications
    union all
    select
        payment_id,
        connection,
        valid_from as version_seen_at,
        invoice_id,
        total_minor as applied_minor,
        'invoice_id' as applied_via,
        currency as payment_currency,
        transaction_date,
        booked_on as applied_on,
        valid_to
    from header_applications
),

final as (
    select
        applications.*,
        case when applications.version_seen_at is null then latest_seen.latest_seen end as latest_seen,
        began.history_began
    from applications
    left join latest_seen
        on latest_seen.payment_id = applications.payment_id and latest_seen.connection = applications.connection
    left join {{ ref('int_accounting__history_began') }} as began on began.connection = applications.connection
)

select * from final
