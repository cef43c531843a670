{#- What a warehouse loaded by an earlier version may lack: a table (contacts) or a column (invoices.kind).
    The models read it when it is there and a typed NULL (or no rows) when it is not, so an old warehouse
    still builds; the next load that brings the table or column fills it. -#}

{#- The relation of the loaded table `identifier`, or none when the dataset has no such table. -#}
{% macro optional_raw_relation(identifier) -%}
    {{ return(adapter.get_relation(
        database=target.database, schema=var('raw_schema', target.schema), identifier=identifier)) }}
{%- endmacro %}

{#- `alias.column` when the loaded table `table` has that column, else a NULL of `type`. -#}
{% macro optional_column(table, alias, column, type) -%}
    {%- set relation = optional_raw_relation(table) if execute else none -%}
    {%- set names = [] -%}
    {%- if relation is not none -%}
        {%- for col in adapter.get_columns_in_relation(relation) -%}{%- do names.append(col.name | lower) -%}{%- endfor -%}
    {%- endif -%}
    {%- if column in names -%}{{ alias }}.{{ column }}{%- else -%}cast(null as {{ type }}){%- endif -%}
{%- endmacro %}
