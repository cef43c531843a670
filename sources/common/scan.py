"""One scan of one object kind for one connection: pages in, tagged arrow tables out.

Per page: each record is hashed; unchanged records are skipped; changed ones are normalized into parent
and child rows; a record that cannot be read goes to `rejected_records` with its table, id, field and
reason, and the rest of the page loads. After the LAST page (a complete scan) the records stored as live
but not seen are written back with `deleted_at`. A scan that fails part-way keeps what it loaded and
marks nothing deleted.

What a record can do is bounded here: every value either loads or is rejected by record and field (the
readers check what the warehouse can hold; `sources/common/reading/undeclared.py` names and types the fields no spec
declares; a page whose tables still cannot be built is taken apart record by record to find the one that
cannot). Whatever still goes wrong fails this one scan (`scan_account`), never another connection's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sources.common.errors import (
    ApiError,
    CredentialsRefused,
    PaginationError,
    RecordError,
    StoredRecordsUnreadable,
    Unreachable,
)
from sources.common.http.pagination import without_repeats
from sources.common.reading.undeclared import ColumnKinds
from sources.common.reading.values import json_text, server_moment
from sources.common.secrets import SECRETS, printable
from sources.common.stored.changes import LoadedRecords, record_hash
from sources.common.stored.records import NOTHING_STORED, StoredRecords
from sources.common.tables.arrow_path import ArrowPageBuilder, builder_for
from sources.common.tables.declared import EMPTY_LIST_MARKER, HASH_COLUMN, TIMESTAMP, ResourceTables, TableSpec
from sources.common.tables.history import VERSIONED_TABLES, as_versions, history_name, history_spec
from sources.common.tables.object_specs import ObjectSpec

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
# Rows of one table gathered before they go to dlt as one item: dlt's cost per extracted item is fixed
# whatever its size, so fewer, larger items are cheaper (DECISIONLOG.md, "Pages gathered into batches"), and a
# page yields up to eight tables. Bounded: a scan holds at most this many rows per table.
BATCH_ROWS = 20_000


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
    # why a failed scan failed, when it is something to fix in the settings: `api_key` or `account` (the
    # provider refused that credential), `unreachable` (nothing answered at the base URL)
    cause: str | None = None
    seconds: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)  # rows written per table (marker rows not counted)
    # the latest `position_of` among the records that loaded (written or unchanged), not rejected ones
    position: datetime | None = field(default=None, repr=False)
    started: float = field(default_factory=time.monotonic, repr=False)  # for a rate while it runs

    def count(self, table: str, rows: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows


@dataclass
class ScanLog:
    """Collects every scan's result of one run; shared by the resources of a source (thread-safe)."""

    results: list[ScanResult] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _totals: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)

    def expect(self, resource: str, connection: str, total: int) -> None:
        """How many records a scan will see, where the API says (Rootfi's `total_count`): for progress."""
        with self._lock:
            self._totals[(resource, connection)] = total

    def expected_total(self, resource: str, connection: str) -> int | None:
        return self._totals.get((resource, connection))

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


# A provider's key of a row as sent (Panora: its `id`), None for a row without one.
RowKey = Callable[[Any], str | None]

# A provider's position of a record (Rootfi: its `rootfi_updated_at`), read from the record as sent; None
# when it has none worth moving a position to.
PositionOf = Callable[[Any], datetime | None]


def kept_moment(text: Any, alias: str, what: str = "scan time") -> datetime | None:
    """A moment an incremental source kept in dlt's state for an account (where its next scan starts), read
    back; an unreadable one is dropped with a warning, so the scan is complete. Without an offset it is UTC."""
    if text is None:
        return None
    moment = server_moment(text)
    if moment is None:
        log.warning("[%s]: the stored %s %r is not a date-time: scanning everything", alias, what, text)
    return moment


