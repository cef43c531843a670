"""Queueing payments and invoices from a CSV file (`push --from-csv`, `--invoices-csv`).

Each cell is read by its queue column's type, here, before anything reaches the warehouse: a warehouse's
own casts are too forgiving for money (DuckDB casts '12.5' into BIGINT as 13) and fail a whole statement
on one bad cell. So a row with a bad cell is rejected with its row number, column and reason, and every
other row is queued. A file-wide problem (not CSV, not UTF-8, a missing or unknown column) is one clear
error and queues nothing. Excel's "CSV UTF-8" (a byte-order mark first) is read like any other.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pipelines.push.ledger import QUEUES, transaction
from sources.common.columns import INT64_MAX, INT64_MIN

REQUIRED = ("external_id", "connection")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE, _FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class CsvReject:
    """One row that was not queued: where it is (row 1 is the header, as a spreadsheet shows it), the
    first column that is wrong, and why."""

    path: str
    row: int
    column: str
    reason: str
    external_id: str | None = None

    def __str__(self) -> str:
        return f"{Path(self.path).name} row {self.row}, column {self.column}: {self.reason}"


@dataclass
class CsvImport:
    path: str
    queued: int = 0
    rejects: list[CsvReject] = field(default_factory=list)


class CellError(ValueError):
    """One cell cannot be read as its column's type."""


def read_cell(text: str | None, kind: str) -> Any:
    """A cell as the value of a queue column of SQL type `kind`; an empty cell is NULL."""
    if text is None or text.strip() == "":
        return None
    if "\x00" in text:
        raise CellError("holds a NUL character")
    kind = kind.split()[0].upper()
    value = text.strip()
    if kind == "BIGINT":
        if not _INTEGER.fullmatch(value):
            raise CellError(f"{value!r} is not a whole number of minor units (amounts are never rounded)")
        number = int(value)
        if not INT64_MIN <= number <= INT64_MAX:
            raise CellError(f"{value} is beyond the 64-bit integer range")
        return number
    if kind == "DATE":
        try:  # the calendar day as written, also of a date-time with an offset (never converted)
            return datetime.fromisoformat(value).date() if len(value) > 10 else date.fromisoformat(value)
        except ValueError:
            raise CellError(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if kind == "BOOLEAN":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise CellError(f"{value!r} is not true or false")
    if kind.startswith("TIMESTAMP"):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise CellError(f"{value!r} is not an ISO 8601 date-time") from None
    return text


def _records(reader: Any, path: str, rejects: list[CsvReject]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, record) for each record the CSV parser can read; a row it cannot is rejected."""
    while True:
        before = reader.line_num
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if reader.line_num == before:  # the parser did not move: nothing more can be read
                raise ValueError(f"{path}, row {before + 1}: not readable as CSV ({exc})") from None
            rejects.append(CsvReject(path, reader.line_num, "(row)", f"not readable as CSV ({exc})"))
            continue
        yield reader.line_num, record


def import_csv(con: Any, schema: str, path: str | Path, table: str = "outbound_payments") -> CsvImport:
    """Queue the valid rows of a CSV (header = the queue's columns; `external_id` and `connection`
    required). A row whose external_id is already queued replaces it. Raises `ValueError` for a file that
    cannot be read at all."""
    spec = QUEUES[table]
    allowed = [c for c in spec if c != "queued_at"]
    result = CsvImport(str(path))
    rows: list[dict[str, Any]] = []
    first_row: dict[str, int] = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() if name else name for name in (reader.fieldnames or [])]
            reader.fieldnames = header
            missing = sorted(set(REQUIRED) - set(header))
            if missing:
                raise ValueError(f"{path}: the CSV needs the columns {missing}; its header is {header}")
            unknown = sorted(set(header) - set(allowed), key=str)
            if unknown:
                raise ValueError(f"{path}: unknown columns {unknown}; the columns are {allowed}")
            for number, record in _records(reader, str(path), result.rejects):
                external_id = (record.get("external_id") or "").strip() or None
                row, reject = _row(record, spec, header, str(path), number, external_id)
                if reject is None and external_id in first_row:
                    reject = CsvReject(
                        str(path), number, "external_id", f"repeats row {first_row[external_id]}", external_id
                    )
                if reject is not None:
                    result.rejects.append(reject)
                    continue
                first_row[row["external_id"]] = number
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as 'CSV UTF-8'") from None
    except OSError as exc:
        raise ValueError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    names = [c for c in allowed if c in header]
    placeholders = ", ".join("?" for _ in names)
    with transaction(con):
        for row in rows:
            con.execute(f"DELETE FROM {schema}.{table} WHERE external_id = ?", [row["external_id"]])
            con.execute(
                f"INSERT INTO {schema}.{table} ({', '.join(names)}) VALUES ({placeholders})",
                [row.get(n) for n in names],
            )
    result.queued = len(rows)
    return result


def _row(
    record: dict[str | None, Any], spec: dict[str, str], header: list[str], path: str, number: int, external_id: Any
) -> tuple[dict[str, Any], CsvReject | None]:
    """One CSV record as queue values, or the reject that says which column is wrong."""
    if None in record:  # more cells than the header has columns
        cells = len(header) + len(record[None])
        return {}, CsvReject(path, number, "(row)", f"{cells} cells for {len(header)} columns", external_id)
    row: dict[str, Any] = {}
    for column in header:
        try:
            row[column] = read_cell(record.get(column), spec[column])
        except CellError as exc:
            return {}, CsvReject(path, number, column, str(exc), external_id)
    for column in REQUIRED:
        if row.get(column) is None or not str(row[column]).strip():
            return {}, CsvReject(path, number, column, "is empty", external_id)
    row["external_id"] = str(row["external_id"]).strip()
    return row, None
