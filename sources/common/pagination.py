"""Following a list endpoint's cursor to the end: what every provider's paging has in common.

A provider says how one page is fetched (`fetch(cursor) -> (rows, next cursor)`: its parameter names, its
cursor encoding) and how a row is keyed; this loop drops rows already seen in the scan (Panora repeats the
last row of each page at the top of the next; a keyset page may return a row that changed meanwhile) and
stops with a `PaginationError` on a cursor that comes back, which would page forever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sources.common.errors import PaginationError

Fetch = Callable[[str | None], tuple[list[Any], str | None]]


def follow_cursor(
    fetch: Fetch,
    key: Callable[[Any], str | None],
    what: str,
    cursor: str | None = None,
    seen_keys: set[str] | None = None,
) -> Iterator[list[Any]]:
    """Every page from `cursor` (None: the first page) until the server gives no next cursor, without the
    rows seen before in this scan. Rows without a key pass through (the normalizer reports them)."""
    seen_keys = seen_keys if seen_keys is not None else set()
    seen_cursors: set[str] = set()
    number = 0
    while True:
        number += 1
        data, next_cursor = fetch(cursor)
        rows = []
        for row in data:
            row_key = key(row)
            if row_key is not None:
                if row_key in seen_keys:
                    continue
                seen_keys.add(row_key)
            rows.append(row)
        yield rows
        if next_cursor is None:
            return
        if next_cursor in seen_cursors:
            raise PaginationError(
                f"{what}: the server returned cursor {next_cursor!r} a second time (page {number}); "
                "the scan would never end"
            )
        seen_cursors.add(next_cursor)
        cursor = next_cursor
