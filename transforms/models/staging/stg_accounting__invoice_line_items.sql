-- stg_accounting__invoice_line_items: one row per line of a live invoice, with its tracking category names joined in.
with line_items as (
    select * from {{ source('accounting', 'invoices__line_items') }}
),

invoices as (
    select * from {{ ref('stg_accounting__invoices') }}
),

currencies as (
    select * from {{ ref('accounting__currencies') }}
),

category_names as (
    {{ tracking_category_names('invoices__line_items__tracking_categories', ['invoice_id', 'line_index']) }}
),

final as (
    select
        line_items.invoice_id,
        line_items.line_index,
        line_items.connection,
        line_items.description,
        line_items.quantity,
        coalesce(line_items.unit_price, 0) as unit_price_minor,
        coalesce(line_items.total_amount, 0) as total_minor,
        cast(coalesce(line_items.total_amount, 0) as decimal(38, 0)) * currencies.minor_unit as total_amount,
        line_items.item_id,
        category_names.tracking_categories
    from line_items
    inner join invoices on invoices.invoice_id = line_items.invoice_id
    left join currencies on currencies.code = invoices.currency
    left join category_names
        on category_names.invoice_id = line_items.invoice_id and category_names.line_index = line_items.line_index
)

select * from final
