"""Queueing payments and invoices from a CSV file (`push --from-csv`, `--invoices-csv`).

Each cell is read by its queue column's type, here, before anything reaches the warehouse: a warehouse's
own casts are too forgiving for money (DuckDB casts '12.5' into BIGINT as 13) and fail a whole statement
on one bad cell. So a row with a bad cell is rejected with its row number, column and reason, and every
other row is queued. A file-wide problem (not CSV, not UTF-8, a missing or unknown column) is one clear
error and queues nothing. Excel's "CSV UTF-8" (a byte-order mark first) is read like any other.

A file is read (`read_csv`) apart from being queued (`queue_rows`), so that a dry run checks the rows as
they would be queued and queues nothing.

Bank files as banks write them: besides the queue's own columns a file may name
- the invoice by `invoice_number` (payments), resolved among the connection's loaded invoices that are not
  deleted, so the queue keeps the invoice's id: a number no loaded invoice has, or that two have, is a row
  error, and with `invoice_id` beside it the two must name the same invoice;
- the amount as `amount` in major units of the row's `currency` (`125.00` EUR is 12500 minor units): a plain
  decimal (`1,234.50` is a row error, never guessed at), with no more decimals than the currency has (never
  rounded), and with `total_amount` beside it the two must agree.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pipelines.push.ledger import QUEUES, transaction
from sources.common.currencies import CurrencyError, minor_unit_exponent
from sources.common.reading.values import INT64_MAX, INT64_MIN

REQUIRED = ("external_id", "connection")
MAX_CELL = 100_000  # characters: a longer cell is that row's error (the csv module would refuse the whole file)
# columns a file may have that the queue does not keep: read into the queue's own (see the module text)
BANK_COLUMNS = {"outbound_payments": ("invoice_number", "amount"), "outbound_invoices": ("amount",)}
BANK_SOURCES = {"invoice_number": "invoice_id", "amount": "total_amount"}  # bank column -> the queue column it fills
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)")

# (connection, invoice number) -> the ids of the loaded, not deleted, invoices with that number
InvoiceNumbers = Mapping[tuple[str, str], list[str]]
_TRUE, _FALSE = {"true", "t", "yes", "y", "1"}, {"false", "f", "no", "n", "0"}


class CsvFileError(Exception):
    """A CSV file that cannot be read at all (not UTF-8, not CSV, missing or unknown columns): the command's
    input is wrong (exit 2). A bad row is no error: it is a `CsvReject`, and the other rows are queued."""


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
    table: str
    rows: list[dict[str, Any]] = field(default_factory=list)  # queue values, every column of the queue
    rejects: list[CsvReject] = field(default_factory=list)
    row_numbers: dict[str, int] = field(default_factory=dict)  # external_id -> its row in the file
    header: list[str] = field(default_factory=list)

    def reject(self, row: dict[str, Any], column: str, reason: str) -> None:
        """Take a row that read well back out of the rows to queue, as a reject naming `column` (a queue column)
        as the file spells it: a bank file's `amount` or `invoice_number` where it gave no queue column."""
        if column not in self.header:
            column = next((bank for bank, queued in BANK_SOURCES.items() if queued == column and bank in self.header),
                          column)  # fmt: skip
        external_id = row["external_id"]
        self.rows.remove(row)
        self.rejects.append(CsvReject(self.path, self.row_numbers[external_id], column, reason, external_id))


class CellError(ValueError):
    """One cell cannot be read as its column's type."""


def read_cell(text: str | None, kind: str) -> Any:
    """A cell as the value of a queue column of SQL type `kind`; an empty cell is NULL."""
    if text is None or text.strip() == "":
        return None
    if "\x00" in text:
        raise CellError("holds a NUL character")
    if len(text) > MAX_CELL:
        raise CellError(f"is {len(text):,} characters long, more than {MAX_CELL:,}")
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
                raise CsvFileError(f"{path}, row {before + 1}: not readable as CSV ({exc})") from None
            rejects.append(CsvReject(path, reader.line_num, "(row)", f"not readable as CSV ({exc})"))
            continue
        yield reader.line_num, record


