"""One scan of one object kind for one connection: pages in, tagged arrow tables out.

Per page: each record is hashed; unchanged records are skipped; changed ones are normalized into parent
and child rows; a record that cannot be read goes to `rejected_records` with its table, id, field and
reason, and the rest of the page loads. After the LAST page (a complete scan) the records stored as live
but not seen are written back with `deleted_at`. A scan that fails part-way keeps what it loaded and
marks nothing deleted.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sources.common.arrow_pages import ArrowPageBuilder, builder_for
from sources.common.columns import json_text
from sources.common.errors import ApiError, PaginationError, RecordError
from sources.common.records import ObjectSpec
from sources.common.sync import HASH_COLUMN, Guard, LoadedRecords, record_hash
from sources.common.tables import EMPTY_LIST_MARKER, TIMESTAMP, TableSpec, Tagger

log = logging.getLogger("accounting_etl.scan")

REJECTED_RECORDS = TableSpec(
    "rejected_records",
    columns={
        "rejection_id": pa.string(),
        "table_name": pa.string(),
        "connection": pa.string(),
        "record_id": pa.string(),
        "position": pa.int64(),
        "field": pa.string(),
        "error": pa.string(),
        "record": pa.string(),
        "rejected_at": TIMESTAMP,
    },
    json_columns=frozenset({"record"}),
    primary_key=("rejection_id",),  # a merge key, so a load job run twice after a crash stores a rejection once
)

PROGRESS_EVERY_SECONDS = 5.0


@dataclass
class ScanResult:
    """What one scan did; the load job turns these into its summary."""

    resource: str
    connection: str
    status: str = "running"  # running -> complete | failed
    records: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    rejected: int = 0
    pages: int = 0
    error: str | None = None
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table (marker rows not counted)

    def count(self, table: str, rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows


@dataclass
class ScanLog:
    """Collects every scan's result of one run; shared by the resources of a source (thread-safe)."""

    results: list[ScanResult] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self, resource: str, connection: str) -> ScanResult:
        result = ScanResult(resource, connection)
        with self._lock:
            self.results.append(result)
        return result

    @property
    def failed(self) -> list[ScanResult]:
        return [r for r in self.results if r.status != "complete"]

    def rows_per_table(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for result in self.results:
            for table, rows in result.rows.items():
                total[table] = total.get(table, 0) + rows
        return total


def scan_account(
    spec: ObjectSpec,
    connection: str,
    pages: Iterable[list[dict[str, Any]]],
    scan_log: ScanLog,
    tagger: Tagger,
    complete: bool = True,
    guard: Guard | None = None,
) -> Generator[Any, None, ScanResult]:
    """`scan_connection` for one of a resource's accounts, recorded in `scan_log`: a scan that fails for good
    (an API or paging error) is marked failed and logged, marks nothing deleted, and does not keep the next
    account from its scan. Returns the scan's result (`yield from`)."""
    result = scan_log.start(spec.resource, connection)
    try:
        yield from scan_connection(spec, connection, pages, result, tagger, complete=complete, guard=guard)
    except (ApiError, PaginationError) as exc:
        result.status = "failed"
        result.error = str(exc)
        log.error("%s [%s]: scan failed, nothing marked deleted: %s", spec.resource, connection, exc)
    return result


def scan_connection(
    spec: ObjectSpec,
    connection: str,
    pages: Iterable[list[dict[str, Any]]],
    result: ScanResult,
    tagger: Tagger | None = None,
    complete: bool = True,
    guard: Guard | None = None,
) -> Iterator[Any]:
    """Yield tagged arrow tables for one connection's records of one kind; fills `result`. Pass the same
    `tagger` to every scan of one resource. `complete`: the pages list every live record (a full scan),
    so a stored record they do not hold is marked deleted; an incremental scan (changes only) marks none.
    `guard` is held around each read of the destination."""
    tagger = tagger or Tagger()
    started = time.monotonic()
    last_progress = started
    loaded = LoadedRecords.read(spec.parent.name, connection, spec.provider, guard)
    fast = builder_for(spec)
    seen: set[str] = set()
    for page in pages:
        result.pages += 1
        yield from _page_tables(spec, connection, page, loaded, seen, result, fast, tagger)
        if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
            last_progress = time.monotonic()
            log.info(
                "%s [%s]: %d records so far, %d to write",
                spec.resource,
                connection,
                result.records,
                result.written,
            )
    missing = loaded.missing(seen) if complete else set()
    tombstones = loaded.tombstones(missing)
    if tombstones:
        result.deleted = len(tombstones)
        result.count(spec.parent.name, len(tombstones))
        table, extra_json = spec.parent.build(tombstones)
        yield tagger.tag(spec.parent, table, extra_json)
    result.status = "complete"
    result.seconds = round(time.monotonic() - started, 3)
    log.info(
        "%s [%s]: %d records in %d pages: %d written, %d unchanged, %d marked deleted, %d rejected (%.1fs)",
        spec.resource,
        connection,
        result.records,
        result.pages,
        result.written,
        result.unchanged,
        result.deleted,
        result.rejected,
        result.seconds,
    )


def _page_tables(
    spec: ObjectSpec,
    connection: str,
    page: list[dict[str, Any]],
    loaded: LoadedRecords,
    seen: set[str],
    result: ScanResult,
    fast: ArrowPageBuilder | None,
    tagger: Tagger,
) -> Iterator[Any]:
    changed: list[tuple[int, Any, str | None]] = []  # (position, record, hash) of what must be written
    rejects: list[dict[str, Any]] = []
    for position, record in enumerate(page, start=result.records):
        if spec.adapter is not None and isinstance(record, dict):
            try:
                record = spec.adapter(record)
            except RecordError as exc:
                if exc.record_id:
                    seen.add(exc.record_id)
                rejects.append(_reject(spec, connection, exc.record_id, position, exc, record))
                continue
        record_id = record.get("id") if isinstance(record, dict) else None
        if isinstance(record_id, str) and record_id:
            # a record that exists upstream is never marked deleted, even when it cannot be read
            seen.add(record_id)
        if not isinstance(record, dict):
            error = RecordError("(record)", f"expected an object, got {type(record).__name__}")
            rejects.append(_reject(spec, connection, None, position, error, record))
            continue
        content_hash = record_hash(record, spec.volatile, spec.nested_lists)
        if isinstance(record_id, str) and not loaded.needs_write(record_id, content_hash):
            result.unchanged += 1
            continue
        changed.append((position, record, content_hash))
    result.records += len(page)

    built = None
    if fast is not None and changed:
        built = fast.try_build([r for _, r, _ in changed], [h for _, _, h in changed], connection)
    if built is not None:
        result.written += len(changed)
        tables = built
    else:
        tables = _reference_tables(spec, connection, changed, rejects, result)
    if rejects:
        result.rejected += len(rejects)
        result.count(REJECTED_RECORDS.name, len(rejects))
        table, _ = REJECTED_RECORDS.build(rejects)
        yield tagger.tag(REJECTED_RECORDS, table)
    for table_spec in spec.tables:
        if table_spec.name not in tables:
            continue
        table, extra_json = tables[table_spec.name]
        if table.num_rows:
            if table_spec.is_child:
                real = table.num_rows - pc.sum(pc.fill_null(table.column(EMPTY_LIST_MARKER), False)).as_py()
            else:
                real = table.num_rows
            result.count(table_spec.name, real)
            yield tagger.tag(table_spec, table, extra_json)


def _reference_tables(
    spec: ObjectSpec,
    connection: str,
    changed: list[tuple[int, Any, str | None]],
    rejects: list[dict[str, Any]],
    result: ScanResult,
) -> dict[str, tuple[pa.Table, list[str]]]:
    """Record by record: the path that names every bad value (and the reference the fast path matches)."""
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in spec.tables}
    for position, record, content_hash in changed:
        try:
            record_rows = spec.normalize(record, connection)
        except RecordError as exc:
            record_id = record.get("id")
            rid = record_id if isinstance(record_id, str) and record_id else None
            rejects.append(_reject(spec, connection, rid, position, exc, record))
            continue
        record_rows[spec.parent.name][0][HASH_COLUMN] = content_hash
        for name, table_rows in record_rows.items():
            rows[name].extend(table_rows)
        result.written += 1
    return {
        table_spec.name: table_spec.build(rows[table_spec.name]) for table_spec in spec.tables if rows[table_spec.name]
    }


def _reject(
    spec: ObjectSpec, connection: str, record_id: str | None, position: int, exc: RecordError, record: Any
) -> dict[str, Any]:
    where = f"id {record_id}" if record_id else f"position {position} (no id)"
    log.warning("%s [%s] record %s rejected: %s: %s", spec.parent.name, connection, where, exc.field, exc.message)
    return {
        "rejection_id": str(uuid.uuid4()),
        "table_name": spec.parent.name,
        "connection": connection,
        "record_id": record_id,
        "position": position,
        "field": exc.field,
        "error": exc.message,
        "record": json_text(record, "(record)"),
        "rejected_at": datetime.now(UTC),
    }
