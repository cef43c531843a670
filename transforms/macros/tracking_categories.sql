{#- The tracking category names of each row of a parent table, from its link table (`link`: the child table
    of tracking category ids, keyed by `keys`), as one text in the order the record lists them. Aggregated
    once and joined by the staging models: a subquery per row took twice as long on a million payments. -#}
{% macro tracking_category_names(link, keys) -%}
    SELECT {% for key in keys %}t.{{ key }}, {% endfor -%}
        {{ dbt.listagg('tc.name', "', '", 'order by t.position') }} AS tracking_categories
    FROM {{ source('accounting', link) }} AS t
    JOIN {{ source('accounting', 'tracking_categories') }} AS tc ON tc.id = t.tracking_category_id
    GROUP BY {% for key in keys %}t.{{ key }}{{ ", " if not loop.last }}{% endfor %}
{%- endmacro %}