class _Batches:
    """A scan's tables, gathered per table until `BATCH_ROWS`, then tagged for dlt as one item. The rows of a
    versioned table go to its history table too, as versions seen at `seen_at` (`tables/history.py`)."""

    def __init__(self, tables: ResourceTables, result: ScanResult, seen_at: datetime) -> None:
        self.tables = tables
        self.result = result
        self.seen_at = seen_at
        self.pending: dict[str, tuple[TableSpec, list[pa.Table], set[str]]] = {}
        self.rows: dict[str, int] = {}
        self.started: set[str] = set()  # the tables this scan has yielded rows for
        self.histories: dict[str, TableSpec] = {}

    def add(self, spec: TableSpec, table: pa.Table, extra_json: Iterable[str]) -> Iterator[Any]:
        extra_json = tuple(extra_json)
        yield from self._gather(spec, table, extra_json)
        if spec.name in VERSIONED_TABLES:
            history = self.histories.get(spec.name) or self.histories.setdefault(spec.name, history_spec(spec))
            versions = as_versions(table, self.seen_at)
            if versions.num_rows:
                self.result.count(history.name, versions.num_rows)
                yield from self._gather(history, versions, extra_json)

    def _gather(self, spec: TableSpec, table: pa.Table, extra_json: Iterable[str]) -> Iterator[Any]:
        self.started.add(spec.name)
        _, parts, json_columns = self.pending.setdefault(spec.name, (spec, [], set()))
        parts.append(table)
        json_columns.update(extra_json)
        self.rows[spec.name] = self.rows.get(spec.name, 0) + table.num_rows
        if self.rows[spec.name] >= BATCH_ROWS:
            yield from self._flush(spec.name)

    def flush(self) -> Iterator[Any]:
        for name in list(self.pending):
            yield from self._flush(name)

    def _flush(self, name: str) -> Iterator[Any]:
        spec, parts, json_columns = self.pending.pop(name)
        self.rows.pop(name)
        extra_json = sorted(json_columns)
        try:
            # pages may differ in their extra columns: a column a page lacks is null there
            yield self.tables.tag(spec, pa.concat_tables(parts, promote_options="default"), extra_json)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # pages whose columns cannot be joined go one by one
            for part in parts:
                yield self.tables.tag(spec, part, extra_json)


def scan_account(
    spec: ObjectSpec,
    connection: str,
    pages: Iterable[list[dict[str, Any]]],
    scan_log: ScanLog,
    tables: ResourceTables,
    complete: bool = True,
    position_of: PositionOf | None = None,
    row_key: RowKey | None = None,
    stored: StoredRecords = NOTHING_STORED,
) -> Generator[Any, None, ScanResult]:
    """`scan_connection` for one of a resource's accounts, recorded in `scan_log`: a scan that fails for good
    (an API or paging error, or anything unexpected) is marked failed and logged, marks nothing deleted, and
    does not keep the next account from its scan. Returns the scan's result (`yield from`)."""
    result = scan_log.start(spec.resource, connection)
    try:
        yield from scan_connection(
            spec,
            connection,
            pages,
            result,
            tables,
            complete=complete,
            position_of=position_of,
            row_key=row_key,
            stored=stored,
        )
    except CredentialsRefused as exc:  # said once for the whole run by the job, naming the setting
        _failed(result, str(exc), exc.credential)
    except Unreachable as exc:
        _failed(result, str(exc), "unreachable")
    except (ApiError, PaginationError, StoredRecordsUnreadable) as exc:
        _failed(result, str(exc))
    except Exception as exc:  # a fault no rule above foresaw: this account's scan fails, the others go on
        log.exception("%s [%s]: unexpected error", spec.resource, connection)
        _failed(result, f"unexpected error: {SECRETS.describe(exc, limit=2000)}")
    return result


def _failed(result: ScanResult, error: str, cause: str | None = None) -> None:
    result.status = "failed"
    result.error = printable(SECRETS.redact(error))[:2000]
    result.cause = cause
    log.log(
        logging.DEBUG if cause else logging.ERROR,  # a setting to fix: the job says it once, for every scan
        "%s [%s]: scan failed, nothing marked deleted: %s",
        result.resource,
        result.connection,
        result.error,
    )


