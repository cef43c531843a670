"""The Merge sandbox's records, in memory, thread-safe.

Lists are ordered by (`modified_at`, `id`) and paged by a keyset cursor on that pair, so a record changed
during a scan moves to the end (the client sees it again, never loses one). A change stamps `modified_at`
(Merge's own: when its copy changed) with a clock that never goes back; a deletion keeps the record with
`remote_was_deleted: true` (listed only with `include_deleted_data=true`).
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from sandbox.merge.seed import SeedAccount, iso, seed_accounts

KINDS = ("payments", "invoices", "tracking-categories", "contacts")
SEED_FIELD = {"payments": "payments", "invoices": "invoices", "tracking-categories": "tracking_categories",
              "contacts": "contacts"}  # fmt: skip


class UnknownRecord(KeyError):
    pass


class Store:
    def __init__(self, accounts: list[SeedAccount] | None = None) -> None:
        accounts = accounts if accounts is not None else seed_accounts()
        self.lock = threading.RLock()
        self.accounts = {a.token: a for a in accounts}
        self.aliases = {a.alias: a.token for a in accounts}
        self.records: dict[str, dict[str, list[dict[str, Any]]]] = {
            a.token: {kind: getattr(a, SEED_FIELD[kind]) for kind in KINDS} for a in accounts
        }
        self.last_stamp = max(r["modified_at"] for a in self.records.values() for rows in a.values() for r in rows)
        self.created = Counter()  # records created through POST, per kind

    def tokens(self) -> dict[str, str]:
        """alias -> linked-account token, as a user configures them."""
        return dict(self.aliases)

    def page(
        self, token: str, kind: str, after: tuple[str, str] | None, limit: int, filters: dict[str, Any]
    ) -> tuple[list[dict[str, Any]], bool]:
        """Rows after the keyset `after` that pass the filters, and whether more follow."""
        since, until = filters.get("modified_after"), filters.get("modified_before")
        created_after, created_before = filters.get("created_after"), filters.get("created_before")
        with self.lock:
            rows = [
                r
                for r in self.records[token][kind]
                if (filters.get("include_deleted_data") or not r.get("remote_was_deleted"))
                and (since is None or _at(r["modified_at"]) > since)
                and (until is None or _at(r["modified_at"]) < until)
                and (created_after is None or _at(r["created_at"]) > created_after)
                and (created_before is None or _at(r["created_at"]) < created_before)
                and (filters.get("remote_id") is None or r["remote_id"] == filters["remote_id"])
            ]
            rows.sort(key=lambda r: (_at(r["modified_at"]), r["id"]))
            if after is not None:
                rows = [r for r in rows if (_at(r["modified_at"]), r["id"]) > (_at(after[0]), after[1])]
            return [copy.deepcopy(r) for r in rows[:limit]], len(rows) > limit

    def get(self, token: str, kind: str, record_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = next((r for r in self.records[token][kind] if r["id"] == record_id), None)
            return copy.deepcopy(found) if found is not None else None

    def all(self, alias: str, kind: str, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.records[self.aliases[alias]][kind]
            return [copy.deepcopy(r) for r in rows if include_deleted or not r.get("remote_was_deleted")]

    # -- changes (tests and the admin API) ---------------------------------------------------------------
    def stamp(self) -> str:
        """A `modified_at` later than every stored one."""
        with self.lock:
            now = datetime.now(UTC)
            last = _at(self.last_stamp)
            if now <= last:
                now = last + timedelta(milliseconds=1)
            self.last_stamp = iso(now)
            return self.last_stamp

    def _find(self, alias: str, kind: str, record_id: str) -> dict[str, Any]:
        for record in self.records[self.aliases[alias]][kind]:
            if record["id"] == record_id:
                return record
        raise UnknownRecord(record_id)

    def update(self, alias: str, kind: str, record_id: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            record = self._find(alias, kind, record_id)
            record.update(fields)
            record["modified_at"] = self.stamp()
            return copy.deepcopy(record)

    def touch(self, alias: str, kind: str, record_id: str) -> None:
        """Merge's copy changed (a re-sync) while nothing a client reads did: only `modified_at` moves."""
        self.update(alias, kind, record_id)

    def delete(self, alias: str, kind: str, record_id: str) -> None:
        self.update(alias, kind, record_id, remote_was_deleted=True)

    def insert(self, alias: str, kind: str, record: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            record = copy.deepcopy(record)
            record["created_at"] = record["modified_at"] = self.stamp()
            self.records[self.aliases[alias]][kind].append(record)
            return copy.deepcopy(record)

    def forget(self, alias: str, kind: str, record_id: str) -> None:
        """The record vanishes from Merge without a `remote_was_deleted` row (what only a complete scan sees)."""
        with self.lock:
            rows = self.records[self.aliases[alias]][kind]
            rows.remove(self._find(alias, kind, record_id))


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))
