{#- The tracking category names of each row of a parent table, from its link table (`link`: the child table
    of tracking category ids, keyed by `keys`), as one text in the order the record lists them. Aggregated
    once and joined by the staging models: a subquery per row took twice as long on a million payments. -#}
{% macro tracking_category_names(link, keys) -%}
    select
        {% for key in keys %}links.{{ key }}, {% endfor -%}
        {{ dbt.listagg('tracking_categories.name', "', '", 'order by links.position') }} as tracking_categories
    from {{ source('accounting', link) }} as links
    inner join {{ source('accounting', 'tracking_categories') }} as tracking_categories
        on tracking_categories.id = links.tracking_category_id
    group by {% for key in keys %}links.{{ key }}{{ ", " if not loop.last }}{% endfor %}
{%- endmacro %}
