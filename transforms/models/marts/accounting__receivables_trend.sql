-- accounting__receivables_trend: one row per connection, currency and month-end for the last 12 month-ends
-- on or before the as-of date: the open receivables at that month-end as a `transform --as-of` of that day
-- reports them (macros/books_on.sql: each invoice and payment as the loads had seen it by the end of that day
-- where the history holds the version, else today's row; invoices booked and applications dated on or before
-- it), what was invoiced and collected in the month, and DSO. Receivable invoices only (bills left out),
-- neither void nor draft. "Collected" is what payments applied to those invoices in the month, in the
-- invoice's currency. DSO (days sales outstanding) = open at month-end / invoiced in the month x days in the
-- month; NULL for a month that invoiced nothing. Each month-end reads only the invoice columns the figures
-- need, and the payments' applications are taken per version (int_accounting__payment_version_applications)
-- with the books' rule as a filter (`applies_at`), the 12 month-ends joined as a small table, never a hash
-- table of 12 copies of the payments: 12 month-ends of a million records stay inside the models' memory
-- bound. The CTEs read more than once are `not materialized`: DuckDB would otherwise hold each whole (12
-- rows per invoice) in memory; recomputed, they stream (PostgreSQL takes the same syntax).
{%- set wanted_invoice = ['invoice_id', 'connection', 'currency', 'total_minor', 'booked_on', 'is_receivable',
                          'excluded_from_receivables'] %}
{%- set invoice_names = invoice_columns('invoices') | selectattr(0, 'in', wanted_invoice) | list %}
with month_ends as (
    {%- for month_start, month_end in month_ends_to_as_of(12) %}
    select
        cast('{{ month_start }}' as date) as month_start,
        cast('{{ month_end }}' as date) as book_date,
        {{ known_at() if month_end == as_of_value() | trim else timestamp_literal(end_of_day(month_end)) }}
            as known_at
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

invoices_at as not materialized (
    {{ records_known_at('month_ends', 'stg_accounting__invoice_versions', 'stg_accounting__invoices',
                        'invoice_id', invoice_names) }}
),

receivables as not materialized (
    select invoices_at.*, month_ends.month_start
    from invoices_at
    inner join month_ends on month_ends.book_date = invoices_at.book_date
    where invoices_at.is_receivable
        and not invoices_at.excluded_from_receivables
        and (invoices_at.booked_on is null or invoices_at.booked_on <= invoices_at.book_date)
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

applied_by_month_end as (
    -- what the payments the books held at each month-end applied to each invoice by then, and in the month
    select
        month_ends.book_date,
        applications.invoice_id,
        applications.connection,
        applications.payment_currency,
        sum(applications.applied_minor) as applied_minor,
        coalesce(sum(applications.applied_minor) filter (
            where applications.applied_on >= month_ends.month_start
        ), 0) as collected_minor
    from month_ends
    inner join {{ ref('int_accounting__payment_version_applications') }} as applications
        on (applications.applied_on is null or applications.applied_on <= month_ends.book_date)
        and {{ applies_at('applications', 'month_ends.known_at') }}
    group by month_ends.book_date, applications.invoice_id, applications.connection, applications.payment_currency
),

per_invoice as (
    -- applications in the invoice's currency only (other currencies are listed, never summed)
    select
        receivables.book_date,
        receivables.month_start,
        receivables.connection,
        receivables.currency,
        receivables.booked_on,
        receivables.total_minor,
        coalesce(applied.applied_minor, 0) as applied_minor,
        coalesce(applied.collected_minor, 0) as collected_minor
    from receivables
    left join applied_by_month_end as applied
        on applied.book_date = receivables.book_date
        and applied.invoice_id = receivables.invoice_id
        and applied.connection = receivables.connection
        and applied.payment_currency = receivables.currency
),

by_month_end as (
    select
        book_date,
        connection,
        currency,
        sum(greatest(total_minor - applied_minor, 0)) as open_minor,
        sum(collected_minor) as collected_minor,
        count(*) filter (where booked_on >= month_start) as invoices_issued,
        coalesce(sum(total_minor) filter (where booked_on >= month_start), 0) as invoiced_minor
    from per_invoice
    group by book_date, connection, currency
),

series as (
    -- every month for every connection and currency that has receivables, months without any at 0
    select month_ends.month_start, month_ends.book_date as month_end, pairs.connection, pairs.currency
    from month_ends
    cross join (select distinct connection, currency from by_month_end) as pairs
),

final as (
    select
        series.connection,
        series.currency,
        series.month_end,
        coalesce(by_month_end.invoices_issued, 0) as invoices_issued,
        coalesce(by_month_end.open_minor, 0) as open_minor,
        cast(coalesce(by_month_end.open_minor, 0) as decimal(38, 0)) * currencies.minor_unit as open_amount,
        cast(coalesce(by_month_end.invoiced_minor, 0) as decimal(38, 0)) * currencies.minor_unit
            as invoiced_amount,
        cast(coalesce(by_month_end.collected_minor, 0) as decimal(38, 0)) * currencies.minor_unit
            as collected_amount,
        case
            when coalesce(by_month_end.invoiced_minor, 0) > 0 then cast(round(
                cast(coalesce(by_month_end.open_minor, 0) as decimal(38, 6))
                / cast(by_month_end.invoiced_minor as decimal(38, 6))
                * ({{ dbt.datediff('series.month_start', 'series.month_end', 'day') }} + 1),
                1
            ) as decimal(12, 1))
        end as dso_days,
        series.connection || ' ' || coalesce(series.currency, '')
            || ' ' || cast(series.month_end as {{ dbt.type_string() }}) as trend_key
    from series
    left join by_month_end
        on by_month_end.book_date = series.month_end
        and by_month_end.connection = series.connection
        and by_month_end.currency is not distinct from series.currency
    left join currencies on currencies.code = series.currency
)

select * from final