def scan_connection(
    spec: ObjectSpec,
    connection: str,
    pages: Iterable[list[dict[str, Any]]],
    result: ScanResult,
    tables: ResourceTables | None = None,
    complete: bool = True,
    position_of: PositionOf | None = None,
    row_key: RowKey | None = None,
    stored: StoredRecords = NOTHING_STORED,
) -> Iterator[Any]:
    """Yield tagged arrow tables for one connection's records of one kind; fills `result`. Pass the same
    `tables` to every scan of one resource. `complete`: the pages list every live record (a full scan),
    so a stored record they do not hold is marked deleted; an incremental scan (changes only) marks none.
    `position_of` reads a record's position for
    `result.position`. `row_key`: the pages come as sent, rows repeated (the provider's key of a row as
    sent), and the scan drops the repeats (`pagination.without_repeats`), remembering the stored records
    seen by their seen bit instead of a set of its own. `stored`: what the warehouse holds (the job's), which a
    complete scan hands the records it no longer saw, to be marked deleted after the load step."""
    tables = tables or ResourceTables()
    started = time.monotonic()
    last_progress = started
    if not tables.seeded:
        for table, kinds in stored.column_kinds([t.name for t in spec.tables]).items():
            tables.kinds.seed(table, kinds)
        tables.seeded = True
    loaded = LoadedRecords.read(stored, spec.parent.name, connection, spec.provider)
    fast = builder_for(spec)
    batches = _Batches(tables, result, seen_at=datetime.now(UTC))
    try:
        for page in pages:
            result.pages += 1
            if row_key is not None:
                page = without_repeats(page, row_key, loaded)
            yield from _page_tables(spec, connection, page, loaded, result, fast, batches, position_of)
            if time.monotonic() - last_progress >= PROGRESS_EVERY_SECONDS:
                last_progress = time.monotonic()
                log.info(
                    "%s [%s]: %d records so far, %d to write",
                    spec.resource,
                    connection,
                    result.records,
                    result.written,
                )
    except Exception:
        yield from batches.flush()  # a scan that fails part-way keeps what it read
        raise
    gone = loaded.missing() if complete else None
    yield from batches.flush()
    if gone is not None and gone.ids:
        stored.mark_deleted(gone)  # the job marks them after its load step, in the same writer's turn
        result.deleted += len(gone.ids)
        result.count(spec.parent.name, len(gone.ids))
        if spec.parent.name in VERSIONED_TABLES:  # and adds the deleted versions to the history
            result.count(history_name(spec.parent.name), len(gone.ids))
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
    result: ScanResult,
    fast: ArrowPageBuilder | None,
    batches: _Batches,
    position_of: PositionOf | None,
) -> Iterator[Any]:
    tables = batches.tables
    hashed: list[tuple[int, Any, str]] = []  # (position, record, hash) of what has an id to compare
    changed: list[tuple[int, Any, str | None]] = []  # (position, record, hash) of what must be written
    rejects: list[dict[str, Any]] = []
    listed: list[str] = []  # ids of records that exist upstream even though they cannot be read
    positions: list[tuple[int, datetime]] = []
    for position, record in enumerate(page, start=result.records):
        if position_of is not None:
            moment = position_of(record)
            if moment is not None:
                positions.append((position, moment))
        if spec.adapter is not None and isinstance(record, dict):
            try:
                record = spec.adapter(record)
            except Exception as exc:
                error = _as_record_error(exc)
                if error.record_id:
                    listed.append(error.record_id)
                rejects.append(_reject(spec, connection, error.record_id, position, error, record))
                continue
        record_id = record.get("id") if isinstance(record, dict) else None
        has_id = isinstance(record_id, str) and bool(record_id)
        if not isinstance(record, dict):
            error = RecordError("(record)", f"expected an object, got {type(record).__name__}")
            rejects.append(_reject(spec, connection, None, position, error, record))
            continue
        try:
            content_hash = record_hash(record, spec.volatile, spec.nested_lists)
        except RecordError as exc:
            if has_id:
                listed.append(record_id)  # a record that exists upstream is never marked deleted
            rejects.append(_reject(spec, connection, _usable_id(record_id), position, exc, record))
            continue
        if has_id:
            hashed.append((position, record, content_hash))
        else:
            changed.append((position, record, content_hash))  # the normalizer names what is wrong
    result.records += len(page)
    loaded.mark_seen(listed)
    needs_write, stored = loaded.compare([r["id"] for _, r, _ in hashed], [h for _, _, h in hashed])
    result.unchanged += int(len(hashed) - np.count_nonzero(needs_write))
    changed.extend(entry for entry, write in zip(hashed, needs_write, strict=True) if write)
    # a record not stored before has no child rows to clear: its empty lists need no marker rows
    new_ids = [
        entry[1]["id"] for entry, write, old in zip(hashed, needs_write, stored, strict=True) if write and not old
    ]
    changed.sort(key=lambda entry: entry[0])

    built = None
    if fast is not None and changed:
        stored_now = None  # every record written is stored: each empty list clears its stored children
        if new_ids:
            new = set(new_ids)
            # a record whose id is no text is rejected by the builders; here it only must not break the lookup
            stored_now = np.fromiter(
                (not (isinstance(r.get("id"), str) and r["id"] in new) for _, r, _ in changed),
                dtype=bool,
                count=len(changed),
            )
        records, hashes = [r for _, r, _ in changed], [h for _, _, h in changed]
        built = fast.try_build(records, hashes, connection, tables.kinds, stored=stored_now)
    if built is not None:
        result.written += len(changed)
        page_tables = built
    else:
        page_tables = _reference_tables(spec, connection, changed, rejects, result, tables.kinds)
    if positions:
        rejected = {r["position"] for r in rejects}
        accepted = [moment for position, moment in positions if position not in rejected]
        if accepted:
            latest = max(accepted)
            result.position = latest if result.position is None else max(result.position, latest)
    if rejects:
        result.rejected += len(rejects)
        result.count(REJECTED_RECORDS.name, len(rejects))
        table, _ = REJECTED_RECORDS.build(rejects)
        yield from batches.add(REJECTED_RECORDS, table, ())
    for table_spec in spec.tables:
        if table_spec.name not in page_tables:
            continue
        table, extra_json = page_tables[table_spec.name]
        if table_spec.is_child and new_ids:
            table = _without_markers_of(table, spec.foreign_key, new_ids)
            if not table.num_rows and table_spec.name not in batches.started:
                # the table's first rows in this scan: one marker (never stored), so that the table exists in
                # the warehouse even when no record has children yet (the models read every table)
                marker = table_spec.marker_row({spec.foreign_key: new_ids[0], "connection": connection})
                table, extra_json = table_spec.build([marker])
        if table.num_rows:
            if table_spec.is_child:
                real = table.num_rows - pc.sum(pc.fill_null(table.column(EMPTY_LIST_MARKER), False)).as_py()
            else:
                real = table.num_rows
            result.count(table_spec.name, real)
            yield from batches.add(table_spec, table, extra_json)


