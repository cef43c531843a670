-- accounting__unapplied_payments: one row per live payment that is not applied to an invoice in the warehouse:
-- it names no invoice at all, or only invoices the warehouse does not have (for that connection).
SELECT
    p.*,
    CASE
        WHEN NOT EXISTS (SELECT 1 FROM {{ ref('int_accounting__payment_applications') }} AS a WHERE a.payment_id = p.payment_id)
            THEN 'no_invoice'
        ELSE 'invoice_not_in_warehouse'
    END AS reason,
    (SELECT {{ dbt.listagg('a.invoice_id', "', '", 'order by a.invoice_id') }} FROM {{ ref('int_accounting__payment_applications') }} AS a
     WHERE a.payment_id = p.payment_id AND NOT a.invoice_in_warehouse) AS missing_invoice_ids
FROM {{ ref('stg_accounting__payments') }} AS p
WHERE NOT EXISTS (
    SELECT 1 FROM {{ ref('int_accounting__payment_applications') }} AS a WHERE a.payment_id = p.payment_id AND a.invoice_in_warehouse
)
