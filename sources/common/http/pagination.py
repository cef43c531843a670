"""Following a list endpoint's cursor to the end: what every provider's paging has in common.

A provider says how one page is fetched (`fetch(cursor) -> (rows, next cursor)`: its parameter names, its
cursor encoding) and how a row is keyed; this loop drops rows already seen in the scan (Panora repeats the
last row of each page at the top of the next; a keyset page may return a row that changed meanwhile) and
stops with a `PaginationError` on a cursor that comes back, which would page forever. A caller that drops
the repeats itself (the scans, which know the stored records: `sources/common/scan.py`) asks for the pages
as sent, so that this loop, which is the chain of requests, does no more than it must.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from sources.common.digests import DigestSet, id_digests
from sources.common.errors import PaginationError

Fetch = Callable[[str | None], tuple[list[Any], str | None]]


class SeenKeys(Protocol):
    """What remembers the keys a scan has seen (`DigestSet`, or a scan's `LoadedRecords`)."""

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """Remember these keys' digests; for each, whether it is new (not seen before, nor earlier here)."""
        ...


def follow_cursor(
    fetch: Fetch,
    key: Callable[[Any], str | None],
    what: str,
    cursor: str | None = None,
    seen_keys: Iterable[str] = (),
    drop_repeats: bool = True,
) -> Iterator[list[Any]]:
    """Every page from `cursor` (None: the first page) until the server gives no next cursor, without the
    rows seen before in this scan (`seen_keys`: taken as seen already), unless `drop_repeats` is False.
    Rows without a key pass through (the normalizer reports them). The keys seen are kept as digests
    (`sources/common/digests.py`), so a scan of millions of rows holds megabytes, not a set of strings."""
    seen = DigestSet(id_digests(seen_keys)) if drop_repeats else None
    seen_cursors: set[str] = set()
    number = 0
    while True:
        number += 1
        data, next_cursor = fetch(cursor)
        yield list(data) if seen is None else without_repeats(data, key, seen)
        if next_cursor is None:
            return
        if next_cursor in seen_cursors:
            raise PaginationError(
                f"{what}: the server returned cursor {next_cursor!r} a second time (page {number}); "
                "the scan would never end"
            )
        seen_cursors.add(next_cursor)
        cursor = next_cursor


def without_repeats(rows: list[Any], key: Callable[[Any], str | None], seen: SeenKeys) -> list[Any]:
    """`rows` without those whose key is in `seen` or comes twice among them; adds the new keys to `seen`."""
    keys = [key(row) for row in rows]
    keyed = [i for i, row_key in enumerate(keys) if row_key is not None]
    fresh = seen.add_new(id_digests(keys[i] for i in keyed))  # type: ignore[misc]
    dropped = {i for i, new in zip(keyed, fresh, strict=True) if not new}
    return [row for i, row in enumerate(rows) if i not in dropped] if dropped else list(rows)
