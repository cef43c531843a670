-- Integrity: the summary's invoice and unapplied payment counts per connection and currency equal what the
-- loaded tables hold: live receivable invoices booked by the as-of date (not bills), and live payments applied to no invoice in the
-- warehouse; the loaded rows those the loads knew at the as-of date (macros/raw_rows_known_at.sql).
{%- set invoice_columns = ['known.connection', 'known.currency', 'known.issue_date', 'known.created_at', 'known.deleted_at',
    optional_column('invoices', 'known', 'kind', dbt.type_string()) ~ ' as kind'] %}
with live_invoices as (
    select connection, upper(currency) as currency, count(*) as invoices
    from {{ raw_rows_known_at('invoices', invoice_columns) }} as i
    where deleted_at is null
        and coalesce(i.kind, 'receivable') <> 'payable'
        and coalesce({{ utc_date('i.issue_date') }}, {{ utc_date('i.created_at') }}, {{ as_of_date() }})
            <= {{ as_of_date() }}
    group by connection, upper(currency)
),
summary as (
    select connection, currency, sum(invoices) as invoices
    from {{ ref('accounting__reconciliation_summary') }}
    group by connection, currency
)
select coalesce(l.connection, s.connection) as connection, coalesce(l.currency, s.currency) as currency,
       l.invoices as loaded, s.invoices as summarised
from live_invoices as l
full outer join summary as s on s.connection = l.connection and s.currency is not distinct from l.currency
where coalesce(l.invoices, 0) <> coalesce(s.invoices, 0)
