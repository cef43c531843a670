"""Client-side change detection and deletion marking against what the warehouse already holds.

Panora has no server-side filter and rewrites `modified_at` on every sync, and a deleted record simply
stops appearing. So a load compares each record's content hash with the hash stored in the warehouse
(`_record_hash`), writes only what changed, and after a COMPLETE scan of a connection names the stored
records it did not see, which the job then marks deleted (`deleted_at` set; the row is kept).

The warehouse is read through the `StoredRecords` the job hands the source (`records.py`), so the warehouse
stays the truth, not a cache of it, when local pipeline state is lost. A read that fails is never taken for
"nothing stored": it raises `StoredRecordsUnreadable`, and that scan fails, writing nothing it could not
compare and marking nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson

from sources.common.digests import DIGEST, DigestSet, SortedDigests, hash_bytes, id_digests
from sources.common.errors import RecordError, StoredRecordsUnreadable
from sources.common.stored.records import NOTHING_STORED, Deletion, StoredRecords

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
    """Ids, content hashes and deletion marks of one connection's rows in one warehouse table, kept as
    digests in flat arrays (`sources/common/digests.py`): 34 bytes a stored record, whatever its size.

    `compare` tells which of a page's records need writing and remembers which stored records this scan saw;
    after a complete scan, `missing` names the stored live records it did not see."""

    def __init__(
        self,
        table: str,
        connection: str,
        ids: SortedDigests,
        hashes: np.ndarray,
        deleted: np.ndarray,
        stored: StoredRecords = NOTHING_STORED,
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
        self._stored = stored

    @classmethod
    def empty(cls, table: str, connection: str, provider: str | None = None) -> LoadedRecords:
        """Nothing stored."""
        nothing = SortedDigests(np.array([], dtype=np.uint64), np.array([], dtype=np.uint64))
        hashes = np.array([], dtype=DIGEST)
        return cls(table, connection, nothing, hashes, np.array([], dtype=bool), provider=provider)

    @classmethod
    def read(cls, stored: StoredRecords, table: str, connection: str, provider: str | None = None) -> LoadedRecords:
        """Read from the warehouse; empty when it does not hold the table yet. With `provider`, only that
        provider's rows (providers share the tables). The rows come in chunks, so that only the compact arrays
        grow with the table. Raises `StoredRecordsUnreadable` when the warehouse cannot be read."""
        if not stored.holds(table):
            return cls.empty(table, connection, provider)
        his: list[np.ndarray] = []
        los: list[np.ndarray] = []
        hashes: list[np.ndarray] = []
        deleted: list[np.ndarray] = []
        try:
            for chunk_hi, chunk_lo, chunk_hashes, chunk_deleted in stored.digests(table, connection, provider):
                his.append(chunk_hi)
                los.append(chunk_lo)
                hashes.append(chunk_hashes)
                deleted.append(chunk_deleted)
        except StoredRecordsUnreadable:
            raise
        except Exception as exc:
            raise StoredRecordsUnreadable(table, exc) from exc
        if not his:
            return cls.empty(table, connection, provider)
        # Sorted by digest; an id stored twice (which merge never writes) counts once. One column at a time,
        # each list freed as its array is made: the peak stays near the arrays' own size.
        ids, first = SortedDigests.of_columns(_joined(his), _joined(los))
        return cls(table, connection, ids, _joined(hashes)[first], _joined(deleted)[first], stored, provider)

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

    def missing(self, now: datetime | None = None) -> Deletion | None:
        """The stored live records this scan did not see, to be marked deleted (None: there are none). Their
        ids are found by reading the stored ids again (only when there are some)."""
        missing = self.ids.subset(~self.seen & ~self.deleted)  # stored as live, not listed by this scan
        if not len(missing):
            return None
        ids: list[str] = []
        try:
            for chunk_ids in self._stored.ids(self.table, self.connection, self.provider):
                hits = missing.positions(id_digests(chunk_ids)) >= 0
                ids.extend(i for i, hit in zip(chunk_ids, hits, strict=True) if hit)
        except StoredRecordsUnreadable:
            raise
        except Exception as exc:  # nothing is marked deleted rather than a guess, and the scan fails
            raise StoredRecordsUnreadable(self.table, exc) from exc
        stamp = now or datetime.now(UTC)
        return Deletion(self.table, self.connection, self.provider, tuple(sorted(set(ids))), stamp)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The arrays as one; the list is emptied, so the parts can be freed."""
    joined = np.concatenate(parts)
    parts.clear()
    return joined
