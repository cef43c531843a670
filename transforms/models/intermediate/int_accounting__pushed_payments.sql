-- int_accounting__pushed_payments: one row per payment this tool created through `push` (the ledger says
-- created or confirmed), with the invoice it pays and whether a load has brought the payment in yet. The
-- settlement reads it to tell a provider that has not yet reflected these payments in an invoice's balance
-- (`awaiting_sync`) from a balance that really disagrees. A warehouse push never wrote to has no rows.
{%- set raw = var('raw_schema', target.schema) %}
{%- set ledger = adapter.get_relation(database=target.database, schema=raw, identifier='push_log') %}
{%- set queue = adapter.get_relation(database=target.database, schema=raw, identifier='outbound_payments') %}
{%- if ledger is not none and queue is not none %}
with push_log as (
    select * from {{ ledger }}
),

outbound_payments as (
    select * from {{ queue }}
),

payments as (
    select * from {{ source('accounting', 'payments') }}
),

final as (
    select
        push_log.external_id,
        outbound_payments.connection,
        outbound_payments.invoice_id,
        upper(outbound_payments.currency) as currency,
        outbound_payments.total_amount as amount_minor,
        outbound_payments.transaction_date,
        push_log.record_id as payment_id,
        push_log.status as ledger_status,
        payments.id is not null as loaded
    from push_log
    inner join outbound_payments on outbound_payments.external_id = push_log.external_id
    left join payments on payments.id = push_log.record_id and payments.deleted_at is null
    where push_log.kind = 'payment'
        and push_log.status in ('created', 'confirmed')
        and outbound_payments.invoice_id is not null
)
{%- else %}
with final as (
    select
        cast(null as {{ dbt.type_string() }}) as external_id,
        cast(null as {{ dbt.type_string() }}) as connection,
        cast(null as {{ dbt.type_string() }}) as invoice_id,
        cast(null as {{ dbt.type_string() }}) as currency,
        cast(null as {{ dbt.type_bigint() }}) as amount_minor,
        cast(null as date) as transaction_date,
        cast(null as {{ dbt.type_string() }}) as payment_id,
        cast(null as {{ dbt.type_string() }}) as ledger_status,
        cast(null as boolean) as loaded
    where 1 = 0
)
{%- endif %}

select * from final
