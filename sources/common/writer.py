"""The writer contract: how push creates records through a provider, in that provider's language.

A writer speaks HTTP and knows the provider's bodies, ids and jobs; it keeps no ledger and decides nothing
about resending. The push engine (`pipelines/push/engine.py`) holds the exactly-once rules (the intent
before a send, a lookup before any resend, `resend_unknown_after`) and calls a writer only through these
few methods. A queued row is a dict of the outbound table's columns (`external_id`, `connection`, ...).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sources.common.http.client import RequestStats, RetryPolicy

Row = Mapping[str, Any]


def calendar_day(value: Any) -> date | None:
    """A queued date as its calendar day: a DATE as it is, a date-time by the day it names where it was
    written, text by its first ten characters (`2026-11-20...`)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class WriterOptions:
    policy: RetryPolicy | None = None  # retries of each request (the provider's defaults when None)
    stats: RequestStats | None = None  # request counters shared with the run summary
    page_size: int = 500  # rows per request when records are looked up
    batch_size: int = 50  # records per request where the API takes several at once


# the fields of a created record checked against the row that was sent (`Created.content` in the queue's terms)
COMPARED = {"payment": ("invoice_id", "total_amount", "currency"), "invoice": ("number", "total_amount", "currency")}


@dataclass(frozen=True)
class Created:
    """A record the API holds: the key it gets in the loaded tables, its id in the accounting system, and the
    provider's own id where that is another; and what the engine checks before it believes the record is a
    row's (`pipelines/push/engine.py`): the external id the record itself carries, where the provider keeps one;
    its content in the queue's terms (`invoice_id`, `total_amount` in minor units, `currency`; `number` of an
    invoice), as far as the writer can read it back; when it was created; and the warnings the provider gave
    with it (Merge's 201 `warnings`), which the ledger keeps beside the created record."""

    record_id: str | None
    remote_id: str | None = None
    provider_id: str | None = None
    external_id: str | None = None
    content: Mapping[str, Any] | None = field(default=None, compare=False)
    created_at: datetime | None = None
    warnings: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Job:
    """A write job the server runs after answering the request (records succeed or fail inside it)."""

    job_id: str
    label: str  # how the job describes itself (its id and state), for the ledger
    ended: bool
    failed: bool  # the job as a whole failed: nothing of it was created
    created: dict[str, Created] = field(default_factory=dict)  # by external id
    failures: dict[str, str] = field(default_factory=dict)  # reasons by external id
    unnamed_reason: str | None = None  # the one reason the job gives for failures it names no record of
    reasons: tuple[str, ...] = ()  # every reason it gives
    failed_count: Any = None
    error: str | None = None  # the job's own error, when it has one


class ChangesSince:
    """What an API lists as changed since a moment, read for a writer's lookups: the first refresh reads from the
    earliest moment asked for (less `margin`: a created record's change time may precede our clock a little),
    each later one continues from the newest change seen (less `overlap`, for an API whose filter is strict).
    `keep` takes each listed record; `changed_at` reads its change time."""

    def __init__(
        self,
        pages: Callable[[datetime], Iterable[list[Any]]],
        keep: Callable[[Any], None],
        changed_at: Callable[[Any], datetime | None],
        margin: timedelta,
        overlap: timedelta = timedelta(0),
    ) -> None:
        self.pages = pages
        self.keep = keep
        self.changed_at = changed_at
        self.margin = margin
        self.overlap = overlap
        self.since: datetime | None = None
        self.lock = threading.Lock()

    def refresh(self, since: datetime) -> None:
        with self.lock:
            start = since - self.margin
            if self.since is None or start < self.since:
                self.since = start
            newest = self.since
            for page in self.pages(self.since):
                for record in page:
                    self.keep(record)
                    moment = self.changed_at(record)
                    if moment is not None:
                        newest = max(newest, moment - self.overlap)
            self.since = newest


class Writer(Protocol):
    """See the module text. Errors: `OutcomeUnknown` when a request may have taken effect without a clear
    answer, `ApiError` when it certainly did not (a 4xx or `WriteRefused`: the record is refused)."""

    batch_size: int  # rows per send: 1 for an API that creates one record per request
    runs_in_background: bool  # an accepted request keeps running after an unclear answer (a job)

    def send(self, kind: str, account: str, rows: Sequence[Row]) -> dict[str, Created] | Job:
        """Create `rows` of `kind` in `account`: the created records by external id, or the job doing it."""
        ...

    def job(self, account: str, job_id: str) -> Job:
        """The state now of a job writing to `account` (`ApiError` with status 404 when the server does not know it)."""
        ...

    def refresh(self, kind: str, account: str, since: datetime) -> None:
        """Read what the API lists of `kind` in `account` now (records changed since `since` at least)."""
        ...

    def find(
        self, kind: str, account: str, row: Row, claimed: set[str], not_before: datetime | None = None
    ) -> Created | None:
        """The record the API holds for a pushed row, from what `refresh` read: the one carrying the row's
        external id, else (a record carrying none) one of the same content created at or after `not_before` (the
        row's first send, less a margin for clocks) and not in `claimed` (records other rows are known to have,
        or that were there before). Never a record carrying another external id."""
        ...

    def backoff(self, send: int) -> float:
        """Seconds to wait before send number `send + 1` of rows that certainly were not created."""
        ...

    def close(self) -> None: ...
