-- stg_accounting__payments: one row per live payment. Amounts as in stg_invoices; an absent total_amount is 0.
WITH names AS ({{ tracking_category_names('payments__tracking_categories', ['payment_id']) }})
SELECT
    p.id AS payment_id,
    p.connection,
    p.provider,
    p.invoice_id,
    {{ utc_date('p.transaction_date') }} AS transaction_date,
    upper(p.currency) AS currency,
    c.exponent AS currency_exponent,
    c.exponent IS NULL AS currency_unknown,
    coalesce(p.total_amount, 0) AS total_minor,
    p.total_amount IS NULL AS total_absent,
    CAST(coalesce(p.total_amount, 0) AS DECIMAL(38, 0)) * c.minor_unit AS total_amount,
    p.exchange_rate,
    p.type AS payment_type,
    p.contact_id,
    p.account_id,
    p.remote_id,
    names.tracking_categories,
    p.created_at
FROM {{ source('accounting', 'payments') }} AS p
LEFT JOIN {{ ref('accounting__currencies') }} AS c ON c.code = upper(p.currency)
LEFT JOIN names ON names.payment_id = p.id
WHERE p.deleted_at IS NULL
