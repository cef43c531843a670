-- accounting__receivables_aging: one row per connection, currency and bucket: the OPEN amount (total - applied, never
-- the original amount) of invoices that are neither void nor draft, aged from the due date to the as-of
-- date. Buckets have inclusive upper bounds and do not overlap: current (not yet due, or no due date),
-- 1-30, 31-60, 61-90, 90+ days past due.
WITH open_invoices AS (
    SELECT
        s.connection,
        s.currency,
        s.open_minor,
        s.open_amount,
        CASE WHEN s.due_date IS NULL THEN 0 ELSE {{ dbt.datediff('s.due_date', as_of_date(), 'day') }} END AS days_past_due
    FROM {{ ref('accounting__invoice_settlement') }} AS s
    WHERE NOT s.excluded_from_receivables AND s.open_minor > 0
),
bucketed AS (
    SELECT
        *,
        CASE
            WHEN days_past_due <= 0 THEN 0
            WHEN days_past_due <= 30 THEN 1
            WHEN days_past_due <= 60 THEN 2
            WHEN days_past_due <= 90 THEN 3
            ELSE 4
        END AS bucket_order
    FROM open_invoices
)
SELECT
    connection,
    currency,
    bucket_order,
    CASE bucket_order WHEN 0 THEN 'current' WHEN 1 THEN '1-30' WHEN 2 THEN '31-60' WHEN 3 THEN '61-90' ELSE '90+' END
        AS bucket,
    count(*) AS invoices,
    sum(open_minor) AS open_minor,
    sum(open_amount) AS open_amount
FROM bucketed
GROUP BY connection, currency, bucket_order