def _without_markers_of(table: pa.Table, foreign_key: str, parent_ids: list[str]) -> pa.Table:
    """A child table without the marker rows of these parents (the record-by-record path makes one for every
    empty list; the arrow path only for the records the warehouse holds)."""
    markers = pc.fill_null(table.column(EMPTY_LIST_MARKER), False)
    if not pc.any(markers).as_py():
        return table
    of_new = pc.fill_null(pc.is_in(table.column(foreign_key), value_set=pa.array(parent_ids, pa.string())), False)
    return table.filter(pc.invert(pc.and_(markers, of_new)))


def _as_record_error(exc: Exception) -> RecordError:
    """A reader's `RecordError` as it is; any other exception a record caused (no reader foresaw the value)
    rejects that record too, saying what happened, instead of failing the scan."""
    if isinstance(exc, RecordError):
        return exc
    log.debug("unexpected error reading a record", exc_info=exc)
    return RecordError("(record)", f"cannot be read ({type(exc).__name__}: {str(exc)[:200]})")


def _usable_id(record_id: Any) -> str | None:
    return record_id if isinstance(record_id, str) and record_id else None


def _field_path(spec: ObjectSpec, table: str) -> Callable[[dict[str, Any], str], str]:
    """How a column of a row of `table` is named in an error, as the record has it: `field`,
    `line_items[2].field`, `tracking_categories[1]`, `line_items[2].tracking_categories[0]`."""
    for lst in spec.id_lists:
        if lst.spec.name == table:
            return lambda row, column: f"{lst.sources[0]}[{row.get('position')}]"
    for obj in spec.objects:
        line = obj.sources[0]
        if obj.spec.name == table:
            return lambda row, column: f"{line}[{row.get('line_index')}].{column}"
        for lst in obj.id_lists:
            if lst.spec.name == table:
                return lambda row, column: f"{line}[{row.get('line_index')}].{lst.sources[0]}[{row.get('position')}]"
    return lambda row, column: column


