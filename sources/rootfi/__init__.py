"""Rootfi unified accounting API as a dlt source: invoices (with line items), invoice payments and
tracking categories for one or many companies, into the same tables as Panora (`sources/common/unified_model.py`,
`provider = 'rootfi'`; how Rootfi's records are adapted: `sources/rootfi/objects.py`).

Incremental: each company's scan asks only for records changed since the last loaded `rootfi_updated_at`
(less an overlap), deleted records included, so a deletion arrives as a row with `rootfi_deleted_at` and
marks the stored row deleted. `full_refresh=True` scans everything again; such a complete scan also marks
deleted a stored record the API no longer lists at all. A company's position moves only to the latest
`rootfi_updated_at` of a record that loaded (never a rejected one's, never one later than now plus
`clock_skew_seconds`), compared as instants.

Configuration: `RootfiSettings` (`sources/rootfi/settings.py`), read through dlt's config and secrets, so
`SOURCES__ROOTFI__...` environment variables work.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import httpx
from dlt.sources import DltResource

from sources.common.http.client import RequestStats, RetryPolicy
from sources.common.http.prefetch import DEFAULT_LOOKAHEAD, fetch_ahead
from sources.common.provider import Provider
from sources.common.scan import PositionOf, ScanLog, kept_moment, scan_account
from sources.common.settings import retry_policy
from sources.common.stored.records import NOTHING_STORED, StoredRecords
from sources.common.tables.declared import ResourceTables
from sources.common.tables.object_specs import ObjectSpec
from sources.rootfi.client import RootfiClient, iso_utc, row_key, updated_at
from sources.rootfi.objects import OBJECTS
from sources.rootfi.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CLOCK_SKEW_SECONDS,
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_PAGE_SIZE,
    RootfiSettings,
)
from sources.rootfi.writer import RootfiWriter

__all__ = ["PROVIDER", "RESOURCES", "check_companies", "rootfi_source"]

log = logging.getLogger("accounting_etl.rootfi")

RESOURCES: tuple[str, ...] = tuple(OBJECTS)
CURSOR_STATE_KEY = "updated_since"  # resource state: company alias -> last loaded rootfi_updated_at


def check_companies(companies: Any) -> dict[str, str]:
    """alias -> company id (as text), or a `ValueError` that says how to configure them."""
    if not isinstance(companies, dict) or not companies:
        raise ValueError('SOURCES__ROOTFI__COMPANIES must map aliases to Rootfi company ids, e.g. {"acme-uk": 4101}')
    out = {}
    for alias, company in companies.items():
        if not isinstance(alias, str) or not alias.strip():
            raise ValueError("every Rootfi company needs a non-empty alias")
        if company is None or isinstance(company, bool) or not str(company).strip():
            raise ValueError(f"Rootfi company {alias!r} has no company id")
        out[alias] = str(company).strip()
    return out


def _positions_up_to(horizon: datetime) -> PositionOf:
    """A record's position: its `rootfi_updated_at`, unless that lies beyond `horizon` (a clock far ahead,
    or a hostile value: moving there would skip every change until then)."""

    def position_of(record: Any) -> datetime | None:
        moment = updated_at(record)
        return moment if moment is not None and moment <= horizon else None

    return position_of


@dlt.source(name="rootfi", max_table_nesting=0, spec=RootfiSettings)
def rootfi_source(
    api_key: str = dlt.secrets.value,
    companies: dict[str, Any] = dlt.config.value,
    base_url: str = DEFAULT_BASE_URL,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_attempts: int = RetryPolicy.max_attempts,
    backoff_base: float = RetryPolicy.backoff_base,
    timeout: float = RetryPolicy.timeout,
    max_wait_seconds: float = RetryPolicy.max_wait_seconds,
    max_body_bytes: int = RetryPolicy.max_body_bytes,
    rate_limit: int | None = None,
    rate_window_seconds: float | None = None,
    lookahead: int = DEFAULT_LOOKAHEAD,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    clock_skew_seconds: float = DEFAULT_CLOCK_SKEW_SECONDS,
    full_refresh: bool = False,
    stats: RequestStats | None = None,
    scan_log: ScanLog | None = None,
    transport: httpx.BaseTransport | None = None,
    stored: StoredRecords = NOTHING_STORED,
) -> Sequence[DltResource]:
    """Rootfi invoices, invoice payments, tracking categories and contacts over all configured companies.

    The settings are `RootfiSettings`' fields (each documented there); the rest is what a job hands in.

    Args:
        full_refresh: scan every record again, not only the changes.
        stats: request counters to fill (for the run summary).
        scan_log: per-scan results to fill (complete or failed, counts).
        transport: an httpx transport (tests).
        stored: what the warehouse already holds (the job's: `pipelines/warehouse/stored.py`); the deletions a
            complete scan finds are handed to it.

    Returns:
        The resources `payments`, `invoices`, `tracking_categories` and `contacts`.
    """
    companies = check_companies(companies)
    policy = retry_policy(max_attempts, backoff_base, timeout, max_wait_seconds, max_body_bytes)
    stats = stats if stats is not None else RequestStats()
    scan_log = scan_log if scan_log is not None else ScanLog()
    overlap = timedelta(seconds=overlap_seconds)
    skew = timedelta(seconds=clock_skew_seconds)

    def scan_all(spec: ObjectSpec) -> Iterator[Any]:
        # Per company, not dlt's `incremental`: one resource serves many companies, each with its own
        # position, and yields parent and child tables where only the parent has the cursor column.
        # The positions live in this resource's dlt state, committed with the load package: a run that
        # fails before its package loads leaves them where they were.
        positions: dict[str, str] = dlt.current.resource_state(spec.resource).setdefault(CURSOR_STATE_KEY, {})
        client = RootfiClient(api_key, base_url, policy=policy, stats=stats, transport=transport,
                            rate_limit=rate_limit, rate_window_seconds=rate_window_seconds)  # fmt: skip
        tables = ResourceTables()
        starts: dict[str, tuple[datetime | None, datetime | None]] = {}  # alias -> (position, scan start)

        def scan_of(alias: str, company_id: str) -> tuple[str, Callable[[], Iterator[list[Any]]]]:
            last = None if full_refresh else kept_moment(positions.get(alias), alias, "position")
            since = last - overlap if last is not None and last - datetime.min.replace(tzinfo=UTC) > overlap else None
            starts[alias] = (last, since)
            expect = functools.partial(scan_log.expect, spec.resource, alias)
            # the pages as sent: the scan drops the repeated rows, where it knows which records are stored
            return alias, functools.partial(
                client.pages, spec.resource, company_id, page_size, since, on_total=expect, drop_repeats=False
            )

        try:
            for alias, pages in fetch_ahead((scan_of(a, c) for a, c in companies.items()), lookahead):
                last, since = starts[alias]
                if since is not None:
                    log.info("%s [%s]: changes since %s", spec.resource, alias, iso_utc(since))
                try:
                    result = yield from scan_account(
                        spec,
                        alias,
                        pages,
                        scan_log,
                        tables,
                        complete=since is None,
                        position_of=_positions_up_to(datetime.now(UTC) + skew),
                        row_key=row_key,
                        stored=stored,
                    )
                finally:
                    pages.close()
                if result.status != "complete":
                    continue  # the position stays: the next run asks for these changes again
                if result.position is not None and (last is None or result.position > last):
                    positions[alias] = result.position.astimezone(UTC).isoformat()
        finally:
            client.close()

    # `parallelized`: the resources run side by side in dlt's thread pool (as Panora's); they share the key's
    # budget. The resource state is asked for by name, as dlt needs from a thread of that pool.
    return [dlt.resource(scan_all, name=spec.resource, parallelized=True)(spec) for spec in OBJECTS.values()]


def _source(api_key: str, accounts: dict[str, str], full_refresh: bool = False, **options: Any) -> Any:
    return rootfi_source(api_key=api_key, companies=check_companies(accounts), full_refresh=full_refresh, **options)


PROVIDER = Provider(
    name="rootfi",
    title="Rootfi",
    resources=RESOURCES,
    accounts_setting="companies",
    settings_spec=RootfiSettings,
    make_source=_source,
    check_accounts=check_companies,
    pushes=frozenset({"payment"}),
    make_writer=RootfiWriter,
)
