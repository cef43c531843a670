-- accounting__receivables_aging: one row per connection, currency and bucket: the OPEN amount (total - applied, never
-- the original amount) of invoices that are neither void nor draft, aged from the due date to the as-of
-- date. Buckets have inclusive upper bounds and do not overlap: current (not yet due, or no due date),
-- 1-30, 31-60, 61-90, 90+ days past due.
with settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

open_invoices as (
    select
        connection,
        currency,
        open_minor,
        open_amount,
        case
            when due_date is null then 0
            else {{ dbt.datediff('due_date', as_of_date(), 'day') }}
        end as days_past_due
    from settlement
    where not excluded_from_receivables and open_minor > 0
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
        connection,
        currency,
        bucket_order,
        case bucket_order
            when 0 then 'current'
            when 1 then '1-30'
            when 2 then '31-60'
            when 3 then '61-90'
            else '90+'
        end as bucket,
        count(*) as invoices,
        sum(open_minor) as open_minor,
        sum(open_amount) as open_amount
    from bucketed
    group by connection, currency, bucket_order
)

select * from final
