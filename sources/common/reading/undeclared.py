"""Fields no spec declares ("extras"): the column each one becomes, and the one type that column keeps.

A field the API starts sending is kept as a column of its own. Two things about such a column must hold
for every value a provider can send, or one odd record fails the whole load (dlt refuses the package, and
a package refused at the load step is retried, and refused, by every run after):

- Its name. dlt normalizes column names (`TotalAmount` -> `total_amount`), so an extra field can land on a
  declared column or on another extra field, which dlt refuses (`NameNormalizationCollision`). Extras are
  named here, as dlt would name them, and a record whose extra field would take a column that is already
  taken is rejected by that field. Names starting with `_dlt` are dlt's own.
- Its type. A column has one type in the warehouse; an extra field whose values change type (an integer on
  one page, a fraction or a text on the next) would make dlt fail to concatenate the pages, or the
  warehouse refuse the file. The type is that of the column in the warehouse when it exists there (read
  back at the start of a scan), else that of the first value this run loads; every later value is
  converted to it when that loses nothing (an integer into a fraction column, a number into a text column,
  anything into a JSON column), else the record is rejected by that field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
from dlt.common.normalizers.naming.snake_case import NamingConvention

from sources.common.errors import RecordError
from sources.common.reading import values as c

DLT_PREFIX = "_dlt"

# the kinds of column an extra field can have, and their arrow types
BIGINT, DOUBLE, TEXT, JSON = "bigint", "double", "text", "json"
BOOL, DECIMAL, TIMESTAMP = "bool", "decimal", "timestamp"
ARROW_TYPES: dict[str, pa.DataType] = {
    BIGINT: pa.int64(),
    DOUBLE: pa.float64(),
    TEXT: pa.string(),
    JSON: pa.string(),
    BOOL: pa.bool_(),
    DECIMAL: pa.decimal128(38, 12),
    TIMESTAMP: pa.timestamp("us", tz="UTC"),
}
_NAMING = NamingConvention()
_EXACT_IN_DOUBLE = 2**53


@functools.lru_cache(maxsize=8192)
def _normalized(key: str) -> str:
    return _NAMING.normalize_identifier(key)


def column_name(key: str) -> str:
    """The column an extra field becomes: dlt's default (snake_case) name for it."""
    try:
        name = _normalized(key)
    except (ValueError, TypeError):
        raise RecordError(key, "a field without a usable name") from None
    if name.startswith(DLT_PREFIX):
        raise RecordError(key, f"its column name {name!r} is reserved for dlt's own columns")
    return name


def kind_of(value: Any, field: str) -> str:
    """The kind of column a first value gives an extra field."""
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        c.whole_number(value, field, "an integer")  # beyond 64 bits: no column type holds it exactly
        return BIGINT
    if isinstance(value, float):
        c.finite_float(value, field)
        return DOUBLE
    if isinstance(value, str):
        return TEXT
    if isinstance(value, Decimal):
        return DECIMAL
    if isinstance(value, datetime):
        return TIMESTAMP
    return JSON


def coerce(kind: str, value: Any, field: str) -> Any:
    """`value` as a value of a column of `kind`, or `RecordError` when that would change its meaning."""
    if value is None:
        return None
    if kind == JSON:
        return c.json_text(value, field)
    if kind == TEXT:
        if isinstance(value, str | float):
            return c.text(value, field)
        return c.json_text(value, field)  # a number, a flag or an object as its JSON text: nothing is lost
    if kind == BIGINT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _conflict(kind, value, field)
        return c.whole_number(value, field, "an integer (the column holds integers)")
    if kind == DOUBLE:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _conflict(kind, value, field)
        if isinstance(value, int) and abs(value) > _EXACT_IN_DOUBLE:
            raise RecordError(field, f"{value} is an integer too large for the column's double precision")
        return c.finite_float(float(value), field)
    if kind == BOOL:
        if not isinstance(value, bool):
            raise _conflict(kind, value, field)
        return value
    if kind == DECIMAL:
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise _conflict(kind, value, field)
        return c.decimal(value, field)
    if kind == TIMESTAMP:
        if isinstance(value, datetime):
            return value
        return c.timestamp(value, field)
    raise RecordError(field, f"the column has a type ({kind}) no field is converted into")


