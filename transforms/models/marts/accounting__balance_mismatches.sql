-- accounting__balance_mismatches: one row per live invoice whose reported balance differs from invoiced
-- minus applied payments (floored at 0) by a minor unit or more. An exception list of the report.
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
        expected_balance,
        reported_balance,
        absent_amount_decides,
        due_date
    from settlement
    where is_receivable and status = 'balance_mismatch'
)

select * from final
