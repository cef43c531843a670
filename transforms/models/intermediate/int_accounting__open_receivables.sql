-- int_accounting__open_receivables: one row per receivable invoice with an open amount at the as-of date
-- (neither void nor draft, not a bill), aged from its due date to the as-of date, with its customer. Both
-- agings sum it, so they agree by construction. Buckets have inclusive upper bounds and do not overlap:
-- current (not yet due, or no due date), 1-30, 31-60, 61-90, 90+ days past due.
with settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

contacts as (
    select * from {{ ref('stg_accounting__contacts') }}
),

open_invoices as (
    select
        invoice_id,
        connection,
        number,
        currency,
        contact_id,
        due_date,
        open_minor,
        open_amount,
        case
            when due_date is null then 0
            else {{ dbt.datediff('due_date', as_of_date(), 'day') }}
        end as days_past_due
    from settlement
    where is_receivable and not excluded_from_receivables and open_minor > 0
),

bucketed as (
    select
        *,
        case
            when days_past_due <= 0 then 0
            when days_past_due <= 30 then 1
            when days_past_due <= 60 then 2
            when days_past_due <= 90 then 3
            else 4
        end as bucket_order
    from open_invoices
),

final as (
    select
        bucketed.invoice_id,
        bucketed.connection,
        bucketed.number,
        bucketed.currency,
        contacts.contact_id as customer_id,
        coalesce(contacts.name, 'Unknown customer') as customer_name,
        bucketed.due_date,
        bucketed.days_past_due,
        bucketed.bucket_order,
        case bucketed.bucket_order
            when 0 then 'current'
            when 1 then '1-30'
            when 2 then '31-60'
            when 3 then '61-90'
            else '90+'
        end as bucket,
        bucketed.open_minor,
        bucketed.open_amount
    from bucketed
    left join contacts
        on contacts.contact_id = bucketed.contact_id and contacts.connection = bucketed.connection
)

select * from final
