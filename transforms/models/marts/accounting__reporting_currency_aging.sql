-- accounting__reporting_currency_aging: one row per aging bucket: the open receivables of every connection and
-- currency in the reporting currency at the as-of date, with the buckets of accounting__receivables_aging.
-- Each invoice is converted at full precision, each bucket's total rounded once, half to even; invoices in
-- a currency without a rate are counted in `unconverted_invoices` and named in `unconverted_currencies`, not
-- in the amount. Empty when no reporting currency is set.
with converted as (
    select * from {{ ref('int_accounting__receivables_in_reporting_currency') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

sums as (
    select
        reporting_currency,
        bucket_order,
        bucket,
        count(*) as invoices,
        count(*) filter (where not has_rate) as unconverted_invoices,
        sum(open_converted) as open_converted
    from converted
    where record_kind = 'invoice' and bucket_order is not null
    group by reporting_currency, bucket_order, bucket
),

missing_rates as (
    select distinct bucket_order, coalesce(currency, 'no currency') as currency
    from converted
    where record_kind = 'invoice' and bucket_order is not null and not has_rate
),

unconverted as (
    select bucket_order, {{ dbt.listagg('currency', "', '", 'order by currency') }} as unconverted_currencies
    from missing_rates
    group by bucket_order
),

final as (
    select
        sums.reporting_currency,
        sums.bucket_order,
        sums.bucket,
        sums.invoices,
        cast(coalesce({{ round_half_even('sums.open_converted', 'currencies.exponent', 'currencies.minor_unit') }}, 0)
            as decimal(38, 4)) as open_amount,
        sums.unconverted_invoices,
        unconverted.unconverted_currencies
    from sums
    left join currencies on currencies.code = sums.reporting_currency
    left join unconverted on unconverted.bucket_order = sums.bucket_order
)

select * from final
