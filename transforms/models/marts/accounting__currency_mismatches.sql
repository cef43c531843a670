-- accounting__currency_mismatches: one row per application of a payment to an invoice in another currency
-- (not summed into the invoice's applied amount).
with applications as (
    select *
    from {{ ref('int_accounting__payment_applications') }}
    where on_books
),

invoices as (
    select * from {{ ref('int_accounting__invoices_at_as_of') }}
),

contacts as (
    select * from {{ ref('stg_accounting__contacts') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

final as (
    select
        applications.payment_id,
        applications.invoice_id,
        applications.connection,
        applications.payment_currency,
        applications.invoice_currency,
        applications.applied_minor,
        cast(applications.applied_minor as decimal(38, 0)) * currencies.minor_unit
            as applied_amount_in_payment_currency,
        applications.transaction_date,
        invoices.number as invoice_number,
        contacts.name as customer_name
    from applications
    inner join invoices
        on invoices.invoice_id = applications.invoice_id and invoices.connection = applications.connection
    left join currencies on currencies.code = applications.payment_currency
    left join contacts
        on contacts.contact_id = invoices.contact_id and contacts.connection = applications.connection
    where applications.invoice_in_warehouse
        and applications.payment_currency is distinct from applications.invoice_currency
)

select * from final
