-- Every exchange rate names its day and currency and is above zero: a rate of 0 or below, or one without a
-- day, would convert amounts to nonsense. Any row returned names the rate to correct in `<dataset>.fx_rates`.
select *
from {{ ref('stg_accounting__fx_rates') }}
where rate is null or rate <= 0 or rate_date is null or currency is null
