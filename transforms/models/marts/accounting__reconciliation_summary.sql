-- reconciliation_summary: one row per connection and currency: invoice counts and amounts per status,
-- open receivables, and the exception counts. Void and draft invoices are counted but not in the amounts.
WITH invoices AS (
    SELECT
        connection,
        currency,
        count(*) AS invoices,
        count(*) FILTER (WHERE status = 'settled') AS settled,
        count(*) FILTER (WHERE status = 'partially_paid') AS partially_paid,
        count(*) FILTER (WHERE status = 'overpaid') AS overpaid,
        count(*) FILTER (WHERE status = 'unpaid') AS unpaid,
        count(*) FILTER (WHERE status = 'balance_mismatch') AS balance_mismatch,
        count(*) FILTER (WHERE status = 'awaiting_sync') AS awaiting_sync,
        count(*) FILTER (WHERE excluded_from_receivables) AS void_or_draft,
        count(*) FILTER (WHERE absent_amount_decides) AS absent_amount_decides,
        coalesce(sum(total_amount) FILTER (WHERE NOT excluded_from_receivables), 0) AS invoiced_amount,
        coalesce(sum(applied_amount) FILTER (WHERE NOT excluded_from_receivables), 0) AS applied_amount,
        coalesce(sum(open_amount) FILTER (WHERE NOT excluded_from_receivables), 0) AS open_amount
    FROM {{ ref('accounting__invoice_settlement') }}
    GROUP BY connection, currency
),
unapplied AS (
    SELECT connection, currency, count(*) AS unapplied_payments, sum(total_amount) AS unapplied_amount
    FROM {{ ref('accounting__unapplied_payments') }}
    GROUP BY connection, currency
),
keys AS (
    SELECT connection, currency FROM invoices
    UNION
    SELECT connection, currency FROM unapplied
)
SELECT
    k.connection,
    k.currency,
    coalesce(i.invoices, 0) AS invoices,
    coalesce(i.settled, 0) AS settled,
    coalesce(i.partially_paid, 0) AS partially_paid,
    coalesce(i.overpaid, 0) AS overpaid,
    coalesce(i.unpaid, 0) AS unpaid,
    coalesce(i.balance_mismatch, 0) AS balance_mismatch,
    coalesce(i.awaiting_sync, 0) AS awaiting_sync,
    coalesce(i.void_or_draft, 0) AS void_or_draft,
    coalesce(i.absent_amount_decides, 0) AS absent_amount_decides,
    coalesce(i.invoiced_amount, 0) AS invoiced_amount,
    coalesce(i.applied_amount, 0) AS applied_amount,
    coalesce(i.open_amount, 0) AS open_amount,
    coalesce(u.unapplied_payments, 0) AS unapplied_payments,
    coalesce(u.unapplied_amount, 0) AS unapplied_amount,
    (SELECT count(*) FROM {{ ref('accounting__currency_mismatches') }} AS m
     WHERE m.connection = k.connection AND m.invoice_currency = k.currency) AS currency_mismatches,
    (SELECT count(*) FROM {{ ref('accounting__duplicate_payments') }} AS d
     WHERE d.connection = k.connection AND d.currency = k.currency) AS duplicate_payments
FROM keys AS k
LEFT JOIN invoices AS i ON i.connection = k.connection AND i.currency IS NOT DISTINCT FROM k.currency
LEFT JOIN unapplied AS u ON u.connection = k.connection AND u.currency IS NOT DISTINCT FROM k.currency
