-- accounting__overpaid_invoices: one row per live invoice whose applied payments exceed its total (a refund,
-- a credit or a misapplied payment). An exception list of the report.
SELECT
    connection,
    number,
    invoice_id,
    currency,
    total_amount,
    applied_amount,
    applied_amount - total_amount AS overpaid_by,
    last_payment_date
FROM {{ ref('accounting__invoice_settlement') }}
WHERE status = 'overpaid'
