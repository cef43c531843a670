-- Integrity: each live invoice's applied amount, rebuilt straight from the loaded payments (their invoice line
-- items, else their invoice_id; live payments in the invoice's currency only), equals the settlement's.
-- Fails with the invoices that differ.
with live_payments as (
    select id, connection, invoice_id, upper(currency) as currency, coalesce(total_amount, 0) as total_amount
    from {{ source('accounting', 'payments') }}
    where deleted_at is null
),
invoice_lines as (
    select l.payment_id, l.related_object_id as invoice_id, coalesce(l.applied_amount, 0) as amount
    from {{ source('accounting', 'payments__line_items') }} as l
    where upper(l.related_object_type) = 'INVOICE' and l.related_object_id is not null
),
applied as (
    select p.connection, l.invoice_id, p.currency, l.amount
    from invoice_lines as l
    join live_payments as p on p.id = l.payment_id
    union all
    select p.connection, p.invoice_id, p.currency, p.total_amount
    from live_payments as p
    where p.invoice_id is not null and p.id not in (select payment_id from invoice_lines)
),
rebuilt as (
    select i.id as invoice_id, coalesce(sum(a.amount), 0) as applied_minor
    from {{ source('accounting', 'invoices') }} as i
    left join applied as a
        on a.invoice_id = i.id and a.connection = i.connection and a.currency = upper(i.currency)
    where i.deleted_at is null
    group by i.id
)
select r.invoice_id, r.applied_minor as rebuilt, s.applied_minor as modelled
from rebuilt as r
full outer join {{ ref('accounting__invoice_settlement') }} as s on s.invoice_id = r.invoice_id
where r.applied_minor is distinct from s.applied_minor
