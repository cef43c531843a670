"""Record ids kept compactly: 16-byte digests in sorted numpy arrays instead of Python sets of strings.

A scan remembers every id it has seen (to drop the rows a cursor repeats, and to know which stored records
a complete scan no longer lists) and every stored record's content hash (to skip what did not change). As
Python objects that is about 150 bytes a record, so a connection of a million records held a few hundred
MB per set. Here an id is its 128-bit BLAKE2b digest (16 bytes in a numpy `S16` array) and a content hash
its 16 bytes: flat arrays of 16 bytes each, searched with `np.searchsorted`.

A digest stands for its id the way `_record_hash` already stands for a record's content: two ids with one
128-bit digest are as unlikely as two contents with one hash (about 1 in 10^26 for a billion ids).

Written by hand because no library we have keeps a growing set of fixed-width keys in flat memory: a
Python set holds an object per key, pyarrow's set lookups rebuild their hash table on every call, and a
DuckDB table per scan would be a second database in the process. Sorted runs merged as they grow (the shape
of a log-structured merge tree) keep an insert of a page, and a lookup, at a few small binary searches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

DIGEST = np.dtype("S16")  # fixed width: numpy compares all 16 bytes, so distinct digests stay distinct
_PERSON = b"accounting-ids"


def id_digest(record_id: str) -> bytes:
    return hashlib.blake2b(record_id.encode("utf-8", "surrogatepass"), digest_size=16, person=_PERSON).digest()


def id_digests(ids: Iterable[str]) -> np.ndarray:
    """The digests of `ids`, in order, as an `S16` array."""
    return np.array([id_digest(i) for i in ids], dtype=DIGEST)


def hash_bytes(hex_hashes: Iterable[str | None]) -> np.ndarray:
    """Content hashes (32 hex digits, as `_record_hash` stores them) as an `S16` array; anything else (none,
    or a value some older version wrote) becomes 16 zero bytes, which no real hash equals."""
    out = []
    for value in hex_hashes:
        try:
            raw = bytes.fromhex(value) if isinstance(value, str) else b""
        except ValueError:
            raw = b""
        out.append(raw if len(raw) == 16 else bytes(16))
    return np.array(out, dtype=DIGEST)


def positions_in(sorted_digests: np.ndarray, digests: np.ndarray) -> np.ndarray:
    """For each of `digests`, its index in `sorted_digests` (sorted, unique), or -1."""
    if not len(sorted_digests) or not len(digests):
        return np.full(len(digests), -1, dtype=np.int64)
    at = np.searchsorted(sorted_digests, digests)
    inside = at < len(sorted_digests)
    found = np.zeros(len(digests), dtype=bool)
    found[inside] = sorted_digests[at[inside]] == digests[inside]
    return np.where(found, at, -1)


class DigestSet:
    """A growing set of digests in sorted runs; a run is merged into the one before it once it is at least
    half its size, so there are never more than about log2(n) runs."""

    def __init__(self, digests: Iterable[bytes] = ()) -> None:
        self._runs: list[np.ndarray] = []
        first = np.array(list(digests), dtype=DIGEST)
        if len(first):
            self._push(np.unique(first))

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, digests: np.ndarray) -> np.ndarray:
        found = np.zeros(len(digests), dtype=bool)
        for run in self._runs:
            found |= positions_in(run, digests) >= 0
        return found

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """Add `digests`; returns, for each, whether it is new: in no earlier call, and the first of its value
        in this one."""
        fresh = ~self.contains(digests)
        if not fresh.any():
            return fresh
        _, first = np.unique(digests, return_index=True)
        first_of_value = np.zeros(len(digests), dtype=bool)
        first_of_value[first] = True
        fresh &= first_of_value
        self._push(np.sort(digests[fresh]))
        return fresh

    def _push(self, run: np.ndarray) -> None:
        self._runs.append(run)
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            newest = self._runs.pop()
            self._runs[-1] = np.union1d(self._runs[-1], newest)
