-- Integrity: every live payment is either applied to an invoice in the warehouse or listed as unapplied,
-- never both and never neither.
with applied as (
    select distinct payment_id from {{ ref('int_accounting__payment_applications') }} where invoice_in_warehouse
),
unapplied as (
    select payment_id from {{ ref('accounting__unapplied_payments') }}
)
select p.id as payment_id,
       p.id in (select payment_id from applied) as applied,
       p.id in (select payment_id from unapplied) as unapplied
from {{ source('accounting', 'payments') }} as p
where p.deleted_at is null
  and (p.id in (select payment_id from applied)) = (p.id in (select payment_id from unapplied))
