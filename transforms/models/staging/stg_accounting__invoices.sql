-- stg_accounting__invoices: one row per live invoice (deleted ones stay reachable in the raw `invoices` table).
-- Amounts: `*_minor` in the currency's integer minor units as loaded; `*_amount` in major units, converted
-- with the currency's ISO 4217 exponent (JPY 0, EUR 2, KWD 3), never by a fixed 100.
-- ASSUMPTION (Panora drops money fields equal to 0): an absent total_amount is 0; an absent balance is 0 on
-- a PAID invoice and UNKNOWN on any other (not compared; `balance_absent` says so downstream).
WITH names AS ({{ tracking_category_names('invoices__tracking_categories', ['invoice_id']) }})
SELECT
    i.id AS invoice_id,
    i.connection,
    i.provider,
    i.number,
    upper(i.status) AS source_status,
    i.type,
    {{ utc_date('i.issue_date') }} AS issue_date,
    {{ utc_date('i.due_date') }} AS due_date,
    upper(i.currency) AS currency,
    c.exponent AS currency_exponent,
    c.exponent IS NULL AS currency_unknown,
    coalesce(i.total_amount, 0) AS total_minor,
    i.total_amount IS NULL AS total_absent,
    CASE
        WHEN i.balance IS NOT NULL THEN i.balance
        WHEN upper(i.status) = 'PAID' THEN 0
    END AS reported_balance_minor,
    i.balance IS NULL AS balance_absent,
    CAST(coalesce(i.total_amount, 0) AS DECIMAL(38, 0)) * c.minor_unit AS total_amount,
    CAST(coalesce(i.sub_total, 0) AS DECIMAL(38, 0)) * c.minor_unit AS sub_total_amount,
    CAST(coalesce(i.total_tax_amount, 0) AS DECIMAL(38, 0)) * c.minor_unit AS tax_amount,
    i.exchange_rate,
    i.contact_id,
    upper(i.status) IN ('VOID', 'DRAFT', 'DELETED') AS excluded_from_receivables,
    names.tracking_categories,
    i.created_at,
    i.modified_at
FROM {{ source('accounting', 'invoices') }} AS i
LEFT JOIN {{ ref('accounting__currencies') }} AS c ON c.code = upper(i.currency)
LEFT JOIN names ON names.invoice_id = i.id
WHERE i.deleted_at IS NULL
