-- int_accounting__receivables_in_reporting_currency: one row per receivable invoice (neither void nor draft,
-- not a bill) and per unapplied payment at the as-of date, with its amounts converted into the reporting
-- currency at that date's rate, at full precision (the totals round once, half to even). An amount without a
-- rate keeps NULL converted amounts and `has_rate` false: it is listed, never dropped or taken at 1. Empty
-- when no reporting currency is set.
with settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

open_receivables as (
    select * from {{ ref('int_accounting__open_receivables') }}
),

unapplied_payments as (
    select * from {{ ref('accounting__unapplied_payments') }}
),

rates as (
    select * from {{ ref('int_accounting__fx_rates_at_as_of') }}
),

amounts as (
    select
        'invoice' as record_kind,
        settlement.invoice_id as record_id,
        settlement.connection,
        settlement.currency,
        open_receivables.bucket_order,
        open_receivables.bucket,
        settlement.total_amount,
        settlement.applied_amount,
        settlement.open_amount,
        cast(0 as decimal(38, 4)) as unapplied_amount
    from settlement
    left join open_receivables on open_receivables.invoice_id = settlement.invoice_id
    where settlement.is_receivable and not settlement.excluded_from_receivables
    union all
    select
        'payment' as record_kind,
        payment_id as record_id,
        connection,
        currency,
        cast(null as integer) as bucket_order,
        cast(null as {{ dbt.type_string() }}) as bucket,
        cast(0 as decimal(38, 4)) as total_amount,
        cast(0 as decimal(38, 4)) as applied_amount,
        cast(0 as decimal(38, 4)) as open_amount,
        total_amount as unapplied_amount
    from unapplied_payments
),

final as (
    select
        amounts.record_kind,
        amounts.record_id,
        amounts.connection,
        amounts.currency,
        {{ reporting_currency() }} as reporting_currency,
        rates.rate,
        rates.rate_date,
        rates.currency is not null as has_rate,
        amounts.bucket_order,
        amounts.bucket,
        amounts.total_amount,
        amounts.applied_amount,
        amounts.open_amount,
        amounts.unapplied_amount,
        amounts.total_amount * rates.rate as total_converted,
        amounts.applied_amount * rates.rate as applied_converted,
        amounts.open_amount * rates.rate as open_converted,
        amounts.unapplied_amount * rates.rate as unapplied_converted
    from amounts
    left join rates on rates.currency = amounts.currency
    where {{ reporting_currency() }} is not null
)

select * from final
