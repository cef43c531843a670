-- stg_accounting__invoices: one row per live invoice (deleted ones stay reachable in the raw `invoices` table).
-- Amounts: `*_minor` in the currency's integer minor units as loaded; `*_amount` in major units, converted
-- with the currency's ISO 4217 exponent (JPY 0, EUR 2, KWD 3), never by a fixed 100.
-- ASSUMPTION (Panora drops money fields equal to 0): an absent total_amount is 0; an absent balance is 0 on
-- a PAID invoice and UNKNOWN on any other (not compared; `balance_absent` says so downstream).
-- `kind` is `receivable` or `payable` (a bill), read from each provider's own word when loading. A row loaded
-- before kinds were read has none and counts as a receivable, as every invoice did then, until it changes
-- upstream or `load --full-refresh` rewrites it.
-- `booked_on` is the day the invoice enters the books (its issue date, else the day it was created; NULL when
-- it has neither, and then it is on the books at every as-of date). The columns are `invoice_columns`
-- (macros/record_columns.sql), which stg_accounting__invoice_versions reads every version with.
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
    select {{ select_columns(invoice_columns('invoices')) }}
    from invoices
    left join currencies on currencies.code = upper(invoices.currency)
    left join category_names on category_names.invoice_id = invoices.id
    where invoices.deleted_at is null
)

select * from final
