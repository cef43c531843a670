-- accounting__currency_mismatches: one row per application of a payment to an invoice in another currency
-- (not summed into the invoice's applied amount).
SELECT
    a.payment_id,
    a.invoice_id,
    a.connection,
    a.payment_currency,
    a.invoice_currency,
    a.applied_minor,
    CAST(a.applied_minor AS DECIMAL(38, 0)) * c.minor_unit AS applied_amount_in_payment_currency,
    a.transaction_date,
    i.number AS invoice_number
FROM {{ ref('int_accounting__payment_applications') }} AS a
JOIN {{ ref('stg_accounting__invoices') }} AS i ON i.invoice_id = a.invoice_id AND i.connection = a.connection
LEFT JOIN {{ ref('accounting__currencies') }} AS c ON c.code = a.payment_currency
WHERE a.invoice_in_warehouse AND a.payment_currency IS DISTINCT FROM a.invoice_currency
