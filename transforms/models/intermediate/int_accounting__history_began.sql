-- int_accounting__history_began: one row per connection whose invoices or payments have versions kept: when
-- its history began, the later of the first invoice version's and the first payment version's `valid_from`,
-- so that from then on both are read from history. Before it (and for a connection without history) the
-- books at a date are rebuilt from today's rows.
with invoice_versions as (
    select * from {{ ref('stg_accounting__invoice_versions') }}
),

payment_versions as (
    select * from {{ ref('stg_accounting__payment_versions') }}
),

began as (
    select connection, min(valid_from) as began
    from invoice_versions
    group by connection
    union all
    select connection, min(valid_from) as began
    from payment_versions
    group by connection
),

final as (
    select
        connection,
        max(began) as history_began
    from began
    group by connection
)

select * from final
