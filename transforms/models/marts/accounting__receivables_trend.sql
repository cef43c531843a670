-- accounting__receivables_trend: one row per connection, currency and month-end for the last 12 month-ends
-- on or before the as-of date: the open receivables at that month-end as a `transform --as-of` of that day
-- reports them (macros/books_on.sql: each invoice and payment as the loads had seen it by the end of that day
-- where the history holds the version, else today's row; invoices booked and applications dated on or before
-- it), what was invoiced and collected in the month, and DSO. Receivable invoices only (bills left out),
-- neither void nor draft. "Collected" is what payments applied to those invoices in the month, in the
-- invoice's currency. DSO (days sales outstanding) = open at month-end / invoiced in the month x days in the
-- month; NULL for a month that invoiced nothing. Only the columns the figures need are read per month-end,
-- and each payment version's applications are grouped once (int_accounting__payment_version_applications),
-- which keeps 12 month-ends of a million records inside the models' memory bound. The CTEs read more than once
-- are `not materialized`: DuckDB would otherwise hold each whole (12 rows per invoice) in memory, which at a
-- million records is more than the bound; recomputed, they stream (PostgreSQL takes the same syntax).
{%- set wanted_invoice = ['invoice_id', 'connection', 'currency', 'total_minor', 'booked_on', 'is_receivable',
                          'excluded_from_receivables'] %}
{%- set invoice_names = invoice_columns('invoices') | selectattr(0, 'in', wanted_invoice) | list %}
{%- set payment_names = payment_columns('payments') | selectattr(0, 'in', ['payment_id', 'connection']) | list %}
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

payments_at as (
    {{ records_known_at('month_ends', 'stg_accounting__payment_versions', 'stg_accounting__payments',
                        'payment_id', payment_names) }}
),

applications_at as (
    {{ applications_known_at('payments_at', 'invoices_at') }}
),

receivables as not materialized (
    select invoices_at.*, month_ends.month_start
    from invoices_at
    inner join month_ends on month_ends.book_date = invoices_at.book_date
    where invoices_at.is_receivable
        and not invoices_at.excluded_from_receivables
        and (invoices_at.booked_on is null or invoices_at.booked_on <= invoices_at.book_date)
),

applications as not materialized (
    select applications_at.*, month_ends.month_start
    from applications_at
    inner join month_ends on month_ends.book_date = applications_at.book_date
    where applications_at.invoice_in_warehouse and applications_at.payment_currency = applications_at.invoice_currency
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

applied_by_month_end as (
    select book_date, invoice_id, sum(applied_minor) as applied_minor
    from applications
    where on_books
    group by book_date, invoice_id
),

open_at_month_end as (
    select
        receivables.book_date,
        receivables.connection,
        receivables.currency,
        sum(greatest(receivables.total_minor - coalesce(applied_by_month_end.applied_minor, 0), 0)) as open_minor
    from receivables
    left join applied_by_month_end
        on applied_by_month_end.book_date = receivables.book_date
        and applied_by_month_end.invoice_id = receivables.invoice_id
    group by receivables.book_date, receivables.connection, receivables.currency
),

invoiced_in_month as (
    select
        book_date,
        connection,
        currency,
        count(*) as invoices_issued,
        sum(total_minor) as invoiced_minor
    from receivables
    where booked_on between month_start and book_date
    group by book_date, connection, currency
),

collected_in_month as (
    select
        receivables.book_date,
        receivables.connection,
        receivables.currency,
        sum(applications.applied_minor) as collected_minor
    from applications
    inner join receivables
        on receivables.book_date = applications.book_date
        and receivables.invoice_id = applications.invoice_id
        and receivables.connection = applications.connection
    where applications.applied_on between applications.month_start and applications.book_date
    group by receivables.book_date, receivables.connection, receivables.currency
),

series as (
    -- every month for every connection and currency that has receivables, months without any at 0
    select month_ends.month_start, month_ends.book_date as month_end, pairs.connection, pairs.currency
    from month_ends
    cross join (select distinct connection, currency from receivables) as pairs
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
        on open_at_month_end.book_date = series.month_end
        and open_at_month_end.connection = series.connection
        and open_at_month_end.currency is not distinct from series.currency
    left join invoiced_in_month
        on invoiced_in_month.book_date = series.month_end
        and invoiced_in_month.connection = series.connection
        and invoiced_in_month.currency is not distinct from series.currency
    left join collected_in_month
        on collected_in_month.book_date = series.month_end
        and collected_in_month.connection = series.connection
        and collected_in_month.currency is not distinct from series.currency
    left join currencies on currencies.code = series.currency
)

select * from final
