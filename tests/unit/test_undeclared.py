"""Fields no spec declares (`sources/common/reading/undeclared.py`): the column each becomes (dlt's snake_case
name, `_dlt` names refused), and the one type that column keeps: the warehouse's where it has the column,
else the first value's; later values converted when that loses nothing, else the record is rejected by that
field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from sources.common.errors import RecordError
from sources.common.reading.undeclared import (
    ARROW_TYPES,
    BIGINT,
    BOOL,
    DECIMAL,
    DOUBLE,
    JSON,
    TEXT,
    TIMESTAMP,
    ColumnKinds,
    coerce,
    column_name,
    kind_of,
    kind_of_stored,
)


def at(row, column) -> str:
    return f"line_items[{row['line_index']}].{column}" if "line_index" in row else column


@pytest.mark.parametrize(
    ("key", "column"),
    [
        ("TotalAmount", "total_amount"),
        ("Ref No", "ref_no"),
        ("ref-no", "ref_no"),
        ("settlement_total", "settlement_total"),
        ("Currency", "currency"),
    ],
)
def test_an_extra_field_gets_the_column_name_dlt_would_give_it(key, column):
    assert column_name(key) == column


@pytest.mark.parametrize("key", ["_dlt_load_id", "_DLT_ID", "_dlt"])
def test_a_name_that_becomes_one_of_dlts_columns_is_refused_naming_the_field(key):
    with pytest.raises(RecordError, match="reserved for dlt") as raised:
        column_name(key)
    assert raised.value.field == key


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (True, BOOL),  # a bool is an int in Python: not a BIGINT column here
        (7, BIGINT),
        (1.5, DOUBLE),
        ("x", TEXT),
        (Decimal("1.25"), DECIMAL),
        (datetime(2026, 1, 2, tzinfo=UTC), TIMESTAMP),
        ({"a": 1}, JSON),
        ([1, 2], JSON),
    ],
)
def test_the_first_value_gives_the_column_its_kind(value, kind):
    assert kind_of(value, "f") == kind


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, float("nan"), float("inf"), 2.0**63])
def test_a_first_value_no_column_type_holds_exactly_is_refused(value):
    with pytest.raises(RecordError) as raised:
        kind_of(value, "settlement_total")
    assert raised.value.field == "settlement_total"


@pytest.mark.parametrize(
    ("kind", "value", "stored"),
    [
        (DOUBLE, 2, 2.0),  # an integer into a fraction column
        (BIGINT, 7.0, 7),  # a float without fraction into an integer column
        (TEXT, 5, "5"),  # a number, a flag or an object into a text column, as its JSON text
        (TEXT, True, "true"),
        (TEXT, {"b": 1, "a": 2}, '{"a":2,"b":1}'),
        (TEXT, 1.5, "1.5"),
        (JSON, "x", '"x"'),  # anything into a JSON column
        (JSON, 3, "3"),
        (DECIMAL, "1.5", Decimal("1.5")),
        (TIMESTAMP, "2026-01-02T03:04:05+01:00", datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC)),
        (BOOL, False, False),
        (BIGINT, None, None),  # a null fits every kind
    ],
)
def test_a_later_value_is_converted_when_that_loses_nothing(kind, value, stored):
    assert coerce(kind, value, "f") == stored


@pytest.mark.parametrize(
    ("kind", "value", "words"),
    [
        (BIGINT, "abc", "holds bigint"),
        (BIGINT, True, "holds bigint"),  # a flag is no integer
        (BIGINT, 5.5, "an integer"),
        (DOUBLE, 2**60, "too large for the column's double precision"),
        (DOUBLE, "1.5", "holds double"),
        (BOOL, 1, "holds bool"),
        (DECIMAL, [1], "holds decimal"),
        (TIMESTAMP, "yesterday", "malformed date-time"),
        (TEXT, "a\x00b", "NUL"),
    ],
)
def test_a_later_value_that_would_change_meaning_is_a_record_error_naming_the_field(kind, value, words):
    with pytest.raises(RecordError, match=words) as raised:
        coerce(kind, value, "line_items[2].ref")
    assert raised.value.field == "line_items[2].ref"


@pytest.mark.parametrize(
    ("spelled", "kind"),
    [
        ("BIGINT", BIGINT),
        ("integer", BIGINT),
        ("DOUBLE", DOUBLE),
        ("double precision", DOUBLE),
        ("FLOAT", DOUBLE),
        ("real", DOUBLE),
        ("BOOLEAN", BOOL),
        ("DECIMAL(38,12)", DECIMAL),
        ("numeric", DECIMAL),
        ("TIMESTAMP WITH TIME ZONE", TIMESTAMP),
        ("date", TIMESTAMP),
        ("JSON", JSON),
        ("jsonb", JSON),
        ("VARCHAR", TEXT),
        ("character varying", TEXT),
    ],
)
def test_a_stored_columns_type_is_read_as_its_kind(spelled, kind):
    assert kind_of_stored(spelled) == kind


def test_the_first_record_types_a_column_and_a_later_one_of_another_type_is_rejected_by_field():
    kinds = ColumnKinds()
    declared = {"id", "line_index"}
    first = [{"id": "a", "ref": 5}, {"id": "a", "line_index": 0, "rate": 1}]
    fresh = kinds.type_rows("payments", first, declared, at)
    assert fresh == {"ref": BIGINT, "rate": BIGINT}
    assert kinds.table("payments") == {}  # nothing is taken before the whole record loads
    kinds.commit("payments", fresh)

    later = [{"id": "b", "ref": 7.0}, {"id": "b", "line_index": 3, "rate": "x"}]
    with pytest.raises(RecordError) as raised:
        kinds.type_rows("payments", later, declared, at)
    assert raised.value.field == "line_items[3].rate"
    converted = [{"id": "c", "ref": 9.0, "new": None}]
    assert kinds.type_rows("payments", converted, declared, at) == {}  # a null gives no kind
    assert converted == [{"id": "c", "ref": 9, "new": None}]
    assert kinds.table("payments") == {"ref": BIGINT, "rate": BIGINT}
    assert kinds.table("invoices") == {}  # each table's columns are its own


def test_the_warehouses_type_wins_over_the_first_value_of_a_run():
    kinds = ColumnKinds()
    kinds.seed("payments", {"ref": TEXT})
    row = {"id": "a", "ref": 5, "flag": True}
    assert kinds.type_rows("payments", [row], {"id"}, at) == {"flag": BOOL}
    assert row == {"id": "a", "ref": "5", "flag": True}
    kinds.commit("payments", {"ref": BIGINT, "flag": BOOL})
    kinds.seed("payments", {"flag": TEXT})  # neither a later commit nor a later seed changes a kind
    assert kinds.table("payments") == {"ref": TEXT, "flag": BOOL}


def test_arrays_type_the_extra_columns_and_leave_out_one_with_only_nulls():
    kinds = ColumnKinds()
    rows = [{"id": "a", "ref": 5, "nothing": None, "note": {"k": 1}}, {"id": "b", "ref": None, "note": None}]
    kinds.commit("payments", kinds.type_rows("payments", rows, {"id"}, at))  # the record loads
    arrays = kinds.arrays("payments", rows, {"id"})
    assert [(name, array.type, is_json) for name, array, is_json in arrays] == [
        ("note", pa.string(), True),
        ("ref", ARROW_TYPES[BIGINT], False),
    ]
    assert arrays[0][1].to_pylist() == ['{"k":1}', None] and arrays[1][1].to_pylist() == [5, None]
    assert kinds.table("payments") == {"note": JSON, "ref": BIGINT}


def test_arrays_of_a_whole_page_convert_and_hold_new_kinds_back_until_the_page_loads():
    kinds = ColumnKinds()
    pending: dict[str, dict[str, str]] = {}
    arrays = kinds.arrays("payments", [{"id": "a", "rate": 1.5}, {"id": "b", "rate": 2}], {"id"}, pending)
    assert [(name, array.to_pylist()) for name, array, _ in arrays] == [("rate", [1.5, 2.0])]
    assert pending == {"payments": {"rate": DOUBLE}} and kinds.table("payments") == {}
    with pytest.raises(RecordError) as raised:
        kinds.arrays("payments", [{"id": "a", "rate": 1.5}, {"id": "b", "rate": "fast"}], {"id"}, {})
    assert raised.value.field == "rate"
