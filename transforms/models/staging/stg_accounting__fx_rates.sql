-- stg_accounting__fx_rates: one row per exchange rate the user keeps in `<dataset>.fx_rates`: one unit of
-- `currency` in `quote_currency` on `rate_date`. A row without a quote currency quotes the reporting currency.
-- `accounting-etl load` and `transform` create the table empty when it is missing (docs/models.md says how to
-- fill it); a dataset without one (dbt run by hand) gives no rates, so nothing converts.
{%- set rates_table = optional_raw_relation('fx_rates') %}
{%- if rates_table is not none %}
with rates as (
    select * from {{ source('accounting', 'fx_rates') }}
),

cleaned as (
    select
        cast(rates.rate_date as date) as rate_date,
        upper(trim(rates.currency)) as currency,
        coalesce(upper(trim(rates.quote_currency)), {{ reporting_currency() }}) as quote_currency,
        cast(rates.rate as decimal(38, 12)) as rate
    from rates
),

final as (
    select
        rate_date,
        currency,
        quote_currency,
        rate,
        currency || '/' || coalesce(quote_currency, '(reporting currency)') || ' on '
            || cast(rate_date as {{ dbt.type_string() }}) as rate_key
    from cleaned
)
{%- else %}
with final as (
    select
        cast(null as date) as rate_date,
        cast(null as {{ dbt.type_string() }}) as currency,
        cast(null as {{ dbt.type_string() }}) as quote_currency,
        cast(null as decimal(38, 12)) as rate,
        cast(null as {{ dbt.type_string() }}) as rate_key
    where 1 = 0
)
{%- endif %}

select * from final
