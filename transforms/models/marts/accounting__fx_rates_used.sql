-- accounting__fx_rates_used: one row per currency of a receivable or an unapplied payment at the as-of date:
-- the rate that converts it into the reporting currency and the day of that rate, or `has_rate` false when
-- `<dataset>.fx_rates` holds none on or before the as-of date (its amounts are then left out of the converted
-- totals, and listed). The report states these rates. Empty when no reporting currency is set.
with converted as (
    select * from {{ ref('int_accounting__receivables_in_reporting_currency') }}
),

final as (
    select
        currency,
        reporting_currency,
        max(rate) as rate,
        max(rate_date) as rate_date,
        bool_or(has_rate) as has_rate,
        count(*) filter (where record_kind = 'invoice') as invoices,
        count(*) filter (where record_kind = 'payment') as unapplied_payments
    from converted
    group by currency, reporting_currency
)

select * from final
