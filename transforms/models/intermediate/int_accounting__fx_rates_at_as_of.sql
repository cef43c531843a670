-- int_accounting__fx_rates_at_as_of: one row per currency that has a rate into the reporting currency at the
-- as-of date: the latest rate dated on or before it. The reporting currency itself converts at 1. Empty
-- when no reporting currency is set.
with rates as (
    select * from {{ ref('stg_accounting__fx_rates') }}
),

usable as (
    select
        currency,
        rate_date,
        rate,
        row_number() over (partition by currency order by rate_date desc) as recency
    from rates
    where quote_currency = {{ reporting_currency() }}
        and currency <> {{ reporting_currency() }}
        and rate_date <= {{ as_of_date() }}
),

final as (
    select currency, rate_date, rate
    from usable
    where recency = 1
    {%- if reporting_currency_value() is not none %}
    union all
    select
        {{ reporting_currency() }} as currency,
        cast(null as date) as rate_date,
        cast(1 as decimal(38, 12)) as rate
    {%- endif %}
)

select * from final
