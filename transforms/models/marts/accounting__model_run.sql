-- accounting__model_run: one row saying what the models were last built from: the as-of date, the reporting
-- currency, the moment whose knowledge counts (`known_at`), the closed period, the raw schema, when, and the fingerprint of their inputs (`accounting-etl load` leaves models whose inputs did not
-- change as they are). It depends on every other model (through the ones below), so `dbt build` writes it
-- only once they all built and passed their tests: a failed build leaves the previous row, and the next load
-- builds again.
-- depends_on: {{ ref('stg_accounting__invoice_line_items') }}
-- depends_on: {{ ref('accounting__reconciliation_summary') }}
-- depends_on: {{ ref('accounting__receivables_aging') }}
-- depends_on: {{ ref('accounting__balance_mismatches') }}
-- depends_on: {{ ref('accounting__overpaid_invoices') }}
-- depends_on: {{ ref('accounting__absent_amounts') }}
-- depends_on: {{ ref('accounting__receivables_aging_by_customer') }}
-- depends_on: {{ ref('accounting__top_debtors') }}
-- depends_on: {{ ref('accounting__fx_rates_used') }}
-- depends_on: {{ ref('accounting__reporting_currency_totals') }}
-- depends_on: {{ ref('accounting__reporting_currency_aging') }}
-- depends_on: {{ ref('accounting__receivables_trend') }}
-- depends_on: {{ ref('accounting__changed_after_close') }}
with final as (
    select
        {{ as_of_date() }} as as_of,
        {{ reporting_currency() }} as reporting_currency,
        {{ known_at() }} as known_at,
        cast('{{ closed_through_value() }}' as date) as closed_through,
        {{ closed_at() }} as closed_at,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp) as built_at,
        cast('{{ var("raw_schema", target.schema) }}' as {{ dbt.type_string() }}) as raw_schema,
        cast('{{ var("inputs_fingerprint", "") }}' as {{ dbt.type_string() }}) as inputs_fingerprint,
        cast('{{ invocation_id }}' as {{ dbt.type_string() }}) as invocation_id
)

select * from final