def invoice_numbers(con: Any, schema: str) -> dict[tuple[str, str], list[str]]:
    """The loaded invoices by (connection, number), deleted ones left out."""
    present = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'invoices'", [schema]
    ).fetchone()[0]
    if not present:
        return {}
    found: dict[tuple[str, str], list[str]] = {}
    rows = con.execute(
        f"SELECT connection, number, id FROM {schema}.invoices WHERE deleted_at IS NULL AND number IS NOT NULL"
    ).fetchall()
    for connection, number, invoice_id in rows:
        found.setdefault((connection, str(number)), []).append(invoice_id)
    return found


def read_csv(path: str | Path, table: str = "outbound_payments", numbers: InvoiceNumbers | None = None) -> CsvImport:
    """The rows of a CSV as queue values (header = the queue's columns, or the bank columns of the module
    text; `external_id` and `connection` required), each bad row a reject. `numbers` resolves invoice numbers
    (`invoice_numbers`). Raises `ValueError` for a file that cannot be read at all."""
    spec = QUEUES[table]
    allowed = [c for c in spec if c != "queued_at"] + list(BANK_COLUMNS.get(table, ()))
    result = CsvImport(str(path), table)
    first_row: dict[str, int] = {}
    limit = csv.field_size_limit()
    try:
        # the csv module refuses a whole file for one cell longer than its limit: the limit is lifted while
        # reading, and a long cell is its row's error (`MAX_CELL`)
        csv.field_size_limit(max(limit, 64 * 1024 * 1024))
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() if name else name for name in (reader.fieldnames or [])]
            reader.fieldnames = result.header = header
            missing = sorted(set(REQUIRED) - set(header))
            if missing:
                raise CsvFileError(f"{path}: the CSV needs the columns {missing}; its header is {header}")
            unknown = sorted(set(header) - set(allowed), key=str)
            if unknown:
                raise CsvFileError(f"{path}: unknown columns {unknown}; the columns are {allowed}")
            for number, record in _records(reader, str(path), result.rejects):
                external_id = (record.get("external_id") or "").strip() or None
                row, reject = _row(record, spec, header, str(path), number, external_id, numbers or {})
                if reject is None and external_id in first_row:
                    reject = CsvReject(
                        str(path), number, "external_id", f"repeats row {first_row[external_id]}", external_id
                    )
                if reject is not None:
                    result.rejects.append(reject)
                    continue
                first_row[row["external_id"]] = result.row_numbers[row["external_id"]] = number
                result.rows.append({c: row.get(c) for c in spec if c != "queued_at"})
    except UnicodeDecodeError as exc:
        raise CsvFileError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason}); save it as 'CSV UTF-8'") from None
    except OSError as exc:
        raise CsvFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        csv.field_size_limit(limit)
    return result


def queue_rows(con: Any, schema: str, table: str, rows: list[dict[str, Any]]) -> int:
    """Queue rows read from a file, in one statement each for all of them (through a staging relation: row by
    row, 15,000 rows took 27 s); a row whose external_id is already queued replaces it (the push job leaves
    out of `rows` a changed row that may have been sent). Columns the file did not give keep the queue's
    defaults."""
    if not rows:
        return 0
    spec = QUEUES[table]
    given = [c for c in spec if c != "queued_at" and any(row.get(c) is not None for row in rows)]
    if "overpayment_intended" in spec and "overpayment_intended" in given:
        for row in rows:  # a cell left empty keeps the queue's default, as a missing column does
            row["overpayment_intended"] = bool(row.get("overpayment_intended"))
    names = ", ".join(given)
    if hasattr(con, "register"):  # DuckDB: the rows as an arrow table it reads in place
        import pyarrow as pa

        staged = pa.table({c: [row.get(c) for row in rows] for c in given})
        con.register("accounting_etl_staged_rows", staged)
        try:
            with transaction(con):
                con.execute(f"DELETE FROM {schema}.{table} WHERE external_id IN "
                            "(SELECT external_id FROM accounting_etl_staged_rows)")  # fmt: skip
                con.execute(f"INSERT INTO {schema}.{table} ({names}) SELECT {names} FROM accounting_etl_staged_rows")
        finally:
            con.unregister("accounting_etl_staged_rows")
        return len(rows)
    con.bulk_queue(schema, table, given, [[row.get(c) for c in given] for row in rows])
    return len(rows)


