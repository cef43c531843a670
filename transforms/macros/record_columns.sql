{#- The columns of an invoice and of a payment as the staging models give them, as (name, expression) pairs
    over a row `invoices` / `payments` of a loaded table (`table`: `invoices` or `invoices_history`, ...),
    joined to `currencies` and `category_names`. One list for today's rows (stg_accounting__invoices) and
    every version the loads saw (stg_accounting__invoice_versions), so the two have the same columns and a
    version reads exactly as today's row would. -#}
{% macro invoice_columns(table) -%}
    {%- set kind = optional_column(table, 'invoices', 'kind', dbt.type_string()) -%}
    {{ return([
        ('invoice_id', 'invoices.id'),
        ('connection', 'invoices.connection'),
        ('provider', 'invoices.provider'),
        ('number', 'invoices.number'),
        ('source_status', 'upper(invoices.status)'),
        ('type', 'invoices.type'),
        ('issue_date', utc_date('invoices.issue_date')),
        ('due_date', utc_date('invoices.due_date')),
        ('currency', 'upper(invoices.currency)'),
        ('currency_exponent', 'currencies.exponent'),
        ('currency_unknown', 'currencies.exponent is null'),
        ('total_minor', 'coalesce(invoices.total_amount, 0)'),
        ('total_absent', 'invoices.total_amount is null'),
        ('reported_balance_minor', "case when invoices.balance is not null then invoices.balance"
            ~ " when upper(invoices.status) = 'PAID' then 0 end"),
        ('balance_absent', 'invoices.balance is null'),
        ('total_amount', 'cast(coalesce(invoices.total_amount, 0) as decimal(38, 0)) * currencies.minor_unit'),
        ('sub_total_amount', 'cast(coalesce(invoices.sub_total, 0) as decimal(38, 0)) * currencies.minor_unit'),
        ('tax_amount', 'cast(coalesce(invoices.total_tax_amount, 0) as decimal(38, 0)) * currencies.minor_unit'),
        ('exchange_rate', 'invoices.exchange_rate'),
        ('contact_id', 'invoices.contact_id'),
        ('excluded_from_receivables', "upper(invoices.status) in ('VOID', 'DRAFT', 'DELETED')"),
        ('tracking_categories', 'category_names.tracking_categories'),
        ('created_at', 'invoices.created_at'),
        ('modified_at', 'invoices.modified_at'),
        ('kind', kind),
        ('is_receivable', "coalesce(" ~ kind ~ ", 'receivable') <> 'payable'"),
        ('booked_on', 'coalesce(' ~ utc_date('invoices.issue_date') ~ ', ' ~ utc_date('invoices.created_at') ~ ')'),
    ]) }}
{%- endmacro %}

{% macro payment_columns(table) -%}
    {{ return([
        ('payment_id', 'payments.id'),
        ('connection', 'payments.connection'),
        ('provider', 'payments.provider'),
        ('invoice_id', 'payments.invoice_id'),
        ('transaction_date', utc_date('payments.transaction_date')),
        ('currency', 'upper(payments.currency)'),
        ('currency_exponent', 'currencies.exponent'),
        ('currency_unknown', 'currencies.exponent is null'),
        ('total_minor', 'coalesce(payments.total_amount, 0)'),
        ('total_absent', 'payments.total_amount is null'),
        ('total_amount', 'cast(coalesce(payments.total_amount, 0) as decimal(38, 0)) * currencies.minor_unit'),
        ('exchange_rate', 'payments.exchange_rate'),
        ('payment_type', 'payments.type'),
        ('contact_id', 'payments.contact_id'),
        ('account_id', 'payments.account_id'),
        ('remote_id', 'payments.remote_id'),
        ('tracking_categories', 'category_names.tracking_categories'),
        ('created_at', 'payments.created_at'),
        ('booked_on', 'coalesce(' ~ utc_date('payments.transaction_date') ~ ', ' ~ utc_date('payments.created_at') ~ ')'),
    ]) }}
{%- endmacro %}

{#- A payment line's columns the applications read, over a row `payment_line_items` of `table`. -#}
{% macro payment_line_item_columns(table) -%}
    {{ return([
        ('payment_id', 'payment_line_items.payment_id'),
        ('line_index', 'payment_line_items.line_index'),
        ('related_object_type', 'upper(payment_line_items.related_object_type)'),
        ('related_object_id', 'payment_line_items.related_object_id'),
        ('applied_minor', 'coalesce(payment_line_items.applied_amount, 0)'),
        ('applied_date', utc_date(optional_column(table, 'payment_line_items', 'applied_date',
            'timestamp with time zone'))),
    ]) }}
{%- endmacro %}

{#- `expression as name, ...` of (name, expression) pairs. -#}
{% macro select_columns(columns) -%}
    {%- for name, expression in columns %}
        {{ expression }} as {{ name }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- `alias.name, ...` of the names of (name, expression) pairs. -#}
{% macro column_names(columns, alias) -%}
    {%- for name, _ in columns %}
        {{ alias }}.{{ name }}{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}
