"""Client-side change detection and deletion marking against what the destination already holds.

Panora has no server-side filter and rewrites `modified_at` on every sync, and a deleted record simply
stops appearing. So a load compares each record's content hash with the hash stored in the destination
(`_record_hash`), writes only what changed, and after a COMPLETE scan of a connection re-writes the rows
that were not seen with `deleted_at` set (the row is kept, never physically lost).

The destination is read through dlt's own SQL client of the running pipeline, so this works for any
destination dlt can read back, and stays correct when local pipeline state is lost: the warehouse is the
truth, not a cache of it. The job hands the pipeline a destination that does not change while the scans read
it (a snapshot of a DuckDB file). A read that fails is never taken for "nothing stored": it raises
`StoredRecordsUnreadable`, and that scan fails, writing nothing it could not compare and marking nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import dlt
import numpy as np
import orjson

from sources.common.digests import (
    DIGEST,
    DigestSet,
    SortedDigests,
    hash_bytes,
    hashes_of_halves,
    id_digests,
    stored_digest_sql,
)
from sources.common.errors import RecordError, StoredRecordsUnreadable
from sources.common.reading.undeclared import kind_of_stored
from sources.common.tables.declared import DELETED_COLUMN, HASH_COLUMN

log = logging.getLogger("accounting_etl.sync")

# Bump when normalization changes what a stored row looks like, so that every row is written again.
NORMALIZER_VERSION = "1"
_HASH_PERSONALIZATION = f"accounting-v{NORMALIZER_VERSION}".encode()[:16]


def record_hash(record: dict[str, Any], volatile: frozenset[str], nested: tuple[str, ...] = ()) -> str:
    """A digest of the record's content without its volatile fields (e.g. Panora's `modified_at`, on the
    record and on its line items).

    The volatile fields are set aside for the dump and put back (the record is this scan's own copy): that
    is a third of the cost of copying every record without them. Keys keep the server's order (no sorting:
    were the server to reorder keys, the cost would be one needless rewrite of the rows, never a missed
    change). `nested` names the lists of objects (line items) whose volatile fields are set aside too."""
    removed: list[tuple[dict[str, Any], str, Any]] = []
    for key in volatile:
        if key in record:
            removed.append((record, key, record.pop(key)))
    for list_key in nested:
        value = record.get(list_key)
        if type(value) is list:
            for item in value:
                if type(item) is dict:
                    for key in volatile:
                        if key in item:
                            removed.append((item, key, item.pop(key)))
    try:
        payload = orjson.dumps(record, default=str)
    except (orjson.JSONEncodeError, TypeError):  # e.g. an integer beyond 64 bits, nesting beyond orjson's
        try:
            payload = json.dumps(record, default=str, separators=(",", ":")).encode()  # ASCII: surrogates escaped
        except (TypeError, ValueError, RecursionError) as exc:
            raise RecordError("(record)", f"cannot be read as JSON ({type(exc).__name__})") from None
    finally:
        for owner, key, value in removed:
            owner[key] = value
    return hashlib.blake2b(payload, digest_size=16, person=_HASH_PERSONALIZATION).hexdigest()


class LoadedRecords:
    """Ids, content hashes and deletion marks of one connection's rows in one destination table, kept as
    digests in flat arrays (`sources/common/digests.py`): 34 bytes a stored record, whatever its size.

    `compare` tells which of a page's records need writing and remembers which stored records this scan saw;
    after a complete scan, `tombstones` gives the stored live rows it did not see, with `deleted_at` set."""

    def __init__(
        self,
        table: str,
        connection: str,
        ids: SortedDigests,
        hashes: np.ndarray,
        deleted: np.ndarray,
        pipeline: Any = None,
        provider: str | None = None,
    ) -> None:
        self.table = table
        self.connection = connection
        self.provider = provider
        self.ids = ids  # the stored ids' digests
        self.hashes = hashes  # the content hash of each, as 16 bytes
        self.deleted = deleted  # whether each is stored with `deleted_at`
        self.seen = np.zeros(len(ids), dtype=bool)  # whether this scan listed it
        self._new_ids = DigestSet()  # the ids this scan listed that are not stored (`add_new`)
        self._pipeline = pipeline

    @classmethod
    def empty(cls, table: str, connection: str, provider: str | None = None) -> LoadedRecords:
        """Nothing stored."""
        nothing = SortedDigests(np.array([], dtype=np.uint64), np.array([], dtype=np.uint64))
        hashes = np.array([], dtype=DIGEST)
        return cls(table, connection, nothing, hashes, np.array([], dtype=bool), provider=provider)

    @classmethod
    def read(cls, table: str, connection: str, provider: str | None = None) -> LoadedRecords:
        """Read from the running pipeline's destination; empty when there is none or the table is not there
        yet. With `provider`, only that provider's rows (providers share the tables). The rows are read in
        chunks, so that only the compact arrays grow with the table. Raises `StoredRecordsUnreadable` when the
        destination cannot be read."""
        pipeline = _destination_pipeline()
        if pipeline is None or not _holds_table(pipeline, table):
            return cls.empty(table, connection, provider)
        his: list[np.ndarray] = []
        los: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        deleted: list[np.ndarray] = []
        where, args = cls._where(connection, provider)
        try:
            for chunk_hi, chunk_lo, chunk_hashes, chunk_deleted in _stored_digests(pipeline, table, where, args):
                his.append(chunk_hi)
                los.append(chunk_lo)
                hashes.append(chunk_hashes)
                deleted.append(chunk_deleted)
        except Exception as exc:
            raise StoredRecordsUnreadable(table, exc) from exc
        if not his:
            return cls.empty(table, connection, provider)
        # Sorted by digest; an id stored twice (which merge never writes) counts once. One column at a time,
        # each list freed as its array is made: the peak stays near the arrays' own size.
        ids, first = SortedDigests.of_columns(_joined(his), _joined(los))
        return cls(
            table,
            connection,
            ids,
            _joined(hashes)[first],
            _joined(deleted)[first],
            pipeline,
            provider,
        )

    @staticmethod
    def _where(connection: str, provider: str | None) -> tuple[str, list[Any]]:
        if provider is None:
            return "connection = %s", [connection]
        return "connection = %s AND provider = %s", [connection, provider]

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """The scan lists these ids (their digests): for each, whether it is the first time. A stored id is
        remembered by its seen bit, any other in a set of the ids new to the table; so a re-sync of stored
        records holds no second set of the ids it saw (16 bytes an id)."""
        if not len(self.ids):
            return self._new_ids.add_new(digests)
        at = self.ids.positions(digests)
        stored = at >= 0
        fresh = np.zeros(len(digests), dtype=bool)
        if stored.any():
            places = at[stored]
            _, first = np.unique(places, return_index=True)  # the first of a stored id listed twice here
            once = np.zeros(len(places), dtype=bool)
            once[first] = True
            fresh[stored] = once & ~self.seen[places]
            self.seen[places] = True
        if not stored.all():
            fresh[~stored] = self._new_ids.add_new(digests[~stored])
        return fresh

    def mark_seen(self, ids: list[str]) -> None:
        """These ids exist upstream (listed by this scan), whether or not they can be read."""
        if ids and len(self.ids):
            at = self.ids.positions(id_digests(ids))
            self.seen[at[at >= 0]] = True

    def compare(self, ids: list[str], content_hashes: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """For each record (its id and content hash): whether it must be written (new, changed, or back after
        having been marked deleted), and whether it is stored already. Marks every one seen."""
        if not ids or not len(self.ids):
            return np.ones(len(ids), dtype=bool), np.zeros(len(ids), dtype=bool)
        at = self.ids.positions(id_digests(ids))
        stored = at >= 0
        self.seen[at[stored]] = True
        write = np.ones(len(ids), dtype=bool)
        known = at[stored]
        write[stored] = (self.hashes[known] != hash_bytes(h for i, h in enumerate(content_hashes) if stored[i])) | (
            self.deleted[known]
        )
        return write, stored

    def tombstones(self, now: datetime | None = None) -> Iterator[list[dict[str, Any]]]:
        """The stored live rows this scan did not see (without dlt's own columns), with `deleted_at` set, in
        batches. Their ids are found by reading the stored ids again (only when there are some)."""
        missing = self.ids.subset(~self.seen & ~self.deleted)  # stored as live, not listed by this scan
        if not len(missing) or self._pipeline is None:
            return
        ids: list[str] = []
        owner, args = self._where(self.connection, self.provider)
        try:
            for chunk in _select_chunks(self._pipeline, self.table, "id", owner, args):
                chunk_ids = [str(row[0]) for row in chunk]
                hits = missing.positions(id_digests(chunk_ids)) >= 0
                ids.extend(i for i, hit in zip(chunk_ids, hits, strict=True) if hit)
        except Exception as exc:  # nothing is marked deleted rather than a guess, and the scan fails
            raise StoredRecordsUnreadable(self.table, exc) from exc
        stamp = now or datetime.now(UTC)
        ordered = sorted(set(ids))
        for start in range(0, len(ordered), ID_BATCH):
            batch = ordered[start : start + ID_BATCH]
            where = f"{owner} AND id IN ({', '.join(['%s'] * len(batch))})"
            rows = _select(self._pipeline, self.table, "*", where, [*args, *batch], with_names=True)
            out: list[dict[str, Any]] = []
            for row in rows:
                row = {k: v for k, v in row.items() if not k.startswith("_dlt_")}
                row[DELETED_COLUMN] = stamp
                out.append(row)
            if out:
                yield out


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The arrays as one; the list is emptied, so the parts can be freed."""
    joined = np.concatenate(parts)
    parts.clear()
    return joined


ID_BATCH = 500
READ_CHUNK = 10_000  # stored rows fetched at a time
SLICE_ROWS = 100_000  # stored rows DuckDB reads through one connection (`_select_chunks`)


def stored_column_kinds(tables: Sequence[str]) -> dict[str, dict[str, str]]:
    """table -> column -> kind (`sources/common/reading/undeclared.py`) of the columns the warehouse holds for `tables`,
    whoever loaded them (another provider's pipeline fills the same tables); empty when it holds none."""
    pipeline = _destination_pipeline()
    if pipeline is None or not tables:
        return {}
    placeholders = ", ".join(["%s"] * len(tables))
    sql = (
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema = %s AND table_name IN ({placeholders})"
    )
    try:
        with _sql_client(pipeline) as client:
            with client.execute_query(sql, client.dataset_name, *tables) as cursor:
                rows = cursor.fetchall()
    except Exception as exc:  # a destination without information_schema: this run's own values decide
        log.info("cannot read the warehouse's column types (%s: %s)", type(exc).__name__, str(exc)[:200])
        return {}
    out: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        out.setdefault(table, {})[column] = kind_of_stored(str(data_type))
    return out


def _destination_pipeline() -> Any:
    """The pipeline running this extract, when it has a destination."""
    try:
        pipeline = dlt.current.pipeline()
    except Exception:
        return None
    if pipeline is None or pipeline.destination is None:
        return None
    return pipeline


# dlt's pipeline is not safe to ask for a SQL client from several threads at once, and the scans of
# parallel resources do so: `sql_client()` enters and leaves a config-section context in the container the
# pool's threads share (`ContainerInjectableContextMangled`), and reading `default_schema` replaces the live
# schema's content in place, so that another thread meets it without its naming convention (an
# AttributeError). Either way the read failed and the scan took its table as not stored, and wrote every
# record again (seen in the suite). So the scans take turns at those two calls; the reads themselves run
# side by side.
_PIPELINE_ACCESS = threading.Lock()


@contextmanager
def _sql_client(pipeline: Any) -> Iterator[Any]:
    """dlt's SQL client of the pipeline's destination, opened."""
    with _PIPELINE_ACCESS:
        client = pipeline.sql_client()
    with client:
        yield client


def _holds_table(pipeline: Any, table: str) -> bool:
    """Whether the destination holds `table`, by its own catalog (dlt's schema names tables this run's
    extract declares before any is loaded). A catalog that cannot be read raises `StoredRecordsUnreadable`."""
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s"
    try:
        with _sql_client(pipeline) as client, client.execute_query(sql, client.dataset_name, table) as cursor:
            return bool(cursor.fetchone()[0])
    except Exception as exc:
        raise StoredRecordsUnreadable(table, exc) from exc


def _stored_digests(
    pipeline: Any, table: str, where: str, args: list[Any]
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """The stored rows' id digests (`hi`, `lo`), content hashes (`S16`) and whether each is marked deleted, a
    chunk at a time. DuckDB digests the ids itself (`stored_digest_sql`) and hands over columns of integers;
    other destinations hand over the ids, digested here. DuckDB computes the same digest (the first 16 bytes
    of SHA-256), so no id crosses into Python as a string: that is what a re-sync's read-back costs."""
    deleted = f"{DELETED_COLUMN} IS NOT NULL AS deleted"
    columns = f"id, {HASH_COLUMN}, {deleted}"
    duckdb_columns = f"{stored_digest_sql('id', HASH_COLUMN)}, {deleted}"
    for chunk in _select_chunks(pipeline, table, columns, where, args, duckdb_columns):
        if isinstance(chunk, dict):  # DuckDB's columns
            hashes = hashes_of_halves(chunk["hash_hi"], chunk["hash_lo"])
            yield chunk["id_hi"], chunk["id_lo"], hashes, chunk["deleted"]
            continue
        chunk_ids, chunk_hashes, chunk_deleted = zip(*chunk, strict=True)
        digests = id_digests(str(i) for i in chunk_ids)
        yield digests[:, 0].copy(), digests[:, 1].copy(), hash_bytes(chunk_hashes), np.array(chunk_deleted, bool)


def _select_chunks(
    pipeline: Any, table: str, columns: str, where: str, args: list[Any], duckdb_columns: str | None = None
) -> Iterator[Any]:
    """Rows of a destination table, `READ_CHUNK` at a time (DB-API `fetchmany`, on every SQL destination).
    On DuckDB, `duckdb_columns` (when given) are selected instead, and each query's rows come as one dict of
    numpy arrays (DuckDB's `fetchnumpy`: no Python object per row).

    On DuckDB, more rows than `SLICE_ROWS` are read in slices of row ids holding about that many each, every
    slice through a connection of its own: DuckDB keeps the blocks a query read until its database is closed
    (dlt closes it with its last connection), so one query over the ids and hashes of a large table would grow
    the process with the table; slices keep a re-sync's peak flat in the account's size (bench/README.md,
    `bench_scale.py`). The job hands the pipeline a destination that does not change while it reads (a
    snapshot), so no write comes between two slices."""
    as_columns = False
    with _sql_client(pipeline) as client:
        name = client.make_qualified_table_name(table)
        bounds = None
        if "duckdb" in type(client).__module__:
            bounds = client.execute_sql(f"SELECT count(*), min(rowid), max(rowid) FROM {name} WHERE {where}", *args)[0]
            if duckdb_columns is not None:
                columns, as_columns = duckdb_columns, True
        if bounds is None or bounds[0] <= SLICE_ROWS:  # one query, on this connection
            with client.execute_query(f"SELECT {columns} FROM {name} WHERE {where}", *args) as cursor:
                yield from _fetched(cursor, as_columns)
            return
    rows, first, last = bounds
    step = (last - first) // -(-rows // SLICE_ROWS) + 1  # about SLICE_ROWS of the rows asked for a slice
    sliced = f"SELECT {columns} FROM {name} WHERE {where} AND rowid >= %s AND rowid < %s"
    for start in range(first, last + 1, step):
        with _sql_client(pipeline) as client, client.execute_query(sliced, *args, start, start + step) as cursor:
            yield from _fetched(cursor, as_columns)


def _fetched(cursor: Any, as_columns: bool) -> Iterator[Any]:
    """A query's rows `READ_CHUNK` at a time, or (DuckDB, `as_columns`) all of them as one dict of numpy arrays."""
    if as_columns:
        yield cursor.native_cursor.fetchnumpy()
    else:
        yield from cursor.iter_fetch(READ_CHUNK)


def _select(
    pipeline: Any, table: str, columns: str, where: str, args: list[Any], with_names: bool = False
) -> list[Any]:
    """Rows of a destination table through dlt's SQL client, with parameters (an alias or id is never
    spliced into SQL). Plain DB-API fetches: they work on every SQL destination dlt has."""
    try:
        with _sql_client(pipeline) as client:
            name = client.make_qualified_table_name(table)
            with client.execute_query(f"SELECT {columns} FROM {name} WHERE {where}", *args) as cursor:
                rows = cursor.fetchall()
                if not with_names:
                    return rows
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in rows]
    except Exception as exc:
        raise StoredRecordsUnreadable(table, exc) from exc
