-- accounting__changed_after_close: one row per change a load saw after a period was closed to an invoice or a
-- payment dated in that period: the `closed_through` variable (the period's last day; by default the last day
-- of the month before the as-of date's) and `closed_at` (when it was closed; by default the end of
-- `closed_through`, UTC). A change is a version seen at or after `closed_at` (stg_accounting__*_versions) that
-- differs from the version before it in:
--   amount     the total
--   date       the issue or due date (an invoice), the transaction date (a payment)
--   currency   the currency
--   status     an invoice's status, when no payment dated after `closed_through` applies to it (a payment
--              after the close that settles an old invoice is not an edit)
--   added      a record first seen after the close, or seen again after it was deleted
--   deleted    a record marked deleted
-- "Dated in the period": booked on or before `closed_through` before or after the change (an undated record is
-- on the books at every date). Only where the connection's history began before `closed_at`: a warehouse
-- whose first load came after the close holds nothing to compare with, and flags nothing.
with invoice_versions as (
    select * from {{ ref('stg_accounting__invoice_versions') }}
),

payment_versions as (
    select * from {{ ref('stg_accounting__payment_versions') }}
),

history_began as (
    select * from {{ ref('int_accounting__history_began') }}
),

applications as (
    select * from {{ ref('int_accounting__payment_applications') }}
),

contacts as (
    select * from {{ ref('stg_accounting__contacts') }}
),

versions as (
    select
        'invoice' as record_type,
        invoice_id as record_id,
        connection,
        number,
        contact_id,
        currency,
        total_minor,
        total_amount,
        booked_on,
        due_date,
        source_status,
        is_deleted,
        valid_from,
        load_id
    from invoice_versions
    union all
    select
        'payment' as record_type,
        payment_id as record_id,
        connection,
        coalesce(remote_id, payment_id) as number,
        contact_id,
        currency,
        total_minor,
        total_amount,
        booked_on,
        cast(null as date) as due_date,
        cast(null as {{ dbt.type_string() }}) as source_status,
        is_deleted,
        valid_from,
        load_id
    from payment_versions
),

compared as (
    select
        versions.*,
        lag(versions.valid_from) over w as previous_valid_from,
        lag(versions.is_deleted) over w as previous_is_deleted,
        lag(versions.currency) over w as previous_currency,
        lag(versions.total_minor) over w as previous_total_minor,
        lag(versions.total_amount) over w as previous_total_amount,
        lag(versions.booked_on) over w as previous_booked_on,
        lag(versions.due_date) over w as previous_due_date,
        lag(versions.source_status) over w as previous_source_status
    from versions
    window w as (partition by versions.record_type, versions.record_id order by versions.valid_from)
),

after_close as (
    select compared.*
    from compared
    inner join history_began
        on history_began.connection = compared.connection
        and history_began.history_began < {{ closed_at() }}
    where compared.valid_from >= {{ closed_at() }}
        and (
            compared.booked_on is null
            or compared.booked_on <= cast('{{ closed_through_value() }}' as date)
            or (compared.previous_valid_from is not null and (
                compared.previous_booked_on is null
                or compared.previous_booked_on <= cast('{{ closed_through_value() }}' as date)
            ))
        )
),

paid_after_close as (
    select distinct invoice_id, connection
    from applications
    where applied_on > cast('{{ closed_through_value() }}' as date)
),

changes as (
    select
        after_close.*,
        'added' as change,
        cast(null as {{ dbt.type_string() }}) as before_value,
        cast(after_close.total_amount as {{ dbt.type_string() }}) || ' ' || coalesce(after_close.currency, '')
            as after_value
    from after_close
    where not after_close.is_deleted and (after_close.previous_valid_from is null or after_close.previous_is_deleted)
    union all
    select
        after_close.*,
        'deleted' as change,
        cast(after_close.previous_total_amount as {{ dbt.type_string() }}) || ' '
            || coalesce(after_close.previous_currency, '') as before_value,
        cast(null as {{ dbt.type_string() }}) as after_value
    from after_close
    where after_close.is_deleted and after_close.previous_valid_from is not null and not after_close.previous_is_deleted
    union all
    select
        after_close.*,
        'amount' as change,
        cast(after_close.previous_total_amount as {{ dbt.type_string() }}) as before_value,
        cast(after_close.total_amount as {{ dbt.type_string() }}) as after_value
    from after_close
    where not after_close.is_deleted and not after_close.previous_is_deleted
        and after_close.total_minor <> after_close.previous_total_minor
    union all
    select
        after_close.*,
        'date' as change,
        cast(after_close.previous_booked_on as {{ dbt.type_string() }})
            || coalesce(' due ' || cast(after_close.previous_due_date as {{ dbt.type_string() }}), '') as before_value,
        cast(after_close.booked_on as {{ dbt.type_string() }})
            || coalesce(' due ' || cast(after_close.due_date as {{ dbt.type_string() }}), '') as after_value
    from after_close
    where not after_close.is_deleted and not after_close.previous_is_deleted
        and (
            after_close.booked_on is distinct from after_close.previous_booked_on
            or after_close.due_date is distinct from after_close.previous_due_date
        )
    union all
    select
        after_close.*,
        'currency' as change,
        after_close.previous_currency as before_value,
        after_close.currency as after_value
    from after_close
    where not after_close.is_deleted and not after_close.previous_is_deleted
        and after_close.currency is distinct from after_close.previous_currency
    union all
    select
        after_close.*,
        'status' as change,
        after_close.previous_source_status as before_value,
        after_close.source_status as after_value
    from after_close
    left join paid_after_close
        on paid_after_close.invoice_id = after_close.record_id and paid_after_close.connection = after_close.connection
    where not after_close.is_deleted and not after_close.previous_is_deleted
        and after_close.record_type = 'invoice'
        and after_close.source_status is distinct from after_close.previous_source_status
        and paid_after_close.invoice_id is null
),

final as (
    select
        changes.connection,
        changes.record_type,
        changes.record_id,
        changes.number,
        contacts.name as customer_name,
        changes.booked_on,
        changes.change,
        changes.before_value,
        changes.after_value,
        changes.valid_from as seen_at,
        changes.load_id,
        cast('{{ closed_through_value() }}' as date) as closed_through,
        {{ closed_at() }} as closed_at,
        changes.record_type || ' ' || changes.record_id || ' ' || changes.change || ' '
            || cast(changes.valid_from as {{ dbt.type_string() }}) as change_key
    from changes
    left join contacts
        on contacts.contact_id = changes.contact_id and contacts.connection = changes.connection
)

select * from final
