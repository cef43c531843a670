"""Declared tables and their arrow builders.

The sources yield arrow tables instead of dicts: dlt's JSON normalizer is the slow step of a load
(about 35k rows/s measured here), while arrow tables go to parquet as they are. The price is that child
tables are built here, with plain foreign keys, instead of by dlt's nested-table machinery.

A `TableSpec` declares a table's typed columns and keys; fields no spec declares are kept as extra
columns (`sources/common/reading/undeclared.py` names and types them), so a new field upstream becomes a new column.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dlt
import pyarrow as pa

from sources.common.reading.undeclared import ColumnKinds


class _JsonHintNotice(logging.Filter):
    """dlt warns on every page that a JSON column hint overrides the arrow string type; that override is
    the intent here (JSON text loads into a JSON column), so that one notice is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "when merging arrow schema with dlt schema" not in record.getMessage()


logging.getLogger("dlt").addFilter(_JsonHintNotice())

TIMESTAMP = pa.timestamp("us", tz="UTC")
DECIMAL = pa.decimal128(38, 12)
EMPTY_LIST_MARKER = "_empty_list_marker"
# Every parent table carries the content hash of the record it was built from, and the time a complete scan
# found it gone (the record is kept, marked).
HASH_COLUMN = "_record_hash"
DELETED_COLUMN = "deleted_at"
# A marker row's key columns: never a real position, and the row itself is never stored.
MARKER_POSITIONS = {"line_index": -1, "position": -1}

MERGE = {"disposition": "merge", "strategy": "delete-insert"}


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

    @property
    def stored_columns(self) -> frozenset[str]:
        """The declared columns, with the empty-list marker of a child table."""
        return frozenset(self.columns) | ({EMPTY_LIST_MARKER} if self.is_child else frozenset())

    def build(self, rows: Sequence[dict[str, Any]], kinds: ColumnKinds | None = None) -> tuple[pa.Table, list[str]]:
        """Rows (typed values for declared columns, extra values already of their column's kind in `kinds`)
        -> arrow table, and the extra columns that hold JSON."""
        schema_fields = [pa.field(name, typ) for name, typ in self.columns.items()]
        if self.is_child:
            schema_fields.append(pa.field(EMPTY_LIST_MARKER, pa.bool_()))
        table = pa.Table.from_pylist(list(rows), schema=pa.schema(schema_fields))
        extra_json: list[str] = []
        for name, array, is_json in (kinds or ColumnKinds()).arrays(self.name, rows, self.stored_columns):
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


class ResourceTables:
    """What one resource knows of the tables it fills: the kinds of their extra columns (`kinds`, shared by
    the resource's scans) and the hints dlt already holds for them (`tag`). One per resource, since dlt
    keeps table variants on the resource.

    dlt merges a table's hints again for every item that carries them, which costs about a millisecond an
    item; a load yields a thousand items. So a table's first item carries its full hints, and later items
    only name the table (dlt then applies the table variant it already holds), unless new JSON columns
    appeared, which need their hints."""

    def __init__(self) -> None:
        self._hinted: dict[str, frozenset[str]] = {}
        self.kinds = ColumnKinds()
        self.seeded = False

    def tag(self, spec: TableSpec, table: pa.Table, extra_json: Iterable[str] = ()) -> Any:
        extra = frozenset(extra_json)
        hinted = self._hinted.get(spec.name)
        if hinted is not None and extra <= hinted:
            return dlt.mark.with_table_name(table, spec.name)
        self._hinted[spec.name] = (hinted or frozenset()) | extra
        return spec.tag(table, sorted(self._hinted[spec.name]))
