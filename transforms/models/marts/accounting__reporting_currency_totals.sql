-- accounting__reporting_currency_totals: one row: the headline receivables of every connection and currency
-- in the reporting currency at the as-of date. Each invoice is converted at full precision and each total
-- rounded once, half to even, to the reporting currency's minor unit. Amounts in a currency without a rate
-- are not in the totals: `unconverted_invoices`, `unconverted_payments` and `unconverted_currencies` say what
-- is missing. Receivable invoices only (bills left out); void and draft ones left out. Empty when no
-- reporting currency is set.
with converted as (
    select * from {{ ref('int_accounting__receivables_in_reporting_currency') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

sums as (
    select
        reporting_currency,
        count(*) filter (where record_kind = 'invoice') as invoices,
        count(*) filter (where record_kind = 'invoice' and has_rate) as converted_invoices,
        count(*) filter (where record_kind = 'invoice' and not has_rate) as unconverted_invoices,
        count(*) filter (where record_kind = 'payment' and not has_rate) as unconverted_payments,
        sum(total_converted) as invoiced_converted,
        sum(applied_converted) as applied_converted,
        sum(open_converted) as open_converted,
        sum(open_converted) filter (where bucket_order > 0) as overdue_converted,
        sum(unapplied_converted) as unapplied_converted
    from converted
    group by reporting_currency
),

missing_rates as (
    select distinct reporting_currency, coalesce(currency, 'no currency') as currency
    from converted
    where not has_rate
),

unconverted as (
    select
        reporting_currency,
        {{ dbt.listagg('currency', "', '", 'order by currency') }} as unconverted_currencies
    from missing_rates
    group by reporting_currency
),

final as (
    select
        sums.reporting_currency,
        {{ as_of_date() }} as as_of,
        sums.invoices,
        sums.converted_invoices,
        {% for measure in ['invoiced', 'applied', 'open', 'overdue', 'unapplied'] -%}
        cast(coalesce({{ round_half_even('sums.' ~ measure ~ '_converted', 'currencies.exponent', 'currencies.minor_unit') }}, 0)
            as decimal(38, 4)) as {{ measure }}_amount,
        {% endfor -%}
        sums.unconverted_invoices,
        sums.unconverted_payments,
        unconverted.unconverted_currencies
    from sums
    left join currencies on currencies.code = sums.reporting_currency
    left join unconverted on unconverted.reporting_currency = sums.reporting_currency
)

select * from final
