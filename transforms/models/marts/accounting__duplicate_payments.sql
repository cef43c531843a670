-- accounting__duplicate_payments: one row per payment in a group of two or more live payments applied to the same
-- invoice with the same amount on the same date (likely recorded twice).
with applications as (
    select *
    from {{ ref('int_accounting__payment_applications') }}
    where on_books
),

payments as (
    select * from {{ ref('int_accounting__payments_at_as_of') }}
),

contacts as (
    select * from {{ ref('stg_accounting__contacts') }}
),

invoices as (
    select * from {{ ref('int_accounting__invoices_at_as_of') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

grouped as (
    select
        *,
        count(*) over (partition by connection, invoice_id, applied_minor, transaction_date) as group_size
    from applications
),

final as (
    select
        grouped.connection,
        grouped.invoice_id,
        grouped.payment_id,
        grouped.applied_minor,
        cast(grouped.applied_minor as decimal(38, 0)) * currencies.minor_unit as applied_amount,
        grouped.payment_currency as currency,
        grouped.transaction_date,
        grouped.group_size,
        dense_rank() over (
            order by grouped.connection, grouped.invoice_id, grouped.applied_minor, grouped.transaction_date
        ) as duplicate_group,
        contacts.name as customer_name,
        invoices.number as invoice_number
    from grouped
    left join currencies on currencies.code = grouped.payment_currency
    inner join payments on payments.payment_id = grouped.payment_id
    left join contacts on contacts.contact_id = payments.contact_id and contacts.connection = grouped.connection
    left join invoices on invoices.invoice_id = grouped.invoice_id and invoices.connection = grouped.connection
    where grouped.group_size > 1
)

select * from final
