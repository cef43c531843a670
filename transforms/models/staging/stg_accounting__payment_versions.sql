-- stg_accounting__payment_versions: one row per version of a payment that a load saw (the raw
-- `payments_history`): the columns of stg_accounting__payments as that version had them, valid from the
-- moment a load saw it (`valid_from`) until the next version was seen (`valid_to`, NULL for the current one).
-- Where that version applied the payment is in stg_accounting__payment_line_item_versions (the lines with the
-- same `valid_from`). As stg_accounting__invoice_versions otherwise: empty where no history is kept.
{%- set history = optional_raw_relation('payments_history') %}
{%- set history_table = 'payments_history' if history is not none else 'payments' %}
with payments as (
    {%- if history is not none %}
    select * from {{ source('accounting', 'payments_history') }}
    {%- else %}
    select *, cast(null as timestamp with time zone) as _seen_at
    from {{ source('accounting', 'payments') }}
    where 1 = 0
    {%- endif %}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

category_names as (
    {{ tracking_category_names('payments__tracking_categories', ['payment_id']) }}
),

versions as (
    select
        {{- select_columns(payment_columns('payments_history')) }},
        payments._seen_at as valid_from,
        payments.deleted_at is not null as is_deleted,
        {{ optional_column(history_table, 'payments', '_record_hash', dbt.type_string()) }} as record_hash,
        {{ optional_column(history_table, 'payments', '_dlt_load_id', dbt.type_string()) }} as load_id
    from payments
    left join currencies on currencies.code = upper(payments.currency)
    left join category_names on category_names.payment_id = payments.id
),

final as (
    select
        versions.*,
        lead(versions.valid_from) over (partition by versions.payment_id order by versions.valid_from) as valid_to,
        versions.payment_id || ' ' || cast(versions.valid_from as {{ dbt.type_string() }}) as version_key
    from versions
)

select * from final
