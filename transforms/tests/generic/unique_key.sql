{#- The grain of a model: no two rows share these columns (NULLs count as equal values, as in GROUP BY).
    dbt's own `unique` takes one column; a grain of several would otherwise need a package from the hub. -#}
{% test unique_key(model, columns) %}
select {{ columns | join(', ') }}, count(*) as rows_with_this_key
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
