-- Integrity: each invoice's applied amount at the as-of date, rebuilt straight from the loaded payments (their
-- invoice line items, else their invoice_id; live payments in the invoice's currency only; dated on or before
-- the as-of date: a line's applied date, the latest of a payment's lines on one invoice, else the payment's
-- transaction date, else the day it was created), equals the settlement's. Fails with the invoices that differ.
-- The loaded rows are those the loads knew at the as-of date (macros/raw_rows_known_at.sql).
{%- set applied_date = optional_column('payments__line_items', 'known', 'applied_date', 'timestamp with time zone') %}
{%- set payment_columns = ['known.id', 'known.connection', 'known.invoice_id', 'known.currency', 'known.total_amount', 'known.transaction_date',
    'known.created_at', 'known.deleted_at'] %}
{%- set line_columns = ['known.payment_id', 'known.related_object_id', 'known.related_object_type', 'known.applied_amount',
    applied_date ~ ' as applied_date'] %}
{%- set invoice_columns = ['known.id', 'known.connection', 'known.currency', 'known.issue_date', 'known.created_at', 'known.deleted_at'] %}
with live_payments as (
    select
        id,
        connection,
        invoice_id,
        upper(currency) as currency,
        coalesce(total_amount, 0) as total_amount,
        coalesce({{ utc_date('transaction_date') }}, {{ utc_date('created_at') }}) as booked_on
    from {{ raw_rows_known_at('payments', payment_columns) }} as payments
    where deleted_at is null
),
invoice_lines as (
    select
        l.payment_id,
        l.related_object_id as invoice_id,
        sum(coalesce(l.applied_amount, 0)) as amount,
        max({{ utc_date('l.applied_date') }}) as applied_on
    from {{ raw_rows_known_at('payments__line_items', line_columns, 'payments', 'payment_id') }} as l
    where upper(l.related_object_type) = 'INVOICE' and l.related_object_id is not null
    group by l.payment_id, l.related_object_id
),
applied as (
    select p.connection, l.invoice_id, p.currency, l.amount, coalesce(l.applied_on, p.booked_on) as applied_on
    from invoice_lines as l
    inner join live_payments as p on p.id = l.payment_id
    union all
    select p.connection, p.invoice_id, p.currency, p.total_amount, p.booked_on
    from live_payments as p
    where p.invoice_id is not null and p.id not in (select payment_id from invoice_lines)
),
rebuilt as (
    select i.id as invoice_id, coalesce(sum(a.amount), 0) as applied_minor
    from {{ raw_rows_known_at('invoices', invoice_columns) }} as i
    left join applied as a
        on a.invoice_id = i.id
        and a.connection = i.connection
        and a.currency = upper(i.currency)
        and (a.applied_on is null or a.applied_on <= {{ as_of_date() }})
    where i.deleted_at is null
        and coalesce({{ utc_date('i.issue_date') }}, {{ utc_date('i.created_at') }}, {{ as_of_date() }})
            <= {{ as_of_date() }}
    group by i.id
)
select r.invoice_id, r.applied_minor as rebuilt, s.applied_minor as modelled
from rebuilt as r
full outer join {{ ref('accounting__invoice_settlement') }} as s on s.invoice_id = r.invoice_id
where r.applied_minor is distinct from s.applied_minor
