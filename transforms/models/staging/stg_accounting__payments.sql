-- stg_accounting__payments: one row per live payment. Amounts as in stg_invoices; an absent total_amount is 0.
-- `booked_on` is the day the payment enters the books: its transaction date (Panora's and Merge's
-- `transaction_date`, Rootfi's `payment_date`), else the day it was created; NULL when it has neither (then it
-- is on the books at every as-of date). The columns are `payment_columns` (macros/record_columns.sql), as in
-- stg_accounting__payment_versions.
with payments as (
    select * from {{ source('accounting', 'payments') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

category_names as (
    {{ tracking_category_names('payments__tracking_categories', ['payment_id']) }}
),

final as (
    select {{ select_columns(payment_columns('payments')) }}
    from payments
    left join currencies on currencies.code = upper(payments.currency)
    left join category_names on category_names.payment_id = payments.id
    where payments.deleted_at is null
)

select * from final
