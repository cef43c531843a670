"""The fast path of normalization: one page of records -> parent and child arrow tables with pyarrow kernels.

`ObjectSpec.normalize` reads one record at a time in Python; it is the reference, and it names the record
and field of every bad value. This module builds the same tables for a whole page at once: pyarrow
converts the page into a typed struct array in C++, timestamps and decimals are cast as columns, and
child tables come from list offsets (`list_flatten`, `list_parent_indices`). It is about twice as fast
per record. It does not judge bad values: any value it cannot take as it is (a wrong type, a missing id, a
date arrow cannot parse, a null inside a list) makes it give up on the page (`None`), and the page goes
the reference way, which then reports exactly what is wrong. `tests/unit/test_arrow_path.py` checks that both
ways give identical tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sources.common.errors import RecordError
from sources.common.reading import values as c
from sources.common.reading.undeclared import ColumnKinds, column_name
from sources.common.tables.declared import EMPTY_LIST_MARKER, HASH_COLUMN, TIMESTAMP, TableSpec
from sources.common.tables.object_specs import Field, IdListChild, ObjectChild, ObjectSpec, first_present

# How each reader's input arrives in the struct, and how the column is finished.
_RAW = {
    c.text: pa.string(),
    c.minor_units: pa.int64(),
    c.timestamp: pa.string(),
    c.decimal: pa.string(),
    c.invoice_kind: pa.string(),
    c.boolean: pa.bool_(),  # arrow refuses 1 or "true" for a boolean as the reader does: the page then gives up
}
_PAYABLE, _RECEIVABLE = pa.array(sorted(c.PAYABLE_SPELLINGS)), pa.array(sorted(c.RECEIVABLE_SPELLINGS))


class _GiveUp(Exception):
    """This page needs the record-by-record path."""


_EARLIEST, _LATEST = pa.scalar(c.EARLIEST, TIMESTAMP), pa.scalar(c.LATEST, TIMESTAMP)


def _checked_text(column: pa.Array) -> pa.Array:
    """A text column as it is, unless a value holds a NUL (the reader rejects those)."""
    if len(column) and pc.any(pc.match_substring(column, c.NUL)).as_py():
        raise _GiveUp
    return column


def _checked_times(column: pa.Array) -> pa.Array:
    """Timestamps within the years the reader accepts (arrow parses the year 0 too)."""
    if len(column) - column.null_count:
        extremes = pc.min_max(column)
        if pc.less(extremes["min"], _EARLIEST).as_py() or pc.greater(extremes["max"], _LATEST).as_py():
            raise _GiveUp
    return column


def _kinds(column: pa.Array) -> pa.Array:
    """`c.invoice_kind` over a column: the same ASCII trim and case as the reader."""
    if column.type != pa.string():
        raise _GiveUp  # the reader takes only text and refuses anything else (rare): it names the field
    word = pc.ascii_upper(pc.utf8_trim(column, characters=c.ASCII_SPACE))
    word = pc.if_else(pc.string_is_ascii(word), word, pa.scalar(None, pa.string()))
    receivable = pc.if_else(pc.is_in(word, value_set=_RECEIVABLE), "receivable", pa.scalar(None, pa.string()))
    return pc.if_else(pc.is_in(word, value_set=_PAYABLE), "payable", receivable)


def _field_types(fields: Sequence[Field], id_lists: Sequence[IdListChild]) -> dict[str, pa.DataType]:
    types: dict[str, pa.DataType] = {}
    for f in fields:
        if f.reader is c.json_text:
            continue  # kept as Python objects, serialized one by one
        if f.reader not in _RAW:
            raise TypeError(f"no columnar form for reader {f.reader.__name__}")
        for key in f.sources:
            if types.setdefault(key, _RAW[f.reader]) != _RAW[f.reader]:
                raise TypeError(f"key {key!r} is read with two types")
    for lst in id_lists:
        for key in lst.sources:
            types[key] = pa.list_(pa.string())
    return types


def _coalesced(struct: pa.StructArray, sources: Sequence[str]) -> pa.Array:
    """The first non-null of several source fields, row by row."""
    parts = [struct.field(k) for k in sources]
    return parts[0] if len(parts) == 1 else pc.coalesce(*parts)


def _finish(f: Field, struct: pa.StructArray, records: Sequence[dict[str, Any]], target: pa.DataType) -> pa.Array:
    """One declared column from the struct: the first present source, cast to the table's type."""
    if f.reader is c.json_text:
        values = [f.read(record) for record in records]  # JSON text, as the reference path writes it
        return pa.array(values, pa.string())
    column = _coalesced(struct, f.sources)
    if f.reader is c.text:
        return _checked_text(column)
    if f.reader is c.invoice_kind:
        return _kinds(column)
    try:
        cast = pc.cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise _GiveUp from None
    return _checked_times(cast) if f.reader is c.timestamp else cast


def _positions(lengths: np.ndarray) -> np.ndarray:
    """0, 1, ... within each list, for the flattened elements of lists of these lengths."""
    total = int(lengths.sum())
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return np.arange(total, dtype=np.int64) - starts


