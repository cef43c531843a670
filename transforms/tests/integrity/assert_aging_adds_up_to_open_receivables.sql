-- Integrity: per connection and currency, the aging buckets add up to the open amount of the invoices in
-- receivables, and to the summary's open amount.
WITH aging AS (
    SELECT connection, currency, sum(open_minor) AS open_minor, sum(open_amount) AS open_amount
    FROM {{ ref('accounting__receivables_aging') }}
    GROUP BY connection, currency
),
settlement AS (
    SELECT connection, currency, sum(open_minor) AS open_minor
    FROM {{ ref('accounting__invoice_settlement') }}
    WHERE NOT excluded_from_receivables AND open_minor > 0
    GROUP BY connection, currency
),
summary AS (
    SELECT connection, currency, sum(open_amount) AS open_amount
    FROM {{ ref('accounting__reconciliation_summary') }}
    GROUP BY connection, currency
)
SELECT coalesce(a.connection, s.connection) AS connection, coalesce(a.currency, s.currency) AS currency,
       a.open_minor AS aged, s.open_minor AS open_in_settlement, m.open_amount AS open_in_summary
FROM aging AS a
FULL OUTER JOIN settlement AS s ON s.connection = a.connection AND s.currency IS NOT DISTINCT FROM a.currency
LEFT JOIN summary AS m
    ON m.connection = coalesce(a.connection, s.connection)
    AND m.currency IS NOT DISTINCT FROM coalesce(a.currency, s.currency)
WHERE coalesce(a.open_minor, 0) <> coalesce(s.open_minor, 0)
   OR coalesce(a.open_amount, 0) <> coalesce(m.open_amount, 0)
