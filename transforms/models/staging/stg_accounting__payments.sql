-- stg_accounting__payments: one row per live payment. Amounts as in stg_invoices; an absent total_amount is 0.
-- `booked_on` is the day the payment enters the books: its transaction date (Panora's `transaction_date`,
-- Rootfi's `payment_date`), else the day it was created; NULL when it has neither (then it is on the books
-- at every as-of date).
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
    select
        payments.id as payment_id,
        payments.connection,
        payments.provider,
        payments.invoice_id,
        {{ utc_date('payments.transaction_date') }} as transaction_date,
        upper(payments.currency) as currency,
        currencies.exponent as currency_exponent,
        currencies.exponent is null as currency_unknown,
        coalesce(payments.total_amount, 0) as total_minor,
        payments.total_amount is null as total_absent,
        cast(coalesce(payments.total_amount, 0) as decimal(38, 0)) * currencies.minor_unit as total_amount,
        payments.exchange_rate,
        payments.type as payment_type,
        payments.contact_id,
        payments.account_id,
        payments.remote_id,
        category_names.tracking_categories,
        payments.created_at,
        coalesce({{ utc_date('payments.transaction_date') }}, {{ utc_date('payments.created_at') }}) as booked_on
    from payments
    left join currencies on currencies.code = upper(payments.currency)
    left join category_names on category_names.payment_id = payments.id
    where payments.deleted_at is null
)

select * from final