def _flatten(column: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """A list column's elements, each element's row, and each row's list length (null = empty)."""
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(column)
    parents = pc.list_parent_indices(column).to_numpy(zero_copy_only=False).astype(np.int64)
    if flat.null_count:
        raise _GiveUp  # a null inside a list: the reference path names it
    if pa.types.is_string(flat.type):
        _checked_text(flat)
    return flat, parents, lengths


def _extra_keys_named(rows: Sequence[dict[str, Any]], known: frozenset[str]) -> None:
    """Every extra key already has its column's name (else the record-by-record path names or rejects it)."""
    keys: set[str] = set().union(*rows)  # one call: a third quicker than a loop over the rows
    for key in keys - known:
        if column_name(key) != key:
            raise _GiveUp


class ArrowPageBuilder:
    """Builds one object kind's tables for a page of records with arrow kernels (see the module text)."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        types = _field_types(spec.fields, spec.id_lists)
        types["id"] = pa.string()
        for obj in spec.objects:
            line_types = _field_types(obj.fields, obj.id_lists)
            line_struct = pa.struct([pa.field(k, t) for k, t in line_types.items()])
            for key in obj.sources:
                types[key] = pa.list_(line_struct)
        self.struct_type = pa.struct([pa.field(k, t) for k, t in types.items()])
        self.known = spec.reader.known
        # pyarrow reads a string given for a list as a list of characters: such keys are checked first
        self.list_keys = [k for k, t in types.items() if pa.types.is_list(t)]
        self.line_list_keys = {
            key: [k for lst in obj.id_lists for k in lst.sources] for obj in spec.objects for key in obj.sources
        }
        # pyarrow fills an int64 field from a float by truncating it (5.5 -> 5): amounts must be ints here
        self.int_keys = [k for k, t in types.items() if t == pa.int64()]
        self.line_int_keys = {
            key: [k for f in obj.fields if f.reader is c.minor_units for k in f.sources]
            for obj in spec.objects
            for key in obj.sources
        }

    def build(
        self,
        records: Sequence[dict[str, Any]],
        hashes: Sequence[str],
        connection: str,
        kinds: ColumnKinds,
        pending: dict[str, dict[str, str]],
        stored: np.ndarray | None = None,
    ) -> dict[str, tuple]:
        """table name -> (arrow table, JSON extra columns), or raises `_GiveUp` via `try_build`. The kinds
        of new extra columns go into `pending` (committed by `try_build` once the whole page is built).
        `stored`: for each record, whether the warehouse holds it (None: every one), so that an empty list
        needs a marker row to clear the child rows stored for it; a record new to it gets none."""
        spec = self.spec
        for record in records:
            for key in self.int_keys:
                value = record.get(key)
                if value is not None and type(value) is not int:
                    raise _GiveUp
            for key in self.list_keys:
                value = record.get(key)
                if value is not None and type(value) is not list:
                    raise _GiveUp
                if value and key in self.line_list_keys:
                    for line in value:
                        if type(line) is not dict:
                            raise _GiveUp
                        for line_key in self.line_list_keys[key]:
                            inner = line.get(line_key)
                            if inner is not None and type(inner) is not list:
                                raise _GiveUp
                        for line_key in self.line_int_keys[key]:
                            inner = line.get(line_key)
                            if inner is not None and type(inner) is not int:
                                raise _GiveUp
        _extra_keys_named(records, self.known)
        struct = pa.array(records, type=self.struct_type)
        ids = _checked_text(struct.field("id"))
        if ids.null_count or pc.any(pc.equal(pc.utf8_trim_whitespace(ids), "")).as_py():
            raise _GiveUp
        n = len(records)
        defaults = {**spec.row_defaults, "connection": connection}
        values: dict[str, pa.Array] = {"id": ids, HASH_COLUMN: pa.array(hashes, pa.string())}
        for f in spec.fields:
            values[f.column] = _finish(f, struct, records, spec.parent.columns[f.column])
        extras = kinds.arrays(spec.parent.name, records, self.known, pending)
        out = {spec.parent.name: self._table(spec.parent, values, n, defaults, extras)}
        key = {"connection": connection}
        for lst in spec.id_lists:
            column = _coalesced(struct, lst.sources)
            out[lst.spec.name] = self._id_list_table(lst, column, ids, key, spec.foreign_key, stored)
        for obj in spec.objects:
            out.update(self._object_tables(obj, struct, records, ids, key, kinds, pending, stored))
        return out

    def try_build(
        self,
        records: Sequence[dict[str, Any]],
        hashes: Sequence[str],
        connection: str,
        kinds: ColumnKinds | None = None,
        stored: np.ndarray | None = None,
    ) -> dict | None:
        """The page's tables, or None when a value needs the record-by-record path (`build`)."""
        kinds = kinds if kinds is not None else ColumnKinds()
        pending: dict[str, dict[str, str]] = {}
        try:
            built = self.build(records, hashes, connection, kinds, pending, stored)
        except (_GiveUp, RecordError, pa.ArrowException, OverflowError, ValueError, TypeError):
            return None
        for table, fresh in pending.items():
            kinds.commit(table, fresh)
        return built

    # -- pieces ------------------------------------------------------------------------------------------
    @staticmethod
    def _table(
        spec: TableSpec,
        values: dict[str, pa.Array],
        n: int,
        constants: dict[str, Any],
        extras: list[tuple[str, pa.Array, bool]],
        markers: list[dict[str, Any]] | None = None,
    ) -> tuple[pa.Table, list[str]]:
        arrays = []
        for name, typ in spec.columns.items():
            if name in values:
                arrays.append(values[name])
            elif name in constants:
                arrays.append(pa.array([constants[name]] * n, typ))
            else:
                arrays.append(pa.nulls(n, typ))
        names = list(spec.columns)
        types = list(spec.columns.values())
        if spec.is_child:
            arrays.append(pa.nulls(n, pa.bool_()))
            names.append(EMPTY_LIST_MARKER)
            types.append(pa.bool_())
        arrays = [a if a.type == t else a.cast(t) for a, t in zip(arrays, types, strict=True)]
        table = pa.Table.from_arrays(arrays, names=names)
        json_extras = []
        for name, array, is_json in extras:
            table = table.append_column(name, array)
            if is_json:
                json_extras.append(name)
        if markers:
            marker_table, _ = spec.build(markers)
            table = pa.concat_tables([table, marker_table], promote_options="default")
        return table, json_extras

    def _id_list_table(
        self,
        lst: IdListChild,
        column: pa.Array,
        root_ids: pa.Array,
        key: dict[str, Any],
        foreign_key: str,
        stored: np.ndarray | None,
        line_index: pa.Array | None = None,
        root_of_row: np.ndarray | None = None,
        roots: int | None = None,
    ) -> tuple[pa.Table, list[str]]:
        flat, parents, lengths = _flatten(column)
        if pc.any(pc.equal(flat, "")).as_py():
            raise _GiveUp
        values = {
            foreign_key: root_ids.take(pa.array(parents if root_of_row is None else root_of_row[parents])),
            "position": pa.array(_positions(lengths), pa.int32()),
            lst.column: flat,
        }
        if line_index is not None:
            values["line_index"] = line_index.take(pa.array(parents))
        if root_of_row is None:
            empty = np.flatnonzero(lengths == 0)
        else:
            per_root = np.bincount(root_of_row[parents], minlength=roots)
            empty = np.flatnonzero(per_root == 0)
        markers = self._markers(lst.spec, root_ids, empty, foreign_key, key, stored)
        return self._table(lst.spec, values, len(flat), key, [], markers)

    def _object_tables(
        self,
        obj: ObjectChild,
        struct: pa.StructArray,
        records: Sequence[dict[str, Any]],
        root_ids: pa.Array,
        key: dict[str, Any],
        kinds: ColumnKinds,
        pending: dict[str, dict[str, str]],
        stored: np.ndarray | None,
    ) -> dict[str, tuple]:
        foreign_key = self.spec.foreign_key
        column = _coalesced(struct, obj.sources)
        lines, parents, lengths = _flatten(column)
        line_dicts: list[dict[str, Any]] = []
        for record in records:
            line_dicts.extend(first_present(record, obj.sources)[1] or [])
        line_index = pa.array(_positions(lengths), pa.int32())
        values: dict[str, pa.Array] = {foreign_key: root_ids.take(pa.array(parents)), "line_index": line_index}
        for f in obj.fields:
            values[f.column] = _finish(f, lines, line_dicts, obj.spec.columns[f.column])
        known = obj.reader.known
        _extra_keys_named(line_dicts, known)
        extras = kinds.arrays(obj.spec.name, line_dicts, known, pending)
        markers = self._markers(obj.spec, root_ids, np.flatnonzero(lengths == 0), foreign_key, key, stored)
        out = {obj.spec.name: self._table(obj.spec, values, len(lines), key, extras, markers)}
        for lst in obj.id_lists:
            column = _coalesced(lines, lst.sources)
            out[lst.spec.name] = self._id_list_table(
                lst,
                column,
                root_ids,
                key,
                foreign_key,
                stored,
                line_index=line_index,
                root_of_row=parents,
                roots=len(records),
            )
        return out

    @staticmethod
    def _markers(
        spec: TableSpec,
        root_ids: pa.Array,
        rows: np.ndarray,
        foreign_key: str,
        key: dict[str, Any],
        stored: np.ndarray | None,
    ) -> list[dict[str, Any]]:
        """The marker rows of these records (their list is empty), for those the warehouse holds (`build`)."""
        if stored is not None and len(rows):
            rows = rows[stored[rows]]
        if not len(rows):
            return []
        ids = root_ids.take(pa.array(rows)).to_pylist()
        return [spec.marker_row({foreign_key: i, **key}) for i in ids]


def builder_for(spec: ObjectSpec) -> ArrowPageBuilder | None:
    """The fast builder of an object kind, or None when one of its readers has no columnar form."""
    try:
        return ArrowPageBuilder(spec)
    except TypeError:
        return None
