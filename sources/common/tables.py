"""Declared tables and their arrow builders.

The sources yield arrow tables instead of dicts: dlt's JSON normalizer is the slow step of a load
(about 35k rows/s measured here), while arrow tables go to parquet as they are. The price is that child
tables are built here, with plain foreign keys, instead of by dlt's nested-table machinery.

A `TableSpec` declares a table's typed columns and keys; fields no spec declares are kept as extra
columns with an inferred type (nested values as JSON text), so a new field upstream becomes a new column.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import dlt
import pyarrow as pa

from sources.common.columns import json_text


class _JsonHintNotice(logging.Filter):
    """dlt warns on every page that a JSON column hint overrides the arrow string type; that override is
    the intent here (JSON text loads into a JSON column), so that one notice is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonHintNotice())

TIMESTAMP = pa.timestamp("us", tz="UTC")
DECIMAL = pa.decimal128(38, 12)
EMPTY_LIST_MARKER = "_empty_list_marker"
# A marker row's key columns: never a real position, and the row itself is never stored.
MARKER_POSITIONS = {"line_index": -1, "position": -1}

MERGE = {"disposition": "merge", "strategy": "delete-insert"}
APPEND = "append"


@dataclass(frozen=True)
class TableSpec:
    """One destination table: its name, declared columns (in order) and keys.

    Args:
        name: the table name in the dataset.
        columns: declared column name -> arrow type.
        json_columns: declared columns that hold JSON text and load as JSON.
        primary_key: the table's key. Child tables have one too (parent id + position): dlt de-duplicates
            the staged rows on it, so a load job that runs twice after a crash cannot double the rows.
        merge_key: for child tables, the parent's foreign key: every load that carries a parent replaces
            all its child rows, and a parent whose list became empty sends one marker row (positions -1)
            that deletes them and is not itself stored.
    """

    name: str
    columns: Mapping[str, pa.DataType]
    json_columns: frozenset[str] = frozenset()
    primary_key: tuple[str, ...] = ()
    merge_key: tuple[str, ...] = ()
    write_disposition: Any = field(default_factory=lambda: MERGE)

    @property
    def is_child(self) -> bool:
        return bool(self.merge_key)

    def column_hints(self, extra_json: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        hints: dict[str, dict[str, Any]] = {c: {"data_type": "json"} for c in (*self.json_columns, *extra_json)}
        if self.is_child:
            hints[EMPTY_LIST_MARKER] = {"data_type": "bool", "hard_delete": True}
        return hints

    def build(self, rows: Sequence[dict[str, Any]]) -> tuple[pa.Table, list[str]]:
        """Rows (typed values for declared columns, anything for the rest) -> arrow table, JSON extras."""
        schema_fields = [pa.field(name, typ) for name, typ in self.columns.items()]
        if self.is_child:
            schema_fields.append(pa.field(EMPTY_LIST_MARKER, pa.bool_()))
        table = pa.Table.from_pylist(list(rows), schema=pa.schema(schema_fields))
        extra_json: list[str] = []
        for name, array, is_json in extra_columns(rows, frozenset(self.columns) | {EMPTY_LIST_MARKER}):
            table = table.append_column(name, array)
            if is_json:
                extra_json.append(name)
        return table, extra_json

    def marker_row(self, key: dict[str, Any]) -> dict[str, Any]:
        """The row that clears a parent's stored child rows (its list became empty); never itself stored."""
        positions = {k: v for k, v in MARKER_POSITIONS.items() if k in self.columns}
        return {**key, **positions, EMPTY_LIST_MARKER: True}

    def tag(self, table: pa.Table, extra_json: Iterable[str] = ()) -> Any:
        """Mark an arrow table for this spec's table, for a resource that fills several tables."""
        # Always a table variant with this spec's own hints: a plain `with_table_name` would give the
        # table the resource's hints (its primary key, its write disposition).
        hints = dlt.mark.make_hints(
            table_name=self.name,
            write_disposition=self.write_disposition,
            primary_key=list(self.primary_key) or None,
            merge_key=list(self.merge_key) or None,
            columns=self.column_hints(list(extra_json)),
        )
        return dlt.mark.with_hints(table, hints, create_table_variant=True)


def extra_columns(rows: Sequence[dict[str, Any]], known: frozenset[str]) -> list[tuple[str, pa.Array, bool]]:
    """The rows' undeclared keys as typed columns (name, array, is JSON), sorted by name; a key whose
    values are all null is left out (nothing to type it by)."""
    keys: set[str] = set()
    for row in rows:
        keys.update(row.keys())
    out = []
    for name in sorted(keys - known):
        array, is_json = infer_column([row.get(name) for row in rows], name)
        if array is not None:
            out.append((name, array, is_json))
    return out


def infer_column(values: list[Any], name: str) -> tuple[pa.Array | None, bool]:
    """Type an undeclared field from its values: scalars keep their type, nested values and mixed types
    become JSON text. Returns (None, False) when every value is null (nothing to type it by)."""
    present = [v for v in values if v is not None]
    if not present:
        return None, False
    kinds = {type(v) for v in present}
    if kinds <= {bool}:
        return pa.array(values, pa.bool_()), False
    if kinds <= {int}:
        return pa.array(values, pa.int64()), False
    if kinds <= {int, float}:
        return pa.array([None if v is None else float(v) for v in values], pa.float64()), False
    if kinds <= {str}:
        return pa.array(values, pa.string()), False
    if kinds <= {Decimal}:
        return pa.array(values, DECIMAL), False
    return pa.array([json_text(v, name) for v in values], pa.string()), True


class Tagger:
    """Marks a resource's arrow tables for their destination tables.

    dlt merges a table's hints again for every item that carries them, which costs about a millisecond an
    item; a load yields a thousand items. So a table's first item carries its full hints, and later items
    only name the table (dlt then applies the table variant it already holds), unless new JSON columns
    appeared, which need their hints. One tagger per resource, since variants live on the resource."""

    def __init__(self) -> None:
        self._hinted: dict[str, frozenset[str]] = {}

    def tag(self, spec: TableSpec, table: pa.Table, extra_json: Iterable[str] = ()) -> Any:
        extra = frozenset(extra_json)
        hinted = self._hinted.get(spec.name)
        if hinted is not None and extra <= hinted:
            return dlt.mark.with_table_name(table, spec.name)
        self._hinted[spec.name] = (hinted or frozenset()) | extra
        return spec.tag(table, sorted(self._hinted[spec.name]))
