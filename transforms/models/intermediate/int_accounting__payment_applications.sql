-- int_accounting__payment_applications: one row per (payment, invoice) a live payment is applied to.
-- A payment applies through its line items (related_object_type INVOICE, applied_amount) or through its
-- `invoice_id` (its whole total). The same payment can carry both for the same application, so each is
-- counted once: when a payment has invoice line items, they are the application; its `invoice_id` is
-- used only when it has none.
WITH line_applications AS (
    SELECT
        l.payment_id,
        l.related_object_id AS invoice_id,
        sum(coalesce(l.applied_amount, 0)) AS applied_minor,
        'line_items' AS applied_via
    FROM {{ source('accounting', 'payments__line_items') }} AS l
    JOIN {{ ref('stg_accounting__payments') }} AS p ON p.payment_id = l.payment_id
    WHERE upper(l.related_object_type) = 'INVOICE' AND l.related_object_id IS NOT NULL
    GROUP BY l.payment_id, l.related_object_id
),
header_applications AS (
    SELECT p.payment_id, p.invoice_id, p.total_minor AS applied_minor, 'invoice_id' AS applied_via
    FROM {{ ref('stg_accounting__payments') }} AS p
    WHERE p.invoice_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM line_applications AS la WHERE la.payment_id = p.payment_id)
),
applications AS (
    SELECT * FROM line_applications
    UNION ALL
    SELECT * FROM header_applications
)
SELECT
    a.payment_id,
    a.invoice_id,
    p.connection,
    a.applied_minor,
    a.applied_via,
    p.currency AS payment_currency,
    p.transaction_date,
    i.invoice_id IS NOT NULL AS invoice_in_warehouse,
    i.currency AS invoice_currency
FROM applications AS a
JOIN {{ ref('stg_accounting__payments') }} AS p ON p.payment_id = a.payment_id
LEFT JOIN {{ ref('stg_accounting__invoices') }} AS i ON i.invoice_id = a.invoice_id AND i.connection = p.connection
