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
-- AS OF: the books at the end of the `as_of` date (UTC): invoices booked on or before it (`booked_on`),
-- payments applied on or before it (int_payment_applications' `applied_on`), each invoice and payment as the
-- loads had seen it by then where history holds that version (`version_seen_at`), else as it is today. The
-- balance the provider reports is that version's (today's); it is rebuilt as that balance plus what
-- applications dated after the as-of date took off it (in the invoice's currency), and `balance_rebuilt` says
-- so; a rebuilt balance is not absent. A payment this tool pushed dated after the as-of date was not on the
-- books then, and the provider may not have reflected it yet (`awaiting_sync` today): the rebuild adds back a
-- loaded one it may never have taken off, and misses an unlisted one it did. So where the balance with
-- those undone agrees with the applications, that is the balance at the as-of date.
with invoices as (
    select *
    from {{ ref('int_accounting__invoices_at_as_of') }}
    where booked_on is null or booked_on <= {{ as_of_date() }}
),

applications as (
    select * from {{ ref('int_accounting__payment_applications') }}
),

pushed_payments as (
    select * from {{ ref('int_accounting__pushed_payments') }}
),

contacts as (
    select * from {{ ref('stg_accounting__contacts') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

applied as (
    select
        invoice_id,
        sum(applied_minor) filter (where payment_currency = invoice_currency) as applied_minor,
        count(*) as applications,
        count(*) filter (where payment_currency is distinct from invoice_currency) as foreign_currency_applications,
        min(transaction_date) as first_payment_date,
        max(transaction_date) as last_payment_date
    from applications
    where invoice_in_warehouse and on_books
    group by invoice_id
),

applied_later as (
    -- what applications dated after the as-of date took off the balance the provider reports today
    select
        invoice_id,
        coalesce(sum(applied_minor) filter (where payment_currency = invoice_currency), 0) as applied_later_minor
    from applications
    where invoice_in_warehouse and not on_books
    group by invoice_id
),

pushed_dated as (
    select
        pushed_payments.*,
        pushed_payments.transaction_date is null or pushed_payments.transaction_date <= {{ as_of_date() }}
            as on_books
    from pushed_payments
    inner join invoices
        on invoices.invoice_id = pushed_payments.invoice_id
        and invoices.connection = pushed_payments.connection
        and invoices.currency = pushed_payments.currency
),

pushed as (
    -- payments this tool created, in the invoice's currency, on the books at the as-of date: loaded ones are in
    -- `applied` already; and those dated after it, which the rebuilt balance may count wrongly (see AS OF)
    select
        invoice_id,
        coalesce(sum(amount_minor) filter (where loaded and on_books), 0) as pushed_loaded_minor,
        coalesce(sum(amount_minor) filter (where not loaded and on_books), 0) as pushed_unlisted_minor,
        coalesce(sum(amount_minor) filter (where loaded and not on_books), 0) as pushed_later_loaded_minor,
        coalesce(sum(amount_minor) filter (where not loaded and not on_books), 0) as pushed_later_unlisted_minor,
        {{ dbt.listagg('case when on_books then external_id end', "', '", "order by external_id") }}
            as pushed_external_ids
    from pushed_dated
    group by invoice_id
),

rebuilt as (
    select
        invoices.invoice_id,
        invoices.reported_balance_minor + coalesce(applied_later.applied_later_minor, 0) as balance_minor,
        greatest(invoices.total_minor - coalesce(applied.applied_minor, 0), 0) as expected_minor,
        coalesce(pushed.pushed_later_loaded_minor, 0) as later_loaded_minor,
        coalesce(pushed.pushed_later_unlisted_minor, 0) as later_unlisted_minor
    from invoices
    left join applied_later on applied_later.invoice_id = invoices.invoice_id
    left join applied on applied.invoice_id = invoices.invoice_id
    left join pushed on pushed.invoice_id = invoices.invoice_id
),

balance_at_as_of as (
    select
        invoice_id,
        case
            when balance_minor = expected_minor then balance_minor
            when balance_minor - later_loaded_minor = expected_minor then balance_minor - later_loaded_minor
            when balance_minor + later_unlisted_minor = expected_minor then balance_minor + later_unlisted_minor
            when balance_minor - later_loaded_minor + later_unlisted_minor = expected_minor then expected_minor
            else balance_minor
        end as reported_balance_minor
    from rebuilt
),

at_as_of as (
    select
        invoices.invoice_id,
        invoices.connection,
        invoices.provider,
        invoices.number,
        invoices.source_status,
        invoices.type,
        invoices.issue_date,
        invoices.due_date,
        invoices.currency,
        invoices.currency_exponent,
        invoices.currency_unknown,
        invoices.total_minor,
        invoices.total_absent,
        balance_at_as_of.reported_balance_minor,
        -- a rebuilt balance is known where today's is (absent on a PAID invoice is 0): then it is not absent
        case
            when applied_later.invoice_id is null then invoices.balance_absent
            else invoices.reported_balance_minor is null
        end as balance_absent,
        invoices.total_amount,
        invoices.sub_total_amount,
        invoices.tax_amount,
        invoices.exchange_rate,
        invoices.contact_id,
        invoices.excluded_from_receivables,
        invoices.tracking_categories,
        invoices.created_at,
        invoices.modified_at,
        invoices.kind,
        invoices.is_receivable,
        invoices.booked_on,
        applied_later.invoice_id is not null
            or balance_at_as_of.reported_balance_minor is distinct from invoices.reported_balance_minor
            as balance_rebuilt,
        invoices.version_seen_at
    from invoices
    left join applied_later on applied_later.invoice_id = invoices.invoice_id
    left join balance_at_as_of on balance_at_as_of.invoice_id = invoices.invoice_id
),

settled as (
    select
        at_as_of.*,
        coalesce(applied.applied_minor, 0) as applied_minor,
        coalesce(applied.applications, 0) as applications,
        coalesce(applied.foreign_currency_applications, 0) as foreign_currency_applications,
        applied.first_payment_date,
        applied.last_payment_date,
        at_as_of.total_minor - coalesce(applied.applied_minor, 0) as expected_balance_minor,
        coalesce(pushed.pushed_loaded_minor, 0) as pushed_loaded_minor,
        coalesce(pushed.pushed_unlisted_minor, 0) as pushed_unlisted_minor,
        pushed.pushed_external_ids
    from at_as_of
    left join applied on applied.invoice_id = at_as_of.invoice_id
    left join pushed on pushed.invoice_id = at_as_of.invoice_id
),

classified as (
    select
        *,
        case
            when excluded_from_receivables then lower(source_status)
            when reported_balance_minor is not null
                and reported_balance_minor <> greatest(expected_balance_minor, 0)
                and (pushed_loaded_minor > 0 or pushed_unlisted_minor > 0)
                and reported_balance_minor in (
                    greatest(expected_balance_minor + pushed_loaded_minor, 0),
                    greatest(expected_balance_minor - pushed_unlisted_minor, 0),
                    greatest(expected_balance_minor + pushed_loaded_minor - pushed_unlisted_minor, 0)
                ) then 'awaiting_sync'
            when reported_balance_minor is not null
                and reported_balance_minor <> greatest(expected_balance_minor, 0) then 'balance_mismatch'
            when applied_minor = 0 then 'unpaid'
            when applied_minor < total_minor then 'partially_paid'
            when applied_minor = total_minor then 'settled'
            else 'overpaid'
        end as status
    from settled
),

final as (
    select
        classified.*,
        cast(classified.applied_minor as decimal(38, 0)) * currencies.minor_unit as applied_amount,
        cast(classified.expected_balance_minor as decimal(38, 0)) * currencies.minor_unit as expected_balance,
        cast(classified.reported_balance_minor as decimal(38, 0)) * currencies.minor_unit as reported_balance,
        cast(greatest(classified.expected_balance_minor, 0) as decimal(38, 0)) * currencies.minor_unit
            as open_amount,
        greatest(classified.expected_balance_minor, 0) as open_minor,
        case when classified.status = 'awaiting_sync' then
            case
                when classified.reported_balance_minor
                    = greatest(classified.expected_balance_minor + classified.pushed_loaded_minor, 0)
                    then 'the balance to reflect the payment(s) ' || classified.pushed_external_ids
                        || ' pushed by this tool'
                when classified.reported_balance_minor
                    = greatest(classified.expected_balance_minor - classified.pushed_unlisted_minor, 0)
                    then 'the payment(s) ' || classified.pushed_external_ids
                        || ' pushed by this tool to be listed (next load)'
                else 'the provider to reflect the payment(s) ' || classified.pushed_external_ids
                    || ' pushed by this tool'
            end
        end as awaiting,
        not classified.excluded_from_receivables and (
            (
                classified.balance_absent
                and classified.source_status = 'PAID'
                and greatest(classified.expected_balance_minor, 0) <> 0
            )
            or (classified.total_absent and classified.applied_minor > 0)
        ) as absent_amount_decides,
        not classified.excluded_from_receivables
            and classified.balance_absent
            and classified.source_status <> 'PAID' as balance_not_compared,
        contacts.name as customer_name
    from classified
    left join currencies on currencies.code = classified.currency
    left join contacts
        on contacts.contact_id = classified.contact_id and contacts.connection = classified.connection
)

select * from final
