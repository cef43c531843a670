-- stg_accounting__payment_line_item_versions: the line items of each payment version (raw
-- `payments__line_items_history`): a version's lines carry its `valid_from`. A version without lines has none
-- here. Empty where no history is kept.
{%- set history = optional_raw_relation('payments__line_items_history') %}
with payment_line_items as (
    {%- if history is not none %}
    select * from {{ source('accounting', 'payments__line_items_history') }}
    {%- else %}
    select *, cast(null as timestamp with time zone) as _seen_at
    from {{ source('accounting', 'payments__line_items') }}
    where 1 = 0
    {%- endif %}
),

final as (
    select
        {{- select_columns(payment_line_item_columns('payments__line_items_history')) }},
        payment_line_items._seen_at as valid_from
    from payment_line_items
)

select * from final
