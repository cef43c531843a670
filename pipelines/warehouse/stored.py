"""The stored records a load's scans compare with (`sources/common/stored/records.py`), read from the warehouse
the load writes to, and the deletions they find, marked after the load step.

Reads go through dlt's SQL client of the pipeline the job built on the warehouse (a snapshot of a DuckDB file
while the scans run), so they work on every SQL destination dlt can read back. On DuckDB two things are cheaper:

- DuckDB digests the stored ids itself (`stored_digest_sql`) and hands over columns of integers
  (`fetchnumpy`), instead of every id and hash as Python strings;
- a large table is read in slices of row ids, each through a connection of its own: DuckDB keeps the blocks a
  query read until its database is closed, so one query over a large table would grow the process with it.

Deletions are not written as rows through extract, normalize and load: after the load step, one UPDATE per
batch of ids sets `deleted_at` in the same writer's turn (`apply`), and, for a versioned table, the same
transaction adds the deleted version to its history (`sources/common/tables/history.py`). A warehouse loaded
before history was kept starts it, before its next load step, from the rows it holds (`start_history`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from sources.common.digests import hash_bytes, hashes_of_halves, id_digests, stored_digest_sql
from sources.common.errors import StoredRecordsUnreadable
from sources.common.reading.undeclared import kind_of_stored
from sources.common.stored.records import Deletion, DigestChunk
from sources.common.tables.declared import DELETED_COLUMN, EMPTY_LIST_MARKER, HASH_COLUMN
from sources.common.tables.history import SEEN_AT, VERSIONED_TABLES, history_name

log = logging.getLogger("accounting_etl.sync")

ID_BATCH = 500  # ids per UPDATE that marks deletions
READ_CHUNK = 10_000  # stored rows fetched at a time
SLICE_ROWS = 100_000  # stored rows DuckDB reads through one connection (`_select_chunks`)

# dlt's pipeline is not safe to ask for a SQL client from several threads at once, and the scans of
# parallel resources do so: `sql_client()` enters and leaves a config-section context in the container the
# pool's threads share, and reading `default_schema` replaces the live schema's content in place, so that
# another thread meets it without its naming convention (an AttributeError). Either way the read failed and
# the scan took its table as not stored, and wrote every record again (seen in the suite). So the scans take
# turns at those two calls; the reads themselves run side by side.
_PIPELINE_ACCESS = threading.Lock()


class WarehouseRecords:
    """What a warehouse holds, through dlt's SQL client of `pipeline`; `duckdb`: the warehouse is a DuckDB file
    (its cheaper reads). Collects the deletions the scans find, for `apply` after the load step."""

    def __init__(self, pipeline: Any, duckdb: bool) -> None:
        self.pipeline = pipeline
        self.duckdb = duckdb
        self.deletions: list[Deletion] = []
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------------------------------------

    def holds(self, table: str) -> bool:
        """By the warehouse's own catalog (dlt's schema names the tables this run declares before any is
        loaded). A catalog that cannot be read raises `StoredRecordsUnreadable`."""
        sql = "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s"
        try:
            with _sql_client(self.pipeline) as client, client.execute_query(sql, client.dataset_name, table) as cur:
                return bool(cur.fetchone()[0])
        except Exception as exc:
            raise StoredRecordsUnreadable(table, exc) from exc

    def digests(self, table: str, connection: str, provider: str | None) -> Iterator[DigestChunk]:
        where, args = _owned_by(connection, provider)
        deleted = f"{DELETED_COLUMN} IS NOT NULL AS deleted"
        columns = f"id, {HASH_COLUMN}, {deleted}"
        duckdb_columns = f"{stored_digest_sql('id', HASH_COLUMN)}, {deleted}" if self.duckdb else None
        for chunk in _select_chunks(self.pipeline, table, columns, where, args, self.duckdb, duckdb_columns):
            if isinstance(chunk, dict):  # DuckDB's columns
                hashes = hashes_of_halves(chunk["hash_hi"], chunk["hash_lo"])
                yield chunk["id_hi"], chunk["id_lo"], hashes, chunk["deleted"]
                continue
            chunk_ids, chunk_hashes, chunk_deleted = zip(*chunk, strict=True)
            digests = id_digests(str(i) for i in chunk_ids)
            yield digests[:, 0].copy(), digests[:, 1].copy(), hash_bytes(chunk_hashes), np.array(chunk_deleted, bool)

    def ids(self, table: str, connection: str, provider: str | None) -> Iterator[list[str]]:
        where, args = _owned_by(connection, provider)
        for chunk in _select_chunks(self.pipeline, table, "id", where, args, self.duckdb):
            yield [str(row[0]) for row in chunk]

    def column_kinds(self, tables: Sequence[str]) -> dict[str, dict[str, str]]:
        if not tables:
            return {}
        placeholders = ", ".join(["%s"] * len(tables))
        sql = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            f"WHERE table_schema = %s AND table_name IN ({placeholders})"
        )
        try:
            with _sql_client(self.pipeline) as client:
                with client.execute_query(sql, client.dataset_name, *tables) as cursor:
                    rows = cursor.fetchall()
        except Exception as exc:  # a destination without information_schema: this run's own values decide
            log.info("cannot read the warehouse's column types (%s: %s)", type(exc).__name__, str(exc)[:200])
            return {}
        out: dict[str, dict[str, str]] = {}
        for table, column, data_type in rows:
            out.setdefault(table, {})[column] = kind_of_stored(str(data_type))
        return out

    # -- deletions ------------------------------------------------------------------------------------------

    def mark_deleted(self, deletion: Deletion) -> None:
        with self._lock:
            self.deletions.append(deletion)

    def apply(self, pipeline: Any, load_id: str | None = None) -> int:
        """Mark the collected deletions in the warehouse `pipeline` writes to (the writer's turn after the load
        step): `deleted_at` set on rows still live, in batches of ids, and `_dlt_load_id` to this run's load
        (`load_id`, when it loaded a package): the load that last wrote the row. A versioned table's history
        gets the deleted versions in the same transaction. Returns the rows marked."""
        marked = 0
        with _sql_client(pipeline) as client:
            for deletion in self.deletions:
                name = client.make_qualified_table_name(deletion.table)
                owner, args = _owned_by(deletion.connection, deletion.provider)
                history = _history_columns(client, deletion.table)
                history_table = client.make_qualified_table_name(history_name(deletion.table))
                for start in range(0, len(deletion.ids), ID_BATCH):
                    batch = list(deletion.ids[start : start + ID_BATCH])
                    marks = ", ".join(["%s"] * len(batch))
                    sql = (f"UPDATE {name} SET {DELETED_COLUMN} = %s, _dlt_load_id = coalesce(%s, _dlt_load_id) "
                           f"WHERE {owner} AND {DELETED_COLUMN} IS NULL AND id IN ({marks})")  # fmt: skip
                    with client.begin_transaction():
                        client.execute_sql(sql, deletion.at, load_id, *args, *batch)
                        if history:
                            versions = _deleted_versions(history_table, history, name, owner, marks)
                            client.execute_sql(versions, deletion.at, *args, deletion.at, *batch)
                    marked += len(batch)
        return marked

    # -- history --------------------------------------------------------------------------------------------

    def start_history(self, pipeline: Any) -> list[str]:
        """Before the load step: a versioned table the warehouse holds without its history table (loaded by a
        version that kept none) starts its history from its rows, each the version the load that wrote it
        saw (`_seen_at` the time of that load's id; a child row takes its parent's). Returns the history
        tables started."""
        started = []
        with _sql_client(pipeline) as client:
            present = _tables(client)
            for table, parent in VERSIONED_TABLES.items():
                history = history_name(table)
                if table not in present or history in present:
                    continue
                columns = [client.escape_column_name(c) for c in _columns(client, table) if c != EMPTY_LIST_MARKER]
                name = client.make_qualified_table_name(table)
                if parent is None:
                    select = (f"SELECT {', '.join(columns)}, {_load_time('_dlt_load_id')} AS {SEEN_AT} "
                              f"FROM {name}")  # fmt: skip
                else:
                    parent_table, parent_key = parent
                    rows = ", ".join(f"child.{c}" for c in columns)
                    select = (f"SELECT {rows}, {_load_time('parent._dlt_load_id')} AS {SEEN_AT} FROM {name} AS child "
                              f"INNER JOIN {client.make_qualified_table_name(parent_table)} AS parent "
                              f"ON parent.id = child.{parent_key}")  # fmt: skip
                client.execute_sql(f"CREATE TABLE {client.make_qualified_table_name(history)} AS {select}")
                started.append(history)
                log.info("history of %s starts from the %s rows the warehouse holds", table, table)
        return started


def _deleted_versions(history_table: str, columns: list[str], table: str, owner: str, marks: str) -> str:
    """The statement adding to a history the versions just marked deleted (their `deleted_at` the mark's)."""
    names = ", ".join(columns)
    return (f"INSERT INTO {history_table} ({names}, {SEEN_AT}) SELECT {names}, %s FROM {table} "
            f"WHERE {owner} AND {DELETED_COLUMN} = %s AND id IN ({marks})")  # fmt: skip


def _load_time(load_id: str) -> str:
    """The time of a dlt load id (seconds since the epoch, as text); the epoch for a row without one."""
    return f"to_timestamp(coalesce(CAST({load_id} AS DOUBLE PRECISION), 0))"


def _tables(client: Any) -> set[str]:
    sql = "SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
    with client.execute_query(sql, client.dataset_name) as cursor:
        return {str(row[0]) for row in cursor.fetchall()}


def _columns(client: Any, table: str) -> list[str]:
    """The table's columns in their order (empty: no such table)."""
    sql = ("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
           "ORDER BY ordinal_position")  # fmt: skip
    with client.execute_query(sql, client.dataset_name, table) as cursor:
        return [str(row[0]) for row in cursor.fetchall()]


def _history_columns(client: Any, table: str) -> list[str]:
    """The columns a deleted version of a versioned `table` copies into its history: those both tables have
    (none when the table keeps no history, or its history table is not there)."""
    if table not in VERSIONED_TABLES:
        return []
    history = set(_columns(client, history_name(table)))
    return [client.escape_column_name(c) for c in _columns(client, table) if c in history and c != SEEN_AT]


def _owned_by(connection: str, provider: str | None) -> tuple[str, list[Any]]:
    if provider is None:
        return "connection = %s", [connection]
    return "connection = %s AND provider = %s", [connection, provider]


@contextmanager
def _sql_client(pipeline: Any) -> Iterator[Any]:
    """dlt's SQL client of the pipeline's destination, opened."""
    with _PIPELINE_ACCESS:
        client = pipeline.sql_client()
    with client:
        yield client


def _select_chunks(
    pipeline: Any,
    table: str,
    columns: str,
    where: str,
    args: list[Any],
    duckdb: bool = False,
    duckdb_columns: str | None = None,
) -> Iterator[Any]:
    """Rows of a warehouse table, `READ_CHUNK` at a time (DB-API `fetchmany`, on every SQL destination). On
    DuckDB (`duckdb`), more rows than `SLICE_ROWS` are read in slices of row ids, each through a connection of
    its own, and `duckdb_columns` (when given) are selected instead, each query's rows as one dict of numpy
    arrays. The job hands the pipeline a warehouse that does not change while it reads (a snapshot), so no
    write comes between two slices."""
    as_columns = duckdb and duckdb_columns is not None
    with _sql_client(pipeline) as client:
        name = client.make_qualified_table_name(table)
        bounds = None
        if duckdb:
            bounds = client.execute_sql(f"SELECT count(*), min(rowid), max(rowid) FROM {name} WHERE {where}", *args)[0]
            if duckdb_columns is not None:
                columns = duckdb_columns
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
