-- accounting__reconciliation_summary: one row per connection and currency: invoice counts and amounts per
-- status, open receivables, and the exception counts. Receivable invoices only (bills are left out); void
-- and draft ones are counted but not in the amounts.
with settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

unapplied_payments as (
    select * from {{ ref('accounting__unapplied_payments') }}
),

currency_mismatches as (
    select * from {{ ref('accounting__currency_mismatches') }}
),

duplicate_payments as (
    select * from {{ ref('accounting__duplicate_payments') }}
),

invoices as (
    select
        connection,
        currency,
        count(*) as invoices,
        count(*) filter (where status = 'settled') as settled,
        count(*) filter (where status = 'partially_paid') as partially_paid,
        count(*) filter (where status = 'overpaid') as overpaid,
        count(*) filter (where status = 'unpaid') as unpaid,
        count(*) filter (where status = 'balance_mismatch') as balance_mismatch,
        count(*) filter (where status = 'awaiting_sync') as awaiting_sync,
        count(*) filter (where excluded_from_receivables) as void_or_draft,
        count(*) filter (where absent_amount_decides) as absent_amount_decides,
        coalesce(sum(total_amount) filter (where not excluded_from_receivables), 0) as invoiced_amount,
        coalesce(sum(applied_amount) filter (where not excluded_from_receivables), 0) as applied_amount,
        coalesce(sum(open_amount) filter (where not excluded_from_receivables), 0) as open_amount
    from settlement
    where is_receivable
    group by connection, currency
),

unapplied as (
    select connection, currency, count(*) as unapplied_payments, sum(total_amount) as unapplied_amount
    from unapplied_payments
    group by connection, currency
),

-- counted against the invoice's currency; a row without a currency counts none
currency_mismatch_counts as (
    select connection, invoice_currency as currency, count(*) as currency_mismatches
    from currency_mismatches
    group by connection, invoice_currency
),

duplicate_counts as (
    select connection, currency, count(*) as duplicate_payments
    from duplicate_payments
    group by connection, currency
),

summary_keys as (
    select connection, currency from invoices
    union
    select connection, currency from unapplied
),

final as (
    select
        summary_keys.connection,
        summary_keys.currency,
        coalesce(invoices.invoices, 0) as invoices,
        coalesce(invoices.settled, 0) as settled,
        coalesce(invoices.partially_paid, 0) as partially_paid,
        coalesce(invoices.overpaid, 0) as overpaid,
        coalesce(invoices.unpaid, 0) as unpaid,
        coalesce(invoices.balance_mismatch, 0) as balance_mismatch,
        coalesce(invoices.awaiting_sync, 0) as awaiting_sync,
        coalesce(invoices.void_or_draft, 0) as void_or_draft,
        coalesce(invoices.absent_amount_decides, 0) as absent_amount_decides,
        coalesce(invoices.invoiced_amount, 0) as invoiced_amount,
        coalesce(invoices.applied_amount, 0) as applied_amount,
        coalesce(invoices.open_amount, 0) as open_amount,
        coalesce(unapplied.unapplied_payments, 0) as unapplied_payments,
        coalesce(unapplied.unapplied_amount, 0) as unapplied_amount,
        coalesce(currency_mismatch_counts.currency_mismatches, 0) as currency_mismatches,
        coalesce(duplicate_counts.duplicate_payments, 0) as duplicate_payments
    from summary_keys
    left join invoices
        on invoices.connection = summary_keys.connection
        and invoices.currency is not distinct from summary_keys.currency
    left join unapplied
        on unapplied.connection = summary_keys.connection
        and unapplied.currency is not distinct from summary_keys.currency
    left join currency_mismatch_counts
        on currency_mismatch_counts.connection = summary_keys.connection
        and currency_mismatch_counts.currency = summary_keys.currency
    left join duplicate_counts
        on duplicate_counts.connection = summary_keys.connection
        and duplicate_counts.currency = summary_keys.currency
)

select * from final
