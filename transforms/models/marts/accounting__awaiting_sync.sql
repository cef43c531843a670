-- accounting__awaiting_sync: one row per live invoice whose reported balance differs from invoiced minus
-- applied only by payments this tool created (`push`) that the provider has not reflected yet, and what it
-- waits for. Not an error: the provider's next sync (Panora's runs every 8 hours) settles it. An exception
-- list of the report, kept apart from the balance mismatches.
with settlement as (
    select * from {{ ref('accounting__invoice_settlement') }}
),

final as (
    select
        connection,
        number,
        customer_name,
        invoice_id,
        currency,
        total_amount,
        applied_amount,
        expected_balance,
        reported_balance,
        awaiting,
        due_date
    from settlement
    where is_receivable and status = 'awaiting_sync'
)

select * from final
