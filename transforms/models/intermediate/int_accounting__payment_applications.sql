-- int_accounting__payment_applications: one row per (payment, invoice) a payment applies to, as the books held
-- them at the as-of date (macros/books_on.sql: the payment version the loads had seen, with its own line
-- items, where history holds it). A payment applies through its line items (related_object_type INVOICE,
-- applied_amount) or through its `invoice_id` (its whole total). The same payment can carry both for the same
-- application, so each is counted once: when a payment has invoice line items, they are the application; its
-- `invoice_id` is used only when it has none. `applied_on` is the day the application enters the books: the
-- line's `applied_date` (Panora's and Merge's; the latest of its lines), else the payment's `booked_on` (its
-- transaction date); NULL when neither is known. `on_books`: applied on or before the as-of date (or undated).
with dates as (
    {{ as_of_dates() }}
),

{{ books_on('dates') }},

final as (
    select
        payment_id,
        invoice_id,
        connection,
        applied_minor,
        applied_via,
        payment_currency,
        transaction_date,
        invoice_in_warehouse,
        invoice_currency,
        applied_on,
        on_books
    from applications_at
)

select * from final
