-- accounting__unapplied_payments: one row per live payment that is not applied to an invoice in the warehouse:
-- it names no invoice at all, or only invoices the warehouse does not have (for that connection).
with payments as (
    select * from {{ ref('stg_accounting__payments') }}
),

applications as (
    select * from {{ ref('int_accounting__payment_applications') }}
),

missing_invoices as (
    select
        payment_id,
        {{ dbt.listagg('invoice_id', "', '", 'order by invoice_id') }} as missing_invoice_ids
    from applications
    where not invoice_in_warehouse
    group by payment_id
),

final as (
    select
        payments.*,
        case
            when missing_invoices.payment_id is null then 'no_invoice'
            else 'invoice_not_in_warehouse'
        end as reason,
        missing_invoices.missing_invoice_ids
    from payments
    left join missing_invoices on missing_invoices.payment_id = payments.payment_id
    where not exists (
        select 1
        from applications
        where applications.payment_id = payments.payment_id and applications.invoice_in_warehouse
    )
)

select * from final
