-- Integrity: every live payment is either applied to an invoice in the warehouse or listed as unapplied,
-- never both and never neither.
WITH applied AS (
    SELECT DISTINCT payment_id FROM {{ ref('int_accounting__payment_applications') }} WHERE invoice_in_warehouse
),
unapplied AS (
    SELECT payment_id FROM {{ ref('accounting__unapplied_payments') }}
)
SELECT p.id AS payment_id,
       p.id IN (SELECT payment_id FROM applied) AS applied,
       p.id IN (SELECT payment_id FROM unapplied) AS unapplied
FROM {{ source('accounting', 'payments') }} AS p
WHERE p.deleted_at IS NULL
  AND (p.id IN (SELECT payment_id FROM applied)) = (p.id IN (SELECT payment_id FROM unapplied))
