"""Following a list endpoint's cursor to the end: what every provider's paging has in common.

A provider says how one page is fetched (`fetch(cursor) -> (rows, next cursor)`: its parameter names, its
cursor encoding) and how a row is keyed; this loop drops rows already seen in the scan (Panora repeats the
last row of each page at the top of the next; a keyset page may return a row that changed meanwhile) and
stops with a `PaginationError` on a cursor that comes back, which would page forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from sources.common.digests import DigestSet, id_digests
from sources.common.errors import PaginationError

Fetch = Callable[[str | None], tuple[list[Any], str | None]]


def follow_cursor(
    fetch: Fetch,
    key: Callable[[Any], str | None],
    what: str,
    cursor: str | None = None,
    seen_keys: Iterable[str] = (),
) -> Iterator[list[Any]]:
    """Every page from `cursor` (None: the first page) until the server gives no next cursor, without the
    rows seen before in this scan (`seen_keys`: taken as seen already). Rows without a key pass through (the
    normalizer reports them). The keys seen are kept as digests (`sources/common/digests.py`), so a scan of
    millions of rows holds megabytes, not a set of strings."""
    seen = DigestSet(id_digests(seen_keys))
    seen_cursors: set[str] = set()
    number = 0
    while True:
        number += 1
        data, next_cursor = fetch(cursor)
        keys = [key(row) for row in data]
        keyed = [i for i, row_key in enumerate(keys) if row_key is not None]
        fresh = seen.add_new(id_digests(keys[i] for i in keyed))  # type: ignore[misc]
        dropped = {i for i, new in zip(keyed, fresh, strict=True) if not new}
        yield [row for i, row in enumerate(data) if i not in dropped] if dropped else list(data)
        if next_cursor is None:
            return
        if next_cursor in seen_cursors:
            raise PaginationError(
                f"{what}: the server returned cursor {next_cursor!r} a second time (page {number}); "
                "the scan would never end"
            )
        seen_cursors.add(next_cursor)
        cursor = next_cursor
