-- int_accounting__payments_at_as_of: one row per payment as the books held it at the as-of date, as
-- int_accounting__invoices_at_as_of does for invoices. Every payment, whatever its date.
with dates as (
    {{ as_of_dates() }}
),

{{ books_on('dates') }},

final as (
    select {{ column_names(payment_columns('payments'), 'payments_at') }},
        payments_at.version_seen_at
    from payments_at
)

select * from final
