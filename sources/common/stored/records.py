"""What a scan may ask of the warehouse, and nothing more: the sources speak APIs, the warehouse is injected.

A job that runs a source hands it a `StoredRecords` (the load job: `pipelines/warehouse/stored.py`, over the
warehouse it loads into); a source run without one (a test, a tool that only reads the source's shape)
compares with nothing and marks nothing deleted (`NOTHING_STORED`). A scan reads what is stored before its
first page, and after a complete scan names the stored records it no longer saw: the job marks those deleted
after its load step, in one statement per batch, in the same writer's turn.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np

# One chunk of stored rows: their id digests' halves (`hi`, `lo`), content hashes (`S16`) and deletion marks.
DigestChunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Deletion:
    """Stored records that a complete scan of one connection no longer listed."""

    table: str
    connection: str
    provider: str | None
    ids: tuple[str, ...]
    at: datetime


class StoredRecords(Protocol):
    """The records the warehouse already holds. Every read that fails raises `StoredRecordsUnreadable`: a
    failed read is never taken for "nothing stored"."""

    def holds(self, table: str) -> bool:
        """Whether the warehouse holds `table` at all."""
        ...

    def digests(self, table: str, connection: str, provider: str | None) -> Iterator[DigestChunk]:
        """One connection's stored rows of `table` (only `provider`'s, when given), a chunk at a time."""
        ...

    def ids(self, table: str, connection: str, provider: str | None) -> Iterator[list[str]]:
        """The same rows' ids, a chunk at a time (read only when some stored record went missing)."""
        ...

    def column_kinds(self, tables: Sequence[str]) -> dict[str, dict[str, str]]:
        """table -> column -> kind (`sources/common/reading/undeclared.py`) of the columns the warehouse holds,
        whoever loaded them; empty when it cannot tell."""
        ...

    def mark_deleted(self, deletion: Deletion) -> None:
        """Mark these records deleted (their `deleted_at` set, the rows kept) once this load's data is in."""
        ...


class NothingStored:
    """A warehouse that holds nothing: every record is new, and none is ever missing."""

    def holds(self, table: str) -> bool:
        return False

    def digests(self, table: str, connection: str, provider: str | None) -> Iterator[DigestChunk]:
        return iter(())

    def ids(self, table: str, connection: str, provider: str | None) -> Iterator[list[str]]:
        return iter(())

    def column_kinds(self, tables: Sequence[str]) -> dict[str, dict[str, str]]:
        return {}

    def mark_deleted(self, deletion: Deletion) -> None:
        raise AssertionError("nothing is stored, so nothing can go missing")


NOTHING_STORED = NothingStored()