def _conflict(kind: str, value: Any, field: str) -> RecordError:
    return RecordError(field, f"got {type(value).__name__} {c.preview(value)}, but the column holds {kind} values")


def kind_of_stored(data_type: str) -> str:
    """The kind of an existing warehouse column, from its type as information_schema spells it (DuckDB,
    PostgreSQL and most SQL warehouses)."""
    spelled = data_type.lower()
    if "json" in spelled:
        return JSON
    if spelled.startswith(("timestamp", "date")):
        return TIMESTAMP
    if spelled.startswith(("decimal", "numeric")):
        return DECIMAL
    if spelled.startswith(("bool",)):
        return BOOL
    if spelled in ("double", "double precision", "real") or spelled.startswith("float"):
        return DOUBLE
    if "int" in spelled:
        return BIGINT
    return TEXT


class ColumnKinds:
    """The kinds of the extra columns of every table a resource fills: as stored in the warehouse, then as
    first loaded in this run. One per resource (its tables are its own), shared by its scans."""

    def __init__(self) -> None:
        self._kinds: dict[str, dict[str, str]] = {}

    def table(self, name: str) -> dict[str, str]:
        return self._kinds.setdefault(name, {})

    def seed(self, table: str, stored: Mapping[str, str]) -> None:
        """The warehouse's columns of `table` (name -> kind); what this run saw first does not change."""
        kinds = self.table(table)
        for name, kind in stored.items():
            kinds.setdefault(name, kind)

    def type_rows(self, table: str, rows: Sequence[dict[str, Any]], declared: Iterable[str], path: Any) -> dict:
        """Convert the extra values of one record's `rows` of `table` in place. Returns the kinds this record
        would give new columns (to `commit` once the whole record loads); raises `RecordError` naming the
        field (`path(row, column)`)."""
        known = self.table(table)
        fresh: dict[str, str] = {}
        declared = set(declared)
        for row in rows:
            for column, value in row.items():
                if column in declared or value is None:
                    continue
                kind = known.get(column) or fresh.get(column)
                if kind is None:
                    kind = fresh[column] = kind_of(value, path(row, column))
                row[column] = coerce(kind, value, path(row, column))
        return fresh

    def commit(self, table: str, fresh: Mapping[str, str]) -> None:
        kinds = self.table(table)
        for name, kind in fresh.items():
            kinds.setdefault(name, kind)

    def arrays(
        self,
        table: str,
        rows: Sequence[dict[str, Any]],
        declared: Iterable[str],
        pending: dict[str, dict[str, str]] | None = None,
    ) -> list[tuple[str, pa.Array, bool]]:
        """The rows' extra columns as arrays (name, array, is JSON), sorted by name; a column with only
        nulls and no kind yet is left out (nothing to type it by). Without `pending`, the values are
        already of their column's kind (`type_rows`). With it, they are converted here, raising
        `RecordError` (the page-at-once path, which then leaves the page to the record-by-record one), and
        the kinds of new columns go into `pending[table]`, to be committed once the whole page loads."""
        keys: set[str] = set()
        for row in rows:
            keys.update(row.keys())
        known = self.table(table)
        fresh: dict[str, str] = {}
        out = []
        for name in sorted(keys - set(declared)):
            values = [row.get(name) for row in rows]
            kind = known.get(name)
            if kind is None:
                first = next((v for v in values if v is not None), None)
                if first is None:
                    continue
                kind = fresh[name] = kind_of(first, name)
            if pending is not None:
                values = [coerce(kind, v, name) for v in values]
            out.append((name, pa.array(values, ARROW_TYPES[kind]), kind == JSON))
        if pending is not None:
            pending.setdefault(table, {}).update(fresh)
        else:
            self.commit(table, fresh)
        return out
