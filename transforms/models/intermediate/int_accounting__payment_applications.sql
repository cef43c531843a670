-- int_accounting__payment_applications: one row per (payment, invoice) a live payment is applied to.
-- A payment applies through its line items (related_object_type INVOICE, applied_amount) or through its
-- `invoice_id` (its whole total). The same payment can carry both for the same application, so each is
-- counted once: when a payment has invoice line items, they are the application; its `invoice_id` is
-- used only when it has none. `applied_on` is the day the application enters the books: the line's
-- `applied_date` (Panora's; the latest of its lines), else the payment's `booked_on` (its transaction date);
-- NULL when neither is known. `on_books`: applied on or before the as-of date (or undated).
{%- set line_applied_date = optional_column('payments__line_items', 'payment_line_items', 'applied_date',
    'timestamp with time zone') %}
with payments as (
    select * from {{ ref('stg_accounting__payments') }}
),

payment_line_items as (
    select * from {{ source('accounting', 'payments__line_items') }}
),

invoices as (
    select * from {{ ref('stg_accounting__invoices') }}
),

line_applications as (
    select
        payment_line_items.payment_id,
        payment_line_items.related_object_id as invoice_id,
        sum(coalesce(payment_line_items.applied_amount, 0)) as applied_minor,
        'line_items' as applied_via,
        max(coalesce({{ utc_date(line_applied_date) }}, payments.booked_on)) as applied_on
    from payment_line_items
    inner join payments on payments.payment_id = payment_line_items.payment_id
    where upper(payment_line_items.related_object_type) = 'INVOICE'
        and payment_line_items.related_object_id is not null
    group by payment_line_items.payment_id, payment_line_items.related_object_id
),

header_applications as (
    select
        payments.payment_id,
        payments.invoice_id,
        payments.total_minor as applied_minor,
        'invoice_id' as applied_via,
        payments.booked_on as applied_on
    from payments
    where payments.invoice_id is not null
        and not exists (
            select 1 from line_applications where line_applications.payment_id = payments.payment_id
        )
),

applications as (
    select * from line_applications
    union all
    select * from header_applications
),

final as (
    select
        applications.payment_id,
        applications.invoice_id,
        payments.connection,
        applications.applied_minor,
        applications.applied_via,
        payments.currency as payment_currency,
        payments.transaction_date,
        invoices.invoice_id is not null as invoice_in_warehouse,
        invoices.currency as invoice_currency,
        applications.applied_on,
        applications.applied_on is null or applications.applied_on <= {{ as_of_date() }} as on_books
    from applications
    inner join payments on payments.payment_id = applications.payment_id
    left join invoices
        on invoices.invoice_id = applications.invoice_id and invoices.connection = payments.connection
)

select * from final
