-- accounting__overpaid_invoices: one row per live invoice whose applied payments exceed its total (a refund,
-- a credit or a misapplied payment). An exception list of the report.
with settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

final as (
    select
        connection,
        number,
        customer_name,
        invoice_id,
        currency,
        total_amount,
        applied_amount,
        applied_amount - total_amount as overpaid_by,
        last_payment_date
    from settlement
    where is_receivable and status = 'overpaid'
)

select * from final
