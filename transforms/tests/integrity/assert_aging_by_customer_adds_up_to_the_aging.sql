-- Integrity: per connection, currency and bucket, the aging by customer adds up to the aging, in invoices and
-- in open amount (the aging itself is checked against the settlement and the summary by
-- assert_aging_adds_up_to_open_receivables).
with by_customer as (
    select connection, currency, bucket, sum(invoices) as invoices, sum(open_minor) as open_minor
    from {{ ref('accounting__receivables_aging_by_customer') }}
    group by connection, currency, bucket
),

aging as (
    select connection, currency, bucket, invoices, open_minor
    from {{ ref('accounting__receivables_aging') }}
)

select
    coalesce(a.connection, c.connection) as connection,
    coalesce(a.currency, c.currency) as currency,
    coalesce(a.bucket, c.bucket) as bucket,
    a.open_minor as aged,
    c.open_minor as aged_by_customer
from aging as a
full outer join by_customer as c
    on c.connection = a.connection and c.currency is not distinct from a.currency and c.bucket = a.bucket
where coalesce(a.open_minor, 0) <> coalesce(c.open_minor, 0) or coalesce(a.invoices, 0) <> coalesce(c.invoices, 0)
