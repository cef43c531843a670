"""Declarative record normalization: which API fields fill which typed columns, and what becomes a child
table. A provider describes its objects with `Field`s and `ObjectSpec`s; `normalize` turns one API record
into rows for the parent table and its child tables, or raises `RecordError` naming the field."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sources.common.errors import RecordError
from sources.common.reading.undeclared import column_name
from sources.common.reading.values import NUL, id_list, required_id, text
from sources.common.tables.declared import TableSpec

Reader = Callable[[Any, str], Any]
# A provider's record -> the same record in the unified vocabulary (`sources/common/unified_model.py`), or
# `RecordError` naming the provider's field (with the record's id when it got that far).
Adapter = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Field:
    """A column filled from the first of `sources` present in the record (several names for one
    meaning: the spec's, the server's), typed by `reader`."""

    column: str
    reader: Reader
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.sources:
            object.__setattr__(self, "sources", (self.column,))

    def read(self, record: dict[str, Any]) -> Any:
        key, value = first_present(record, self.sources)
        return None if value is None else self.reader(value, key)


def first_present(record: dict[str, Any], keys: Sequence[str]) -> tuple[str, Any]:
    """The first of `keys` whose value is not null, and that value; else the first key and None."""
    for key in keys:
        value = record.get(key)
        if value is not None:
            return key, value
    return keys[0], None


class FieldReader:
    """The fields of one object kind, flattened into tuples for the hot loop of a load (a few hundred
    thousand records a run): text already of the right type skips the reader call, a field with one
    source name skips the alias search, and unknown keys are found with one set difference."""

    def __init__(self, fields: Sequence[Field], consumed: frozenset[str], columns: frozenset[str]) -> None:
        single = [f for f in fields if len(f.sources) == 1]
        self.text = [(f.column, f.sources[0]) for f in single if f.reader is text]
        self.typed = [(f.column, f.sources[0], f.reader) for f in single if f.reader is not text]
        self.aliased = [f for f in fields if len(f.sources) > 1]
        self.columns = columns | {f.column for f in fields}  # the table's declared columns
        self.known = consumed | self.columns

    def read(self, record: dict[str, Any]) -> dict[str, Any]:
        """Typed declared fields plus every other key of the record as it came (kept, not dropped), under
        the column name dlt gives it; a key whose column is already taken is a `RecordError`."""
        get = record.get
        row: dict[str, Any] = {}
        for column, key in self.text:
            value = get(key)
            ok = value is None or (type(value) is str and NUL not in value and value.isascii())
            row[column] = value if ok else text(value, key)
        for column, key, reader in self.typed:
            value = get(key)
            row[column] = None if value is None else reader(value, key)
        for f in self.aliased:
            row[f.column] = f.read(record)
        extras = record.keys() - self.known
        for key in sorted(extras) if len(extras) > 1 else extras:
            name = column_name(key)
            if name in row or name in self.columns:
                taken = "a declared column" if name in self.columns else "another field of the record"
                raise RecordError(key, f"its column name {name!r} is already taken by {taken}")
            row[name] = record[key]
        return row


@dataclass(frozen=True)
class IdListChild:
    """A list of ids (tracking categories) stored as a child table, one row per id."""

    spec: TableSpec
    sources: tuple[str, ...]
    column: str = "tracking_category_id"


@dataclass(frozen=True)
class ObjectChild:
    """A list of objects (line items) stored as a child table, one row per object; the objects may have
    id lists of their own (grandchild tables keyed by the root's id and the line's position)."""

    spec: TableSpec
    sources: tuple[str, ...]
    fields: tuple[Field, ...]
    id_lists: tuple[IdListChild, ...] = ()

    @cached_property
    def consumed(self) -> frozenset[str]:
        keys = {k for f in self.fields for k in f.sources}
        keys |= {k for lst in self.id_lists for k in lst.sources}
        return frozenset(keys)

    @cached_property
    def reader(self) -> FieldReader:
        return FieldReader(self.fields, self.consumed, self.spec.stored_columns)


@dataclass(frozen=True)
class ObjectSpec:
    """One API object kind: its parent table, typed fields and child lists."""

    resource: str
    parent: TableSpec
    foreign_key: str  # the children's column that names the parent, e.g. `payment_id`
    fields: tuple[Field, ...]
    id_lists: tuple[IdListChild, ...] = ()
    objects: tuple[ObjectChild, ...] = ()
    volatile: frozenset[str] = frozenset()
    row_defaults: dict[str, Any] = field(default_factory=dict)
    adapter: Adapter | None = None
    # unified field -> the provider's name for it, for the record ("") and its line items ("line_items"):
    # an error names the field as the provider sent it
    source_names: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def provider_field(self, field_path: str) -> str:
        """A field named in the unified vocabulary (`issue_date`, `line_items[0].unit_price`) in the
        provider's own (`posted_date`, `line_items[0].unit_amount`)."""
        if not self.source_names:
            return field_path
        head, dot, rest = field_path.partition(".")
        if dot:  # the list is renamed by the record's names (Merge's `applied_to_lines`), its fields by its own
            line_key = head.split("[", 1)[0]
            own = _renamed(rest, self.source_names.get(line_key, {}))
            return f"{_renamed(head, self.source_names.get('', {}))}.{own}"
        return _renamed(head, self.source_names.get("", {}))

    @property
    def provider(self) -> str | None:
        return self.row_defaults.get("provider")

    @cached_property
    def nested_lists(self) -> tuple[str, ...]:
        """The keys of the record's lists of objects (line items), for the content hash."""
        return tuple(k for obj in self.objects for k in obj.sources)

    @cached_property
    def tables(self) -> tuple[TableSpec, ...]:
        """The parent table, then the child tables, in the order they are written."""
        return (self.parent, *self.child_specs)

    @cached_property
    def child_specs(self) -> list[TableSpec]:
        specs = [c.spec for c in self.id_lists]
        for obj in self.objects:
            specs.append(obj.spec)
            specs.extend(c.spec for c in obj.id_lists)
        return specs

    @cached_property
    def consumed(self) -> frozenset[str]:
        keys = {"id"} | {k for f in self.fields for k in f.sources}
        keys |= {k for c in self.id_lists for k in c.sources}
        keys |= {k for c in self.objects for k in c.sources}
        return frozenset(keys)

    @cached_property
    def reader(self) -> FieldReader:
        return FieldReader(self.fields, self.consumed, self.parent.stored_columns)

    def normalize(self, record: dict[str, Any], connection: str) -> dict[str, list[dict[str, Any]]]:
        """Rows per table name for one record. Every child table gets either rows or a marker row, so
        a list that shrank to nothing replaces the stored rows too."""
        record_id = required_id(record.get("id"))
        parent = self.reader.read(record)
        parent.update(self.row_defaults, id=record_id, connection=connection)
        out: dict[str, list[dict[str, Any]]] = {self.parent.name: [parent]}
        key = {self.foreign_key: record_id, "connection": connection}
        for lst in self.id_lists:
            out[lst.spec.name] = _id_rows(record, lst, key)
        for obj in self.objects:
            _, lines = first_present(record, obj.sources)
            if lines is None:
                lines = []
            if not isinstance(lines, list):
                raise RecordError(obj.sources[0], f"expected a list, got {type(lines).__name__}")
            line_rows = out.setdefault(obj.spec.name, [])
            for lst in obj.id_lists:
                out.setdefault(lst.spec.name, [])
            for index, line in enumerate(lines):
                if not isinstance(line, dict):
                    raise RecordError(f"{obj.sources[0]}[{index}]", f"expected an object, got {line!r:.60}")
                try:
                    row = obj.reader.read(line)
                    row.update(key, line_index=index)
                    line_rows.append(row)
                    for lst in obj.id_lists:
                        out[lst.spec.name].extend(_id_rows(line, lst, {**key, "line_index": index}))
                except RecordError as exc:
                    raise RecordError(f"{obj.sources[0]}[{index}].{exc.field}", exc.message) from None
        for child in self.child_specs:
            if not out[child.name]:
                out[child.name].append(child.marker_row(key))
        return out


def _renamed(segment: str, names: Mapping[str, str]) -> str:
    """`segment` (`field` or `field[2]`) with its field renamed by `names`."""
    base, bracket, index = segment.partition("[")
    return names.get(base, base) + bracket + index


def _id_rows(record: dict[str, Any], lst: IdListChild, key: dict[str, Any]) -> list[dict[str, Any]]:
    source, value = first_present(record, lst.sources)
    if value is None:
        return []
    column = lst.column
    return [{**key, "position": position, column: item} for position, item in enumerate(id_list(value, source))]
