-- stg_accounting__contacts: one row per live contact (customer or supplier) of a connection. A warehouse
-- loaded before contacts were loaded has no `contacts` table: the model is then empty, and every invoice's
-- customer is unknown until the next load brings them.
{%- set contacts_table = optional_raw_relation('contacts') %}
{%- if contacts_table is not none %}
with contacts as (
    select * from {{ source('accounting', 'contacts') }}
),

final as (
    select
        contacts.id as contact_id,
        contacts.connection,
        contacts.provider,
        contacts.name,
        contacts.is_customer,
        contacts.is_supplier,
        contacts.email_address,
        contacts.tax_number,
        upper(contacts.status) as status,
        upper(contacts.currency) as currency,
        contacts.remote_id,
        contacts.created_at,
        contacts.modified_at
    from contacts
    where contacts.deleted_at is null
)
{%- else %}
with final as (
    select
        cast(null as {{ dbt.type_string() }}) as contact_id,
        cast(null as {{ dbt.type_string() }}) as connection,
        cast(null as {{ dbt.type_string() }}) as provider,
        cast(null as {{ dbt.type_string() }}) as name,
        cast(null as boolean) as is_customer,
        cast(null as boolean) as is_supplier,
        cast(null as {{ dbt.type_string() }}) as email_address,
        cast(null as {{ dbt.type_string() }}) as tax_number,
        cast(null as {{ dbt.type_string() }}) as status,
        cast(null as {{ dbt.type_string() }}) as currency,
        cast(null as {{ dbt.type_string() }}) as remote_id,
        cast(null as timestamp with time zone) as created_at,
        cast(null as timestamp with time zone) as modified_at
    where 1 = 0
)
{%- endif %}

select * from final
