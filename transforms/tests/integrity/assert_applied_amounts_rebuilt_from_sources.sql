-- Integrity: each live invoice's applied amount, rebuilt straight from the loaded payments (their invoice line
-- items, else their invoice_id; live payments in the invoice's currency only), equals the settlement's.
-- Fails with the invoices that differ.
WITH live_payments AS (
    SELECT id, connection, invoice_id, upper(currency) AS currency, coalesce(total_amount, 0) AS total_amount
    FROM {{ source('accounting', 'payments') }}
    WHERE deleted_at IS NULL
),
invoice_lines AS (
    SELECT l.payment_id, l.related_object_id AS invoice_id, coalesce(l.applied_amount, 0) AS amount
    FROM {{ source('accounting', 'payments__line_items') }} AS l
    WHERE upper(l.related_object_type) = 'INVOICE' AND l.related_object_id IS NOT NULL
),
applied AS (
    SELECT p.connection, l.invoice_id, p.currency, l.amount
    FROM invoice_lines AS l
    JOIN live_payments AS p ON p.id = l.payment_id
    UNION ALL
    SELECT p.connection, p.invoice_id, p.currency, p.total_amount
    FROM live_payments AS p
    WHERE p.invoice_id IS NOT NULL AND p.id NOT IN (SELECT payment_id FROM invoice_lines)
),
rebuilt AS (
    SELECT i.id AS invoice_id, coalesce(sum(a.amount), 0) AS applied_minor
    FROM {{ source('accounting', 'invoices') }} AS i
    LEFT JOIN applied AS a
        ON a.invoice_id = i.id AND a.connection = i.connection AND a.currency = upper(i.currency)
    WHERE i.deleted_at IS NULL
    GROUP BY i.id
)
SELECT r.invoice_id, r.applied_minor AS rebuilt, s.applied_minor AS modelled
FROM rebuilt AS r
FULL OUTER JOIN {{ ref('accounting__invoice_settlement') }} AS s ON s.invoice_id = r.invoice_id
WHERE r.applied_minor IS DISTINCT FROM s.applied_minor
