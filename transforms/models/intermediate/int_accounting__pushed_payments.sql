-- int_accounting__pushed_payments: one row per payment this tool created through `push` (the ledger says
-- created or confirmed), with the invoice it pays and whether a load has brought the payment in yet. The
-- settlement reads it to tell a provider that has not yet reflected these payments in an invoice's balance
-- (`awaiting_sync`) from a balance that really disagrees. A warehouse push never wrote to has no rows.
{%- set raw = var('raw_schema', target.schema) %}
{%- set ledger = adapter.get_relation(database=target.database, schema=raw, identifier='push_log') %}
{%- set queue = adapter.get_relation(database=target.database, schema=raw, identifier='outbound_payments') %}
{%- if ledger is not none and queue is not none %}
SELECT
    l.external_id,
    q.connection,
    q.invoice_id,
    upper(q.currency) AS currency,
    q.total_amount AS amount_minor,
    l.record_id AS payment_id,
    l.status AS ledger_status,
    p.id IS NOT NULL AS loaded
FROM {{ ledger }} AS l
INNER JOIN {{ queue }} AS q ON q.external_id = l.external_id
LEFT JOIN {{ source('accounting', 'payments') }} AS p ON p.id = l.record_id AND p.deleted_at IS NULL
WHERE l.kind = 'payment' AND l.status IN ('created', 'confirmed') AND q.invoice_id IS NOT NULL
{%- else %}
SELECT
    CAST(NULL AS {{ dbt.type_string() }}) AS external_id,
    CAST(NULL AS {{ dbt.type_string() }}) AS connection,
    CAST(NULL AS {{ dbt.type_string() }}) AS invoice_id,
    CAST(NULL AS {{ dbt.type_string() }}) AS currency,
    CAST(NULL AS {{ dbt.type_bigint() }}) AS amount_minor,
    CAST(NULL AS {{ dbt.type_string() }}) AS payment_id,
    CAST(NULL AS {{ dbt.type_string() }}) AS ledger_status,
    CAST(NULL AS BOOLEAN) AS loaded
WHERE 1 = 0
{%- endif %}
