-- accounting__unapplied_payments: one row per live payment that is not applied to an invoice in the warehouse:
-- it names no invoice at all, or only invoices the warehouse does not have (for that connection). With the
-- payer's name and the open receivables it may be meant for: the invoices of the same customer, connection
-- and currency whose open amount equals the payment's total. As of the `as_of` date: payments booked and
-- applications dated on or before it (see the settlement).
with payments as (
    select *
    from {{ ref('int_accounting__payments_at_as_of') }}
    where booked_on is null or booked_on <= {{ as_of_date() }}
),

applications as (
    select *
    from {{ ref('int_accounting__payment_applications') }}
    where on_books
),

settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

contacts as (
    select * from {{ ref('stg_accounting__contacts') }}
),

missing_invoices as (
    select
        payment_id,
        {{ dbt.listagg('invoice_id', "', '", 'order by invoice_id') }} as missing_invoice_ids
    from applications
    where not invoice_in_warehouse
    group by payment_id
),

unapplied as (
    select payments.*
    from payments
    where not exists (
        select 1
        from applications
        where applications.payment_id = payments.payment_id and applications.invoice_in_warehouse
    )
),

candidates as (
    select
        unapplied.payment_id,
        {{ dbt.listagg('settlement.number', "', '", 'order by settlement.number') }} as candidate_invoices
    from unapplied
    inner join settlement
        on settlement.connection = unapplied.connection
        and settlement.contact_id = unapplied.contact_id
        and settlement.currency = unapplied.currency
        and settlement.open_minor = unapplied.total_minor
    where settlement.is_receivable and not settlement.excluded_from_receivables and settlement.open_minor > 0
    group by unapplied.payment_id
),

final as (
    select
        unapplied.*,
        case
            when missing_invoices.payment_id is null then 'no_invoice'
            else 'invoice_not_in_warehouse'
        end as reason,
        missing_invoices.missing_invoice_ids,
        contacts.name as customer_name,
        candidates.candidate_invoices
    from unapplied
    left join missing_invoices on missing_invoices.payment_id = unapplied.payment_id
    left join contacts on contacts.contact_id = unapplied.contact_id and contacts.connection = unapplied.connection
    left join candidates on candidates.payment_id = unapplied.payment_id
)

select * from final
