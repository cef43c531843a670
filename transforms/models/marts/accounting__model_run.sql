-- accounting__model_run: one row saying what the models were last built from: the as-of date, the raw
-- schema, when, and the fingerprint of their inputs (`accounting-etl load` leaves models whose inputs did not
-- change as they are). It depends on every other model (through the ones below), so `dbt build` writes it only once they all built and
-- passed their tests: a failed build leaves the previous row, and the next load builds again.
-- depends_on: {{ ref('stg_accounting__invoice_line_items') }}
-- depends_on: {{ ref('accounting__reconciliation_summary') }}
-- depends_on: {{ ref('accounting__receivables_aging') }}
-- depends_on: {{ ref('accounting__balance_mismatches') }}
-- depends_on: {{ ref('accounting__overpaid_invoices') }}
-- depends_on: {{ ref('accounting__absent_amounts') }}
SELECT
    {{ as_of_date() }} AS as_of,
    CAST('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' AS TIMESTAMP) AS built_at,
    CAST('{{ var("raw_schema", target.schema) }}' AS {{ dbt.type_string() }}) AS raw_schema,
    CAST('{{ var("inputs_fingerprint", "") }}' AS {{ dbt.type_string() }}) AS inputs_fingerprint,
    CAST('{{ invocation_id }}' AS {{ dbt.type_string() }}) AS invocation_id
