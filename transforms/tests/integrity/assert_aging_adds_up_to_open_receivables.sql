-- Integrity: per connection and currency, the aging buckets add up to the open amount of the invoices in
-- receivables, and to the summary's open amount.
with aging as (
    select connection, currency, sum(open_minor) as open_minor, sum(open_amount) as open_amount
    from {{ ref('accounting__receivables_aging') }}
    group by connection, currency
),
settlement as (
    select connection, currency, sum(open_minor) as open_minor
    from {{ ref('accounting__invoice_settlement') }}
    where is_receivable and not excluded_from_receivables and open_minor > 0
    group by connection, currency
),
summary as (
    select connection, currency, sum(open_amount) as open_amount
    from {{ ref('accounting__reconciliation_summary') }}
    group by connection, currency
)
select coalesce(a.connection, s.connection) as connection, coalesce(a.currency, s.currency) as currency,
       a.open_minor as aged, s.open_minor as open_in_settlement, m.open_amount as open_in_summary
from aging as a
full outer join settlement as s on s.connection = a.connection and s.currency is not distinct from a.currency
left join summary as m
    on m.connection = coalesce(a.connection, s.connection)
    and m.currency is not distinct from coalesce(a.currency, s.currency)
where coalesce(a.open_minor, 0) <> coalesce(s.open_minor, 0)
   or coalesce(a.open_amount, 0) <> coalesce(m.open_amount, 0)
