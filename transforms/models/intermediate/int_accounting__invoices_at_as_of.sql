-- int_accounting__invoices_at_as_of: one row per invoice as the books held it at the as-of date
-- (macros/books_on.sql): the version the loads had seen by the end of that day where history holds it, else
-- today's row (`version_seen_at` NULL). Every invoice, whatever its date: the settlement keeps those booked on
-- or before the as-of date.
with dates as (
    {{ as_of_dates() }}
),

{{ books_on('dates') }},

final as (
    select {{ column_names(invoice_columns('invoices'), 'invoices_at') }},
        invoices_at.version_seen_at
    from invoices_at
)

select * from final
