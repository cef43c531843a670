-- stg_accounting__invoice_line_items: one row per line of a live invoice, with its tracking category names joined in.
WITH names AS ({{ tracking_category_names('invoices__line_items__tracking_categories', ['invoice_id', 'line_index']) }})
SELECT
    l.invoice_id,
    l.line_index,
    l.connection,
    l.description,
    l.quantity,
    coalesce(l.unit_price, 0) AS unit_price_minor,
    coalesce(l.total_amount, 0) AS total_minor,
    CAST(coalesce(l.total_amount, 0) AS DECIMAL(38, 0)) * c.minor_unit AS total_amount,
    l.item_id,
    names.tracking_categories
FROM {{ source('accounting', 'invoices__line_items') }} AS l
JOIN {{ ref('stg_accounting__invoices') }} AS i ON i.invoice_id = l.invoice_id
LEFT JOIN {{ ref('accounting__currencies') }} AS c ON c.code = i.currency
LEFT JOIN names ON names.invoice_id = l.invoice_id AND names.line_index = l.line_index
