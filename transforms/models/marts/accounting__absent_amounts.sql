-- accounting__absent_amounts: one row per live invoice whose status rests on an absent amount (Panora leaves
-- zero amounts out: read as 0 where that decides the status), or whose absent balance could not be compared.
-- An exception list of the report.
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
        source_status,
        status,
        total_amount,
        applied_amount,
        absent_amount_decides,
        balance_not_compared
    from settlement
    where is_receivable and (absent_amount_decides or balance_not_compared)
)

select * from final
