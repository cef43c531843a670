-- stg_accounting__invoice_versions: one row per version of an invoice that a load saw (the raw
-- `invoices_history`, kept by the load itself): the columns of stg_accounting__invoices as that version had
-- them, valid from the moment a load saw it (`valid_from`) until the next version was seen (`valid_to`, NULL
-- for the version still current). A version marked deleted (`is_deleted`) says the invoice was gone from then
-- on. A version is a change of content: Panora's nightly rewrite of `modified_at` makes none. Tracking
-- category names are today's. A warehouse loaded before history was kept has no history table: the model is
-- then empty, and every as-of date is rebuilt from today's rows (stg_accounting__invoices).
{%- set history = optional_raw_relation('invoices_history') %}
{%- set history_table = 'invoices_history' if history is not none else 'invoices' %}
with invoices as (
    {%- if history is not none %}
    select * from {{ source('accounting', 'invoices_history') }}
    {%- else %}
    select *, cast(null as timestamp with time zone) as _seen_at
    from {{ source('accounting', 'invoices') }}
    where 1 = 0
    {%- endif %}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

category_names as (
    {{ tracking_category_names('invoices__tracking_categories', ['invoice_id']) }}
),

versions as (
    select
        {{- select_columns(invoice_columns('invoices_history')) }},
        invoices._seen_at as valid_from,
        invoices.deleted_at is not null as is_deleted,
        {{ optional_column(history_table, 'invoices', '_record_hash', dbt.type_string()) }} as record_hash,
        {{ optional_column(history_table, 'invoices', '_dlt_load_id', dbt.type_string()) }} as load_id
    from invoices
    left join currencies on currencies.code = upper(invoices.currency)
    left join category_names on category_names.invoice_id = invoices.id
),

final as (
    select
        versions.*,
        lead(versions.valid_from) over (partition by versions.invoice_id order by versions.valid_from) as valid_to,
        versions.invoice_id || ' ' || cast(versions.valid_from as {{ dbt.type_string() }}) as version_key
    from versions
)

select * from final
