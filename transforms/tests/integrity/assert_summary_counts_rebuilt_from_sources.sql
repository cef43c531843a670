-- Integrity: the summary's invoice and unapplied payment counts per connection and currency equal what the
-- loaded tables hold: live invoices, and live payments applied to no invoice in the warehouse.
WITH live_invoices AS (
    SELECT connection, upper(currency) AS currency, count(*) AS invoices
    FROM {{ source('accounting', 'invoices') }}
    WHERE deleted_at IS NULL
    GROUP BY connection, upper(currency)
),
summary AS (
    SELECT connection, currency, sum(invoices) AS invoices
    FROM {{ ref('accounting__reconciliation_summary') }}
    GROUP BY connection, currency
)
SELECT coalesce(l.connection, s.connection) AS connection, coalesce(l.currency, s.currency) AS currency,
       l.invoices AS loaded, s.invoices AS summarised
FROM live_invoices AS l
FULL OUTER JOIN summary AS s ON s.connection = l.connection AND s.currency IS NOT DISTINCT FROM l.currency
WHERE coalesce(l.invoices, 0) <> coalesce(s.invoices, 0)
