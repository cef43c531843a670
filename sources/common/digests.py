"""Record ids kept compactly: 128-bit digests in sorted numpy arrays instead of Python sets of strings.

A scan remembers every id it has seen (to drop the rows a cursor repeats, and to know which stored records
a complete scan no longer lists) and every stored record's content hash (to skip what did not change). As
Python objects that is about 150 bytes a record, so a connection of a million records held a few hundred
MB per set. Here an id is its 128-bit digest (the first 16 bytes of its UTF-8 text's SHA-256), held as two
unsigned 64-bit integers (`hi`, `lo`: 16 bytes a record), and a content hash its 16 bytes (`S16`). SHA-256
because DuckDB has it too: the warehouse digests its stored ids itself, on its own threads
(`stored_digest_sql`), instead of handing every id to Python to be digested here.

A digest stands for its id the way `_record_hash` already stands for a record's content: two ids with one
128-bit digest are as unlikely as two contents with one hash (about 1 in 10^26 for a billion ids).

Written by hand because no library we have keeps a growing set of fixed-width keys in flat memory: a
Python set holds an object per key, pyarrow's set lookups rebuild their hash table on every call, and a
DuckDB table per scan would be a second database in the process. Sorted runs merged as they grow (the shape
of a log-structured merge tree) keep an insert of a page, and a lookup, at a few small binary searches.
Integers, not 16-byte strings: numpy sorts and binary-searches fixed-width byte strings (`S16`) far more
slowly than integers (DECISIONLOG.md, "Ids and hashes as 128-bit digests").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

DIGEST = np.dtype("S16")  # a content hash: fixed width, so numpy compares all 16 bytes


def id_digest(record_id: str) -> bytes:
    return hashlib.sha256(record_id.encode("utf-8", "surrogatepass")).digest()[:16]


def _sql_halves(hex_text: str) -> list[str]:
    """DuckDB expressions: the first 32 hex digits of a text as two unsigned 64-bit integers."""
    return [f"CAST('0x' || {hex_text}[{start}:{start + 15}] AS UBIGINT)" for start in (1, 17)]


def stored_digest_sql(id_column: str, hash_column: str) -> str:
    """DuckDB columns `id_hi, id_lo, hash_hi, hash_lo`: what `id_digests` makes of each stored id, and what
    `hash_bytes` makes of its content hash (both halves 0 where it is not 32 hex digits), as unsigned
    integers (`hashes_of_halves` joins a hash's two)."""
    id_hi, id_lo = _sql_halves(f"sha256(coalesce({id_column}, ''))")  # a column of numbers, never null
    valid = f"coalesce(regexp_full_match({hash_column}, '[0-9a-fA-F]{{32}}'), false)"
    hash_hi, hash_lo = (f"CASE WHEN {valid} THEN {half} ELSE 0 END" for half in _sql_halves(hash_column))
    return f"{id_hi} AS id_hi, {id_lo} AS id_lo, {hash_hi} AS hash_hi, {hash_lo} AS hash_lo"


def hashes_of_halves(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Content hashes given as their two big-endian 64-bit halves, as an `S16` array (`hash_bytes`' form)."""
    return np.column_stack([hi, lo]).astype(">u8").view(DIGEST).ravel()


def id_digests(ids: Iterable[str]) -> np.ndarray:
    """The digests of `ids`, in order, as an (n, 2) array of unsigned integers: the first 8 bytes read as a
    big-endian number (so the pairs order as the bytes do), then the last 8."""
    raw = b"".join(id_digest(i) for i in ids)
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, 2)


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


class SortedDigests:
    """Unique digests sorted by (`hi`, `lo`): searched by `hi`, checked on `lo`."""

    def __init__(self, hi: np.ndarray, lo: np.ndarray) -> None:
        self.hi = hi
        self.lo = lo

    @classmethod
    def of(cls, digests: np.ndarray) -> tuple[SortedDigests, np.ndarray]:
        """The sorted unique digests of `digests` ((n, 2) pairs), and for each the index of its first place."""
        return cls.of_columns(digests[:, 0], digests[:, 1])

    @classmethod
    def of_columns(cls, hi: np.ndarray, lo: np.ndarray) -> tuple[SortedDigests, np.ndarray]:
        """`of` for digests given as their two columns (no (n, 2) array is made of them)."""
        order = np.lexsort((lo, hi))  # stable: of equal pairs, the first place comes first
        hi, lo = hi[order], lo[order]
        first = np.ones(len(hi), dtype=bool)
        first[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
        return cls(hi[first], lo[first]), order[first]

    def __len__(self) -> int:
        return len(self.hi)

    def pairs(self) -> np.ndarray:
        return np.column_stack([self.hi, self.lo])

    def subset(self, keep: np.ndarray) -> SortedDigests:
        return SortedDigests(self.hi[keep], self.lo[keep])

    def positions(self, digests: np.ndarray) -> np.ndarray:
        """For each of `digests` ((n, 2) pairs), its index here, or -1."""
        if not len(self.hi) or not len(digests):
            return np.full(len(digests), -1, dtype=np.int64)
        hi, lo = digests[:, 0], digests[:, 1]
        # searched in order: numpy starts each search where the one before ended (half the time here)
        order = np.argsort(hi)
        at = np.empty(len(hi), dtype=np.int64)
        at[order] = np.searchsorted(self.hi, hi[order])
        inside = at < len(self.hi)
        found = np.zeros(len(hi), dtype=bool)
        found[inside] = (self.hi[at[inside]] == hi[inside]) & (self.lo[at[inside]] == lo[inside])
        # two digests whose first 8 bytes are equal (about 1 in 10^19 a pair): look past the first of them
        tied = np.flatnonzero(inside & ~found)
        tied = tied[self.hi[at[tied]] == hi[tied]]
        for i in tied:
            j = int(at[i])
            while j < len(self.hi) and self.hi[j] == hi[i]:
                if self.lo[j] == lo[i]:
                    at[i], found[i] = j, True
                    break
                j += 1
        return np.where(found, at, -1)

    def merged(self, other: SortedDigests) -> SortedDigests:
        """Both together, when they hold no digest in common: the smaller is inserted into the larger at its
        sorted places (a copy, not a sort)."""
        large, small = (self, other) if len(self) >= len(other) else (other, self)
        if not len(small):
            return large
        at = np.searchsorted(large.hi, small.hi)
        if np.any(large.hi[np.minimum(at, len(large) - 1)] == small.hi):  # equal first halves: sort those in
            hi, lo = np.concatenate([large.hi, small.hi]), np.concatenate([large.lo, small.lo])
            return SortedDigests.of_columns(hi, lo)[0]
        return SortedDigests(np.insert(large.hi, at, small.hi), np.insert(large.lo, at, small.lo))


class DigestSet:
    """A growing set of digests in sorted runs; a run is merged into the one before it once it is at least
    half its size, so there are never more than about log2(n) runs."""

    def __init__(self, digests: np.ndarray | None = None) -> None:
        self._runs: list[SortedDigests] = []
        if digests is not None and len(digests):
            self._push(SortedDigests.of(digests)[0])

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, digests: np.ndarray) -> np.ndarray:
        found = np.zeros(len(digests), dtype=bool)
        for run in self._runs:
            found |= run.positions(digests) >= 0
        return found

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """Add `digests`; returns, for each, whether it is new: in no earlier call, and the first of its value
        in this one."""
        fresh = ~self.contains(digests)
        if not fresh.any():
            return fresh
        page, first = SortedDigests.of(digests)  # the page's distinct digests, each with its first place
        new = fresh[first]
        fresh[:] = False
        fresh[first[new]] = True
        self._push(page.subset(new))
        return fresh

    def _push(self, run: SortedDigests) -> None:
        self._runs.append(run)
        while len(self._runs) > 1 and 2 * len(self._runs[-1]) >= len(self._runs[-2]):
            newest = self._runs.pop()
            self._runs[-1] = self._runs[-1].merged(newest)
