-- accounting__top_debtors: one row per connection, currency and customer owing an open amount at the as-of
-- date, ranked by that amount within the connection and currency (1 owes the most): what is open, what of it
-- is overdue, over how many invoices, and the oldest due date among them.
with open_receivables as (
    select * from {{ ref('int_accounting__open_receivables') }}
),

per_customer as (
    select
        connection,
        currency,
        customer_id,
        customer_name,
        count(*) as invoices,
        sum(open_minor) as open_minor,
        sum(open_amount) as open_amount,
        coalesce(sum(open_amount) filter (where bucket_order > 0), 0) as overdue_amount,
        min(due_date) as oldest_due_date
    from open_receivables
    group by connection, currency, customer_id, customer_name
),

final as (
    select
        connection,
        currency,
        row_number() over (
            partition by connection, currency
            order by open_minor desc, customer_name, customer_id
        ) as debtor_rank,
        customer_id,
        customer_name,
        invoices,
        open_minor,
        open_amount,
        overdue_amount,
        oldest_due_date
    from per_customer
)

select * from final
