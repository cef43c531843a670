-- accounting__invoice_settlement: one row per live invoice: what was invoiced, what payments applied to it (in the
-- invoice's currency; other currencies are listed in currency_mismatches, not summed), the balance that
-- implies, the balance the accounting system reports, and a status:
--   void / draft      excluded from receivables
--   awaiting_sync     the reported balance differs from total - applied only by payments this tool created
--                     (`push`) that the provider has not reflected yet: in the balance (`awaiting_balance_minor`,
--                     the payment is loaded) or in its list of payments (`awaiting_listing_minor`)
--   balance_mismatch  the reported balance differs from total - applied (floored at 0) by a minor unit or more
--   unpaid / partially_paid / settled / overpaid   by applied against total
-- ASSUMPTION: see stg_invoices; `absent_amount_decides` marks the rows whose status depends on reading an
-- absent amount as 0, `balance_not_compared` those whose absent balance could not be compared.
WITH applied AS (
    SELECT
        a.invoice_id,
        sum(a.applied_minor) FILTER (WHERE a.payment_currency = a.invoice_currency) AS applied_minor,
        count(*) AS applications,
        count(*) FILTER (WHERE a.payment_currency IS DISTINCT FROM a.invoice_currency) AS foreign_currency_applications,
        min(a.transaction_date) AS first_payment_date,
        max(a.transaction_date) AS last_payment_date
    FROM {{ ref('int_accounting__payment_applications') }} AS a
    WHERE a.invoice_in_warehouse
    GROUP BY a.invoice_id
),
pushed AS (
    -- payments this tool created, in the invoice's currency: loaded ones are in `applied` already
    SELECT
        p.invoice_id,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.loaded), 0) AS pushed_loaded_minor,
        coalesce(sum(p.amount_minor) FILTER (WHERE NOT p.loaded), 0) AS pushed_unlisted_minor,
        {{ dbt.listagg('p.external_id', "', '", "order by p.external_id") }} AS pushed_external_ids
    FROM {{ ref('int_accounting__pushed_payments') }} AS p
    INNER JOIN {{ ref('stg_accounting__invoices') }} AS i
        ON i.invoice_id = p.invoice_id AND i.connection = p.connection AND i.currency = p.currency
    GROUP BY p.invoice_id
),
settled AS (
    SELECT
        i.*,
        coalesce(ap.applied_minor, 0) AS applied_minor,
        coalesce(ap.applications, 0) AS applications,
        coalesce(ap.foreign_currency_applications, 0) AS foreign_currency_applications,
        ap.first_payment_date,
        ap.last_payment_date,
        i.total_minor - coalesce(ap.applied_minor, 0) AS expected_balance_minor,
        coalesce(pu.pushed_loaded_minor, 0) AS pushed_loaded_minor,
        coalesce(pu.pushed_unlisted_minor, 0) AS pushed_unlisted_minor,
        pu.pushed_external_ids
    FROM {{ ref('stg_accounting__invoices') }} AS i
    LEFT JOIN applied AS ap ON ap.invoice_id = i.invoice_id
    LEFT JOIN pushed AS pu ON pu.invoice_id = i.invoice_id
),
classified AS (
    SELECT
        s.*,
        CASE
            WHEN s.excluded_from_receivables THEN lower(s.source_status)
            WHEN s.reported_balance_minor IS NOT NULL
                 AND s.reported_balance_minor <> greatest(s.expected_balance_minor, 0)
                 AND (s.pushed_loaded_minor > 0 OR s.pushed_unlisted_minor > 0)
                 AND s.reported_balance_minor IN (
                     greatest(s.expected_balance_minor + s.pushed_loaded_minor, 0),
                     greatest(s.expected_balance_minor - s.pushed_unlisted_minor, 0),
                     greatest(s.expected_balance_minor + s.pushed_loaded_minor - s.pushed_unlisted_minor, 0)
                 ) THEN 'awaiting_sync'
            WHEN s.reported_balance_minor IS NOT NULL
                 AND s.reported_balance_minor <> greatest(s.expected_balance_minor, 0) THEN 'balance_mismatch'
            WHEN s.applied_minor = 0 THEN 'unpaid'
            WHEN s.applied_minor < s.total_minor THEN 'partially_paid'
            WHEN s.applied_minor = s.total_minor THEN 'settled'
            ELSE 'overpaid'
        END AS status
    FROM settled AS s
)
SELECT
    c.*,
    CAST(c.applied_minor AS DECIMAL(38, 0)) * cur.minor_unit AS applied_amount,
    CAST(c.expected_balance_minor AS DECIMAL(38, 0)) * cur.minor_unit AS expected_balance,
    CAST(c.reported_balance_minor AS DECIMAL(38, 0)) * cur.minor_unit AS reported_balance,
    CAST(greatest(c.expected_balance_minor, 0) AS DECIMAL(38, 0)) * cur.minor_unit AS open_amount,
    greatest(c.expected_balance_minor, 0) AS open_minor,
    CASE WHEN c.status = 'awaiting_sync' THEN
        CASE
            WHEN c.reported_balance_minor = greatest(c.expected_balance_minor + c.pushed_loaded_minor, 0)
                THEN 'the balance to reflect the payment(s) ' || c.pushed_external_ids || ' pushed by this tool'
            WHEN c.reported_balance_minor = greatest(c.expected_balance_minor - c.pushed_unlisted_minor, 0)
                THEN 'the payment(s) ' || c.pushed_external_ids || ' pushed by this tool to be listed (next load)'
            ELSE 'the provider to reflect the payment(s) ' || c.pushed_external_ids || ' pushed by this tool'
        END
    END AS awaiting,
    NOT c.excluded_from_receivables AND (
        (c.balance_absent AND c.source_status = 'PAID' AND greatest(c.expected_balance_minor, 0) <> 0)
        OR (c.total_absent AND c.applied_minor > 0)
    ) AS absent_amount_decides,
    NOT c.excluded_from_receivables AND c.balance_absent AND c.source_status <> 'PAID' AS balance_not_compared
FROM classified AS c
LEFT JOIN {{ ref('accounting__currencies') }} AS cur ON cur.code = c.currency
