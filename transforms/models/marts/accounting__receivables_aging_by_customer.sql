-- accounting__receivables_aging_by_customer: the aging per customer: one row per connection, customer,
-- currency and bucket, with the buckets of accounting__receivables_aging (and summing to it). Invoices whose
-- contact the warehouse does not hold are under customer_id NULL, named 'Unknown customer'.
with open_receivables as (
    select * from {{ ref('int_accounting__open_receivables') }}
),

final as (
    select
        connection,
        customer_id,
        customer_name,
        currency,
        bucket,
        bucket_order,
        count(*) as invoices,
        sum(open_minor) as open_minor,
        sum(open_amount) as open_amount
    from open_receivables
    group by connection, customer_id, customer_name, currency, bucket, bucket_order
)

select * from final
