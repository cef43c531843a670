-- accounting__receivables_trend: one row per connection, currency and month-end for the last 12 month-ends
-- on or before the as-of date: the open receivables at that month-end, rebuilt from today's rows with the as-of
-- dating (invoices booked and applications dated on or before it), what was invoiced and collected in the
-- month, and DSO. It equals the open amount a `transform --as-of` of that day reports wherever the loads'
-- history holds no other version for that day (always before history began); it does not read the history
-- itself: over 12 month-ends of a million records that did not fit the models' memory bound (see
-- docs/models.md). Receivable invoices only (bills left out), neither void nor draft. "Collected" is what
-- payments applied to those invoices in the month, in the invoice's currency. DSO (days sales outstanding) =
-- open at month-end / invoiced in the month x days in the month; NULL for a month that invoiced nothing.
with invoices as (
    select *
    from {{ ref('stg_accounting__invoices') }}
    where is_receivable and not excluded_from_receivables
),

applications as (
    select *
    from {{ ref('int_accounting__payment_applications') }}
    where invoice_in_warehouse and payment_currency = invoice_currency
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

month_ends as (
    {%- for month_start, month_end in month_ends_to_as_of(12) %}
    select cast('{{ month_start }}' as date) as month_start, cast('{{ month_end }}' as date) as month_end
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

applied_by_month_end as (
    select
        month_ends.month_end,
        applications.invoice_id,
        sum(applications.applied_minor) as applied_minor
    from month_ends
    inner join applications
        on applications.applied_on is null or applications.applied_on <= month_ends.month_end
    group by month_ends.month_end, applications.invoice_id
),

open_at_month_end as (
    select
        month_ends.month_end,
        invoices.connection,
        invoices.currency,
        sum(greatest(invoices.total_minor - coalesce(applied_by_month_end.applied_minor, 0), 0)) as open_minor
    from month_ends
    inner join invoices
        on invoices.booked_on is null or invoices.booked_on <= month_ends.month_end
    left join applied_by_month_end
        on applied_by_month_end.month_end = month_ends.month_end
        and applied_by_month_end.invoice_id = invoices.invoice_id
    group by month_ends.month_end, invoices.connection, invoices.currency
),

invoiced_in_month as (
    select
        month_ends.month_end,
        invoices.connection,
        invoices.currency,
        count(*) as invoices_issued,
        sum(invoices.total_minor) as invoiced_minor
    from month_ends
    inner join invoices
        on invoices.booked_on between month_ends.month_start and month_ends.month_end
    group by month_ends.month_end, invoices.connection, invoices.currency
),

collected_in_month as (
    select
        month_ends.month_end,
        invoices.connection,
        invoices.currency,
        sum(applications.applied_minor) as collected_minor
    from month_ends
    inner join applications
        on applications.applied_on between month_ends.month_start and month_ends.month_end
    inner join invoices
        on invoices.invoice_id = applications.invoice_id
        and (invoices.booked_on is null or invoices.booked_on <= month_ends.month_end)
    group by month_ends.month_end, invoices.connection, invoices.currency
),

series as (
    -- every month for every connection and currency that has receivables, months without any at 0
    select month_ends.month_start, month_ends.month_end, pairs.connection, pairs.currency
    from month_ends
    cross join (select distinct connection, currency from invoices) as pairs
),

final as (
    select
        series.connection,
        series.currency,
        series.month_end,
        coalesce(invoiced_in_month.invoices_issued, 0) as invoices_issued,
        coalesce(open_at_month_end.open_minor, 0) as open_minor,
        cast(coalesce(open_at_month_end.open_minor, 0) as decimal(38, 0)) * currencies.minor_unit as open_amount,
        cast(coalesce(invoiced_in_month.invoiced_minor, 0) as decimal(38, 0)) * currencies.minor_unit
            as invoiced_amount,
        cast(coalesce(collected_in_month.collected_minor, 0) as decimal(38, 0)) * currencies.minor_unit
            as collected_amount,
        case
            when coalesce(invoiced_in_month.invoiced_minor, 0) > 0 then cast(round(
                cast(coalesce(open_at_month_end.open_minor, 0) as decimal(38, 6))
                / cast(invoiced_in_month.invoiced_minor as decimal(38, 6))
                * ({{ dbt.datediff('series.month_start', 'series.month_end', 'day') }} + 1),
                1
            ) as decimal(12, 1))
        end as dso_days,
        series.connection || ' ' || coalesce(series.currency, '')
            || ' ' || cast(series.month_end as {{ dbt.type_string() }}) as trend_key
    from series
    left join open_at_month_end
        on open_at_month_end.month_end = series.month_end
        and open_at_month_end.connection = series.connection
        and open_at_month_end.currency is not distinct from series.currency
    left join invoiced_in_month
        on invoiced_in_month.month_end = series.month_end
        and invoiced_in_month.connection = series.connection
        and invoiced_in_month.currency is not distinct from series.currency
    left join collected_in_month
        on collected_in_month.month_end = series.month_end
        and collected_in_month.connection = series.connection
        and collected_in_month.currency is not distinct from series.currency
    left join currencies on currencies.code = series.currency
)

select * from final
