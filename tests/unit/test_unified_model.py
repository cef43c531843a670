"""The unified accounting model (`sources/common/unified_model.py`): every table declares its key among its
columns (a parent by `id`, a child by its parent's id and position, merged on the parent's id), every field
fills a declared column of the type its reader gives, every declared column is filled, and every provider
fills these same tables."""

from __future__ import annotations

import pyarrow as pa
import pytest

from sources.common.reading import values as c
from sources.common.tables.declared import DECIMAL, DELETED_COLUMN, HASH_COLUMN, TIMESTAMP, TableSpec
from sources.common.tables.object_specs import Field, ObjectSpec
from sources.common.unified_model import (
    CONTACT,
    INVOICE,
    JSON_COLUMNS,
    KEY_COLUMNS,
    PAYMENT,
    TRACKING_CATEGORY,
    TRAILING_COLUMNS,
    unified_objects,
)
from sources.panora.objects import OBJECTS as PANORA
from sources.rootfi.objects import OBJECTS as ROOTFI

SPECS = {spec.resource: spec for spec in (PAYMENT, INVOICE, TRACKING_CATEGORY, CONTACT)}
# the column type each reader's values have
READER_TYPES = {
    c.text: pa.string(),
    c.json_text: pa.string(),
    c.minor_units: pa.int64(),
    c.timestamp: TIMESTAMP,
    c.decimal: DECIMAL,
    c.invoice_kind: pa.string(),
    c.boolean: pa.bool_(),
}


def tables_and_fields(spec: ObjectSpec) -> list[tuple[TableSpec, tuple[Field, ...], tuple[str, ...]]]:
    """(table, the fields that fill it, the columns its id lists fill) for every table of a spec."""
    out = [(spec.parent, spec.fields, ())]
    out += [(lst.spec, (), (lst.column,)) for lst in spec.id_lists]
    for obj in spec.objects:
        out.append((obj.spec, obj.fields, ()))
        out += [(lst.spec, (), (lst.column,)) for lst in obj.id_lists]
    return out


@pytest.mark.parametrize("resource", list(SPECS))
def test_a_parent_table_is_keyed_by_id_between_the_key_and_trailing_columns(resource):
    parent = SPECS[resource].parent
    assert parent.name == resource and not parent.is_child
    assert parent.primary_key == ("id",) and parent.merge_key == ()
    columns = list(parent.columns)
    assert columns[: len(KEY_COLUMNS)] == list(KEY_COLUMNS)
    assert columns[-len(TRAILING_COLUMNS) :] == list(TRAILING_COLUMNS)
    assert columns[-2:] == [HASH_COLUMN, DELETED_COLUMN]
    assert parent.json_columns == JSON_COLUMNS and JSON_COLUMNS <= set(columns)


@pytest.mark.parametrize("resource", list(SPECS))
def test_a_child_table_is_keyed_by_its_parents_id_and_position_and_merged_on_the_parents_id(resource):
    spec = SPECS[resource]
    for child in spec.child_specs:
        assert child.is_child and child.name.startswith(f"{resource}__")
        assert child.merge_key == (spec.foreign_key,)
        assert child.primary_key[0] == spec.foreign_key
        assert set(child.primary_key) <= set(child.columns), child.name
        assert child.primary_key[1:] in (("line_index",), ("position",), ("line_index", "position")), child.name
        assert {spec.foreign_key, "connection"} <= set(child.columns), child.name
        assert all(child.columns[key] == pa.int32() for key in child.primary_key[1:]), child.name


@pytest.mark.parametrize("resource", list(SPECS))
def test_every_field_fills_a_declared_column_of_its_readers_type_and_every_column_is_filled(resource):
    spec = SPECS[resource]
    for table, fields, list_columns in tables_and_fields(spec):
        filled = [f.column for f in fields]
        assert len(filled) == len(set(filled)), f"{table.name}: a column filled twice"
        for field in fields:
            assert field.column in table.columns, f"{table.name}.{field.column} is not declared"
            assert table.columns[field.column] == READER_TYPES[field.reader], f"{table.name}.{field.column}"
            assert (field.reader is c.json_text) == (field.column in table.json_columns), field.column
        keys = set(table.primary_key) | {"connection"}
        if not table.is_child:
            keys |= {"provider", HASH_COLUMN}  # the row's provider, and the content hash the scan adds
        assert set(table.columns) == set(filled) | set(list_columns) | keys, table.name


def test_table_names_are_unique_and_the_report_items_value_is_no_amount():
    names = [table.name for spec in SPECS.values() for table in spec.tables]
    assert len(names) == len(set(names))
    for line_items in (PAYMENT.objects[0].spec, INVOICE.objects[0].spec):
        assert line_items.columns["value"] == DECIMAL  # its unit is not documented: not minor units


def test_a_providers_objects_are_the_unified_ones_with_its_name_volatile_fields_and_adapters():
    def adapter(record: dict) -> dict:
        return record

    objects = unified_objects(
        "acme", frozenset({"modified_at"}), {"payments": adapter}, {"invoices": {"": {"issue_date": "posted"}}}
    )
    assert list(objects) == ["payments", "invoices", "tracking_categories", "contacts"]
    for resource, spec in objects.items():
        assert spec.tables == SPECS[resource].tables and spec.fields == SPECS[resource].fields
        assert spec.row_defaults == {"provider": "acme"} and spec.provider == "acme"
        assert spec.volatile == {"modified_at"}
    assert objects["payments"].adapter is adapter and objects["invoices"].adapter is None
    assert objects["invoices"].provider_field("issue_date") == "posted"
    assert PAYMENT.row_defaults == {} and PAYMENT.adapter is None  # the model itself is left as it is


@pytest.mark.parametrize(("provider", "objects"), [("panora", PANORA), ("rootfi", ROOTFI)])
def test_every_provider_fills_the_unified_tables(provider, objects):
    assert list(objects) == list(SPECS)
    for resource, spec in objects.items():
        assert spec.tables == SPECS[resource].tables and spec.provider == provider