def major_units(text: str, currency: Any) -> int:
    """`amount` in major units of `currency` as integer minor units, exactly; `CellError` otherwise."""
    value = text.strip()
    if not _DECIMAL.fullmatch(value):
        raise CellError(f"{value!r} is not a plain decimal amount in major units (like 1234.50: no thousands "
                        "separators, a point for decimals)")  # fmt: skip
    try:
        exponent = minor_unit_exponent(currency)
    except CurrencyError as exc:
        raise CellError(f"needs the row's currency: {exc}") from None
    minor = Decimal(value).scaleb(exponent)
    if minor != minor.to_integral_value():
        raise CellError(f"{value} has more decimals than {str(currency).strip().upper()} has ({exponent}); amounts "
                        "are never rounded")  # fmt: skip
    number = int(minor)
    if not INT64_MIN <= number <= INT64_MAX:
        raise CellError(f"{value} is beyond the 64-bit integer range of minor units")
    return number


def _row(
    record: dict[str | None, Any],
    spec: dict[str, str],
    header: list[str],
    path: str,
    number: int,
    external_id: Any,
    numbers: InvoiceNumbers,
) -> tuple[dict[str, Any], CsvReject | None]:
    """One CSV record as queue values, or the reject that says which column is wrong."""
    if None in record:  # more cells than the header has columns
        cells = len(header) + len(record[None])
        return {}, CsvReject(path, number, "(row)", f"{cells} cells for {len(header)} columns", external_id)
    row: dict[str, Any] = {}
    for column in header:
        if column in spec:
            try:
                row[column] = read_cell(record.get(column), spec[column])
            except CellError as exc:
                return {}, CsvReject(path, number, column, str(exc), external_id)
    for column in ("amount", "invoice_number"):
        text = record.get(column)
        if column not in header or text is None or not text.strip():
            continue
        try:
            _bank_column(row, column, text, numbers)
        except CellError as exc:
            return {}, CsvReject(path, number, column, str(exc), external_id)
    for column in REQUIRED:
        if row.get(column) is None or not str(row[column]).strip():
            return {}, CsvReject(path, number, column, "is empty", external_id)
    row["external_id"] = str(row["external_id"]).strip()
    return row, None


def _bank_column(row: dict[str, Any], column: str, text: str, numbers: InvoiceNumbers) -> None:
    """Read `amount` into `total_amount`, `invoice_number` into `invoice_id` (see the module text)."""
    if column == "amount":
        minor = major_units(text, row.get("currency"))
        if row.get("total_amount") is not None and row["total_amount"] != minor:
            raise CellError(f"{text.strip()} is {minor} minor units, but total_amount says {row['total_amount']}")
        row["total_amount"] = minor
        return
    wanted = text.strip()
    ids = numbers.get((str(row.get("connection") or "").strip(), wanted), [])
    if not ids:
        raise CellError(f"no loaded invoice of {row.get('connection')} is numbered {wanted!r} (load first?)")
    if len(ids) > 1:
        raise CellError(f"{len(ids)} loaded invoices of {row.get('connection')} are numbered {wanted!r}; "
                        "name the one meant by invoice_id")  # fmt: skip
    if row.get("invoice_id") is not None and row["invoice_id"] != ids[0]:
        raise CellError(f"invoice {wanted!r} is {ids[0]}, but invoice_id says {row['invoice_id']}")
    row["invoice_id"] = ids[0]
