-- accounting__receivables_aging: one row per connection, currency and bucket: the OPEN amount (total - applied, never
-- the original amount) of invoices that are neither void nor draft, aged from the due date to the as-of
-- date. Buckets have inclusive upper bounds and do not overlap: current (not yet due, or no due date),
-- 1-30, 31-60, 61-90, 90+ days past due. Bills (payable invoices) are not receivables and are left out.
with open_receivables as (
    select * from {{ ref('int_accounting__open_receivables') }}
),

final as (
    select
        connection,
        currency,
        bucket_order,
        bucket,
        count(*) as invoices,
        sum(open_minor) as open_minor,
        sum(open_amount) as open_amount
    from open_receivables
    group by connection, currency, bucket_order, bucket
)

select * from final
