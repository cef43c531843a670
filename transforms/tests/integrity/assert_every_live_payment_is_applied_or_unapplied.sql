-- Integrity: every live payment on the books at the as-of date (booked on or before it, or undated) is either
-- applied to an invoice in the warehouse at that date or listed as unapplied, never both and never neither.
-- The loaded payments are those the loads knew at the as-of date (macros/raw_rows_known_at.sql).
{%- set payment_columns = ['known.id', 'known.connection', 'known.transaction_date', 'known.created_at', 'known.deleted_at'] %}
with applied as (
    select distinct payment_id
    from {{ ref('int_accounting__payment_applications') }}
    where invoice_in_warehouse and on_books
),
unapplied as (
    select payment_id from {{ ref('accounting__unapplied_payments') }}
)
select p.id as payment_id,
       p.id in (select payment_id from applied) as applied,
       p.id in (select payment_id from unapplied) as unapplied
from {{ raw_rows_known_at('payments', payment_columns) }} as p
where p.deleted_at is null
  and coalesce({{ utc_date('p.transaction_date') }}, {{ utc_date('p.created_at') }}, {{ as_of_date() }})
      <= {{ as_of_date() }}
  and (p.id in (select payment_id from applied)) = (p.id in (select payment_id from unapplied))