def _reference_tables(
    spec: ObjectSpec,
    connection: str,
    changed: list[tuple[int, Any, str | None]],
    rejects: list[dict[str, Any]],
    result: ScanResult,
    kinds: ColumnKinds | None = None,
) -> dict[str, tuple[pa.Table, list[str]]]:
    """Record by record: the path that names every bad value (and the reference the fast path matches)."""
    kinds = kinds if kinds is not None else ColumnKinds()
    accepted: list[tuple[int, Any, dict[str, list[dict[str, Any]]]]] = []
    for position, record, content_hash in changed:
        try:
            record_rows = spec.normalize(record, connection)
            fresh = {
                table.name: kinds.type_rows(
                    table.name, record_rows[table.name], table.stored_columns, _field_path(spec, table.name)
                )
                for table in spec.tables
                if record_rows.get(table.name)
            }
        except Exception as exc:
            error = _as_record_error(exc)
            rejects.append(_reject(spec, connection, _usable_id(record.get("id")), position, error, record))
            continue
        for table_name, kinds_of_record in fresh.items():
            kinds.commit(table_name, kinds_of_record)
        record_rows[spec.parent.name][0][HASH_COLUMN] = content_hash
        accepted.append((position, record, record_rows))
    try:
        built = _build(spec, [rows for _, _, rows in accepted], kinds)
    except Exception:  # a value no reader foresaw: find the records that cannot be built, load the rest
        built, accepted = _isolate(spec, connection, accepted, rejects, kinds)
    result.written += len(accepted)
    return built


def _build(
    spec: ObjectSpec, bundles: list[dict[str, list[dict[str, Any]]]], kinds: ColumnKinds
) -> dict[str, tuple[pa.Table, list[str]]]:
    rows: dict[str, list[dict[str, Any]]] = {t.name: [] for t in spec.tables}
    for bundle in bundles:
        for name, table_rows in bundle.items():
            rows[name].extend(table_rows)
    return {t.name: t.build(rows[t.name], kinds) for t in spec.tables if rows[t.name]}


def _isolate(
    spec: ObjectSpec,
    connection: str,
    accepted: list[tuple[int, Any, dict[str, list[dict[str, Any]]]]],
    rejects: list[dict[str, Any]],
    kinds: ColumnKinds,
) -> tuple[dict[str, tuple[pa.Table, list[str]]], list[tuple[int, Any, dict[str, list[dict[str, Any]]]]]]:
    """Build each record alone; reject those that fail, naming the first column that cannot be built."""
    good = []
    for position, record, bundle in accepted:
        try:
            _build(spec, [bundle], kinds)
        except Exception as exc:
            field_name = _unbuildable_field(spec, bundle, kinds)
            error = RecordError(field_name, f"cannot be stored ({type(exc).__name__}: {str(exc)[:120]})")
            rejects.append(_reject(spec, connection, _usable_id(record.get("id")), position, error, record))
            continue
        good.append((position, record, bundle))
    return _build(spec, [bundle for _, _, bundle in good], kinds), good


def _unbuildable_field(spec: ObjectSpec, bundle: dict[str, list[dict[str, Any]]], kinds: ColumnKinds) -> str:
    for table in spec.tables:
        path = _field_path(spec, table.name)
        for row in bundle.get(table.name, []):
            for column, value in row.items():
                try:
                    table.build([{column: value}], kinds)
                except Exception:
                    return path(row, column)
    return "(record)"


def _reject(
    spec: ObjectSpec, connection: str, record_id: str | None, position: int, exc: RecordError, record: Any
) -> dict[str, Any]:
    where = f"id {record_id}" if record_id else f"position {position} (no id)"
    field_name = spec.provider_field(exc.field)
    log.warning("%s [%s] record %s rejected: %s: %s", spec.parent.name, connection, where, field_name, exc.message)
    return {
        "rejection_id": str(uuid.uuid4()),
        "table_name": spec.parent.name,
        "connection": connection,
        "record_id": record_id,
        "position": position,
        "field": field_name,
        "error": exc.message,
        "record": _as_sent(record),
        "rejected_at": datetime.now(UTC),
    }


def _as_sent(record: Any) -> str:
    """The rejected record as JSON text, to keep what came; a record that cannot be written as JSON (nested
    too deeply, say) is kept as the start of its text."""
    try:
        return json_text(record, "(record)")
    except RecordError:
        pass
    try:
        shown = repr(record)  # escapes what JSON text cannot hold (NUL, unpaired surrogates)
    except RecursionError:
        shown = f"<{type(record).__name__} nested too deeply to show>"
    return json_text({"unstorable_record": shown[:10000], "length": len(shown)}, "(record)")
