-- accounting__duplicate_payments: one row per payment in a group of two or more live payments applied to the same
-- invoice with the same amount on the same date (likely recorded twice).
WITH grouped AS (
    SELECT
        a.*,
        count(*) OVER (PARTITION BY a.connection, a.invoice_id, a.applied_minor, a.transaction_date) AS group_size
    FROM {{ ref('int_accounting__payment_applications') }} AS a
)
SELECT
    g.connection,
    g.invoice_id,
    g.payment_id,
    g.applied_minor,
    CAST(g.applied_minor AS DECIMAL(38, 0)) * c.minor_unit AS applied_amount,
    g.payment_currency AS currency,
    g.transaction_date,
    g.group_size,
    dense_rank() OVER (ORDER BY g.connection, g.invoice_id, g.applied_minor, g.transaction_date) AS duplicate_group
FROM grouped AS g
LEFT JOIN {{ ref('accounting__currencies') }} AS c ON c.code = g.payment_currency
WHERE g.group_size > 1
