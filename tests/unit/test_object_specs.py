"""Declarative record normalization (`sources/common/tables/object_specs.py`): `ObjectSpec.normalize` turns one
API record into its parent row and child rows (id lists, line items and their own id lists), a marker row for
each child table it has no rows for, and raises `RecordError` naming the field, as the provider sent it."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from sources.common.errors import RecordError
from sources.common.reading import values as c
from sources.common.tables.declared import EMPTY_LIST_MARKER, TableSpec
from sources.common.tables.object_specs import Field, IdListChild, ObjectChild, ObjectSpec, first_present

S, I32, I64, TS = pa.string(), pa.int32(), pa.int64(), pa.timestamp("us", tz="UTC")

THINGS = TableSpec(
    "things",
    {"id": S, "connection": S, "provider": S, "amount": I64, "when": TS, "note": S},
    primary_key=("id",),
)
TAGS = TableSpec(
    "things__tags",
    {"thing_id": S, "position": I32, "connection": S, "tracking_category_id": S},
    primary_key=("thing_id", "position"),
    merge_key=("thing_id",),
)
LINES = TableSpec(
    "things__lines",
    {"thing_id": S, "line_index": I32, "connection": S, "description": S, "qty": I64},
    primary_key=("thing_id", "line_index"),
    merge_key=("thing_id",),
)
LINE_TAGS = TableSpec(
    "things__lines__tags",
    {"thing_id": S, "line_index": I32, "position": I32, "connection": S, "tracking_category_id": S},
    primary_key=("thing_id", "line_index", "position"),
    merge_key=("thing_id",),
)
SPEC = ObjectSpec(
    resource="things",
    parent=THINGS,
    foreign_key="thing_id",
    fields=(Field("amount", c.minor_units), Field("when", c.timestamp, ("when", "date")), Field("note", c.text)),
    id_lists=(IdListChild(TAGS, ("tags",)),),
    objects=(
        ObjectChild(
            LINES,
            ("lines", "items"),
            fields=(Field("description", c.text, ("description", "name")), Field("qty", c.minor_units)),
            id_lists=(IdListChild(LINE_TAGS, ("tags",)),),
        ),
    ),
    row_defaults={"provider": "acme-api"},
    source_names={"": {"amount": "amt"}, "lines": {"qty": "quantity"}},
)
CHILDREN = ("things__tags", "things__lines", "things__lines__tags")


def test_a_record_becomes_its_parent_row_and_child_rows_keyed_by_its_id():
    record = {
        "id": "t-1",
        "amount": 1250,
        "date": "2026-11-20T10:00:00+01:00",  # the second name of `when`
        "Ref No": "R-9",  # no spec declares it: kept, under the column name dlt gives it
        "tags": ["tc-1", {"id": "tc-2"}],
        "items": [  # the second name of the lines
            {"name": "first", "qty": 2, "tags": ["tc-3"]},
            {"description": "second", "qty": 1, "colour": "red"},
        ],
    }
    rows = SPEC.normalize(record, "acme-eu")
    assert list(rows) == ["things", *CHILDREN]
    assert rows["things"] == [
        {
            "amount": 1250,
            "when": datetime(2026, 11, 20, 9, tzinfo=UTC),
            "note": None,
            "ref_no": "R-9",
            "provider": "acme-api",
            "id": "t-1",
            "connection": "acme-eu",
        }
    ]
    key = {"thing_id": "t-1", "connection": "acme-eu"}
    assert rows["things__tags"] == [
        {**key, "position": 0, "tracking_category_id": "tc-1"},
        {**key, "position": 1, "tracking_category_id": "tc-2"},
    ]
    assert rows["things__lines"] == [
        {"description": "first", "qty": 2, **key, "line_index": 0},
        {"description": "second", "qty": 1, "colour": "red", **key, "line_index": 1},
    ]
    assert rows["things__lines__tags"] == [{**key, "line_index": 0, "position": 0, "tracking_category_id": "tc-3"}]


@pytest.mark.parametrize("lists", [{}, {"tags": None, "lines": None}, {"tags": [], "lines": []}])
def test_a_record_without_children_sends_one_marker_row_per_child_table(lists):
    rows = SPEC.normalize({"id": "t-2", **lists}, "c")
    key = {"thing_id": "t-2", "connection": "c"}
    assert rows["things__tags"] == [{**key, "position": -1, EMPTY_LIST_MARKER: True}]
    assert rows["things__lines"] == [{**key, "line_index": -1, EMPTY_LIST_MARKER: True}]
    assert rows["things__lines__tags"] == [{**key, "line_index": -1, "position": -1, EMPTY_LIST_MARKER: True}]


def test_lines_without_ids_of_their_own_send_a_marker_row_for_that_table_only():
    rows = SPEC.normalize({"id": "t-3", "tags": ["tc-1"], "lines": [{"qty": 1}]}, "c")
    assert [r.get(EMPTY_LIST_MARKER) for r in rows["things__tags"]] == [None]
    assert [r.get(EMPTY_LIST_MARKER) for r in rows["things__lines"]] == [None]
    assert [r[EMPTY_LIST_MARKER] for r in rows["things__lines__tags"]] == [True]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"amount": 5}, "id"),
        ({"id": "   "}, "id"),
        ({"id": "t", "amount": "12.50"}, "amount"),
        ({"id": "t", "date": "31/12/2025"}, "date"),  # named as the record has it
        ({"id": "t", "note": {"text": "x"}}, "note"),
        ({"id": "t", "tags": "tc-1"}, "tags"),
        ({"id": "t", "tags": ["tc-1", 7]}, "tags[1]"),
        ({"id": "t", "lines": "one line"}, "lines"),
        ({"id": "t", "lines": [{"qty": 1}, "not an object"]}, "lines[1]"),
        ({"id": "t", "lines": [{"qty": 1}, {"qty": 1.5}]}, "lines[1].qty"),
        ({"id": "t", "lines": [{"name": ["x"]}]}, "lines[0].name"),  # the line field as the line has it
        ({"id": "t", "lines": [{"tags": ["tc-1", ""]}]}, "lines[0].tags[1]"),
        ({"id": "t", "Amount": 5}, "Amount"),  # its column is a declared one
        ({"id": "t", "Connection": "other"}, "Connection"),
        ({"id": "t", "Ref No": "a", "ref-no": "b"}, "ref-no"),  # two fields, one column
        ({"id": "t", "_dlt_id": "x"}, "_dlt_id"),
    ],
)
def test_a_field_that_cannot_be_read_is_a_record_error_naming_it(record, field):
    with pytest.raises(RecordError) as raised:
        SPEC.normalize(record, "c")
    assert raised.value.field == field


def test_an_error_names_the_field_as_the_provider_calls_it():
    assert SPEC.provider_field("amount") == "amt"
    assert SPEC.provider_field("lines[3].qty") == "lines[3].quantity"
    assert SPEC.provider_field("lines[3].description") == "lines[3].description"
    assert SPEC.provider_field("note") == "note"
    assert SPEC.provider == "acme-api"


def test_the_first_name_present_fills_a_field():
    assert first_present({"when": None, "date": "d"}, ("when", "date")) == ("date", "d")
    assert first_present({}, ("when", "date")) == ("when", None)
    assert Field("when", c.timestamp, ("when", "date")).read({"when": "2026-01-01", "date": "2027-01-01"}) == (
        datetime(2026, 1, 1, tzinfo=UTC)
    )


def test_the_spec_lists_its_tables_parent_first_and_what_it_reads():
    assert [t.name for t in SPEC.tables] == ["things", *CHILDREN]
    assert SPEC.nested_lists == ("lines", "items")
    assert SPEC.consumed == {"id", "amount", "when", "date", "note", "tags", "lines", "items"}
    assert [t.is_child for t in SPEC.tables] == [False, True, True, True]
