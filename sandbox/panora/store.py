"""In-memory records of the Panora sandbox: per connection, per object kind, in insertion order.

Every method takes the store's lock, so the threaded HTTP server and a test that mutates data while a
load runs see consistent pages.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sandbox.panora.seed import SeedConnection, iso

KINDS = ("payments", "invoices", "trackingcategories", "contacts")


class UnknownRecord(KeyError):
    """No record with that id in that connection."""


class RecordTable:
    """Records of one kind in insertion order, with an id index for cursors."""

    def __init__(self, rows: Iterable[dict[str, Any]] = ()) -> None:
        self.rows: list[dict[str, Any]] = list(rows)
        self._index: dict[str, int] | None = None

    def position(self, record_id: str) -> int | None:
        if self._index is None:
            # a record without a text id (a test's hostile record) is no cursor: it is not indexed
            self._index = {row["id"]: i for i, row in enumerate(self.rows) if isinstance(row.get("id"), str)}
        return self._index.get(record_id)

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if self._index is not None and isinstance(row.get("id"), str):
            self._index[row["id"]] = len(self.rows) - 1

    def remove(self, record_id: str) -> dict[str, Any]:
        pos = self.position(record_id)
        if pos is None:
            raise UnknownRecord(record_id)
        self._index = None
        return self.rows.pop(pos)


class Connection:
    def __init__(self, seed: SeedConnection) -> None:
        self.alias = seed.alias
        self.token = seed.token
        self.provider = seed.provider
        self.tables = {
            "payments": RecordTable(seed.payments),
            "invoices": RecordTable(seed.invoices),
            "trackingcategories": RecordTable(seed.tracking_categories),
            "contacts": RecordTable(seed.contacts),
        }


class Store:
    """All connections of the sandbox. Records are returned as deep copies."""

    def __init__(self, connections: list[SeedConnection]) -> None:
        self.lock = threading.RLock()
        self.connections: dict[str, Connection] = {}
        for seed in connections:
            conn = Connection(seed)
            self.connections[conn.token] = conn

    # -- lookups -------------------------------------------------------------------------------------
    def by_token(self, token: str) -> Connection | None:
        return self.connections.get(token)

    def by_alias(self, alias: str) -> Connection:
        for conn in self.connections.values():
            if conn.alias == alias:
                return conn
        raise KeyError(alias)

    def tokens(self) -> dict[str, str]:
        """Alias -> connection token, as a user would put in SOURCES__PANORA__CONNECTIONS."""
        return {c.alias: c.token for c in self.connections.values()}

    def page(self, conn: Connection, kind: str, cursor_id: str | None, limit: int) -> tuple[list[dict], bool]:
        """Rows from the cursor row (included, as the real server does) on; and whether more follow.

        The rows are the stored objects themselves (callers must not change them): every mutation below
        replaces a row with a new object, so a renderer may cache by object identity."""
        with self.lock:
            table = conn.tables[kind]
            start = 0
            if cursor_id is not None:
                pos = table.position(cursor_id)
                if pos is None:
                    raise UnknownRecord(cursor_id)
                start = pos
            rows = table.rows[start : start + limit + 1]
            more = len(rows) > limit
            return rows[:limit], more

    def get(self, conn: Connection, kind: str, record_id: str) -> dict[str, Any]:
        with self.lock:
            table = conn.tables[kind]
            pos = table.position(record_id)
            if pos is None:
                raise UnknownRecord(record_id)
            return copy.deepcopy(table.rows[pos])

    def all(self, alias: str, kind: str) -> list[dict[str, Any]]:
        with self.lock:
            return copy.deepcopy(self.by_alias(alias).tables[kind].rows)

    def count(self, alias: str, kind: str) -> int:
        with self.lock:
            return len(self.by_alias(alias).tables[kind].rows)

    # -- mutations (what happens upstream between two loads) -----------------------------------------
    def update(self, alias: str, kind: str, record_id: str, **fields: Any) -> dict[str, Any]:
        """Change fields of a record in place (it keeps its position); bumps `modified_at`."""
        with self.lock:
            table = self.by_alias(alias).tables[kind]
            pos = table.position(record_id)
            if pos is None:
                raise UnknownRecord(record_id)
            table.rows[pos] = {**table.rows[pos], **copy.deepcopy(fields), "modified_at": now_iso()}
            return copy.deepcopy(table.rows[pos])

    def touch_all(self, alias: str, kind: str) -> None:
        """What the real server's 8-hourly sync does: rewrite `modified_at` of every row, nothing else."""
        with self.lock:
            stamp = now_iso()
            rows = self.by_alias(alias).tables[kind].rows
            rows[:] = [{**row, "modified_at": stamp} for row in rows]

    def delete(self, alias: str, kind: str, record_id: str) -> None:
        with self.lock:
            self.by_alias(alias).tables[kind].remove(record_id)

    def insert(self, alias: str, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            row = copy.deepcopy(record)
            row.setdefault("id", str(uuid.uuid4()))
            row.setdefault("created_at", now_iso())
            row.setdefault("modified_at", row["created_at"])
            self.by_alias(alias).tables[kind].append(row)
            return copy.deepcopy(row)

    def create_from_input(self, conn: Connection, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """What POST does: the remote system gets the record, then Panora stores its own row."""
        with self.lock:
            row = copy.deepcopy(body)
            row["id"] = str(uuid.uuid4())
            row["remote_id"] = f"{conn.provider}-{kind[:3]}-{row['id'][:8]}"
            row.setdefault("field_mappings", {})
            row.setdefault("line_items", [])
            row.setdefault("tracking_categories", [])
            stamp = now_iso()
            row["created_at"] = stamp
            row["modified_at"] = stamp
            row["remote_updated_at"] = stamp
            conn.tables[kind].append(row)
            return copy.deepcopy(row)


def now_iso() -> str:
    return iso(datetime.now(UTC))
