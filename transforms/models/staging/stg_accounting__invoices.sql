-- stg_accounting__invoices: one row per live invoice (deleted ones stay reachable in the raw `invoices` table).
-- Amounts: `*_minor` in the currency's integer minor units as loaded; `*_amount` in major units, converted
-- with the currency's ISO 4217 exponent (JPY 0, EUR 2, KWD 3), never by a fixed 100.
-- ASSUMPTION (Panora drops money fields equal to 0): an absent total_amount is 0; an absent balance is 0 on
-- a PAID invoice and UNKNOWN on any other (not compared; `balance_absent` says so downstream).
-- `kind` is `receivable` or `payable` (a bill), read from each provider's own word when loading. A row loaded
-- before kinds were read has none and counts as a receivable, as every invoice did then, until it changes
-- upstream or `load --full-refresh` rewrites it.
-- `booked_on` is the day the invoice enters the books (its issue date, else the day it was created; NULL when
-- it has neither, and then it is on the books at every as-of date).
{%- set kind = optional_column('invoices', 'invoices', 'kind', dbt.type_string()) %}
with invoices as (
    select * from {{ source('accounting', 'invoices') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

category_names as (
    {{ tracking_category_names('invoices__tracking_categories', ['invoice_id']) }}
),

final as (
    select
        invoices.id as invoice_id,
        invoices.connection,
        invoices.provider,
        invoices.number,
        upper(invoices.status) as source_status,
        invoices.type,
        {{ utc_date('invoices.issue_date') }} as issue_date,
        {{ utc_date('invoices.due_date') }} as due_date,
        upper(invoices.currency) as currency,
        currencies.exponent as currency_exponent,
        currencies.exponent is null as currency_unknown,
        coalesce(invoices.total_amount, 0) as total_minor,
        invoices.total_amount is null as total_absent,
        case
            when invoices.balance is not null then invoices.balance
            when upper(invoices.status) = 'PAID' then 0
        end as reported_balance_minor,
        invoices.balance is null as balance_absent,
        cast(coalesce(invoices.total_amount, 0) as decimal(38, 0)) * currencies.minor_unit as total_amount,
        cast(coalesce(invoices.sub_total, 0) as decimal(38, 0)) * currencies.minor_unit as sub_total_amount,
        cast(coalesce(invoices.total_tax_amount, 0) as decimal(38, 0)) * currencies.minor_unit as tax_amount,
        invoices.exchange_rate,
        invoices.contact_id,
        upper(invoices.status) in ('VOID', 'DRAFT', 'DELETED') as excluded_from_receivables,
        category_names.tracking_categories,
        invoices.created_at,
        invoices.modified_at,
        {{ kind }} as kind,
        coalesce({{ kind }}, 'receivable') <> 'payable' as is_receivable,
        coalesce({{ utc_date('invoices.issue_date') }}, {{ utc_date('invoices.created_at') }}) as booked_on
    from invoices
    left join currencies on currencies.code = upper(invoices.currency)
    left join category_names on category_names.invoice_id = invoices.id
    where invoices.deleted_at is null
)

select * from final
