"""Rootfi unified accounting API as a dlt source: invoices (with line items), invoice payments and
tracking categories for one or many companies, into the same tables as Panora (`sources/common/model.py`,
`provider = 'rootfi'`; how Rootfi's records are adapted: `sources/rootfi/objects.py`).

Incremental: each company's scan asks only for records changed since the last loaded `rootfi_updated_at`
(less an overlap), deleted records included, so a deletion arrives as a row with `rootfi_deleted_at` and
marks the stored row deleted. `full_refresh=True` scans everything again; such a complete scan also marks
deleted a stored record the API no longer lists at all.

Configuration (dlt config/secrets, so `SOURCES__ROOTFI__...` environment variables work):
    api_key (secret), companies (alias -> Rootfi company id), base_url, page_size, max_attempts,
    backoff_base, timeout, overlap_seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import dlt
import httpx
from dlt.sources import DltResource

from sources.common.http import RequestStats, RetryPolicy
from sources.common.prefetch import prefetch
from sources.common.ratelimit import RateLimitPacer
from sources.common.records import ObjectSpec
from sources.common.scan import ScanLog, scan_account
from sources.common.sync import Guard
from sources.common.tables import Tagger
from sources.rootfi.helpers import RootfiClient, iso_utc, updated_at
from sources.rootfi.objects import OBJECTS
from sources.rootfi.settings import DEFAULT_BASE_URL, DEFAULT_OVERLAP_SECONDS, DEFAULT_PAGE_SIZE

__all__ = ["RESOURCES", "check_companies", "rootfi_source"]

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


class _Watermark:
    """The latest `rootfi_updated_at` among the rows that went by: where the next incremental scan starts."""

    def __init__(self) -> None:
        self.latest: datetime | None = None

    def track(self, pages: Iterable[list[dict[str, Any]]]) -> Iterator[list[dict[str, Any]]]:
        for page in pages:
            for row in page:
                moment = updated_at(row)
                if moment is not None and (self.latest is None or moment > self.latest):
                    self.latest = moment
            yield page


@dlt.source(name="rootfi", max_table_nesting=0)
def rootfi_source(
    api_key: str = dlt.secrets.value,
    companies: dict[str, Any] = dlt.config.value,
    base_url: str = DEFAULT_BASE_URL,
    page_size: int = DEFAULT_PAGE_SIZE,
    max_attempts: int = RetryPolicy.max_attempts,
    backoff_base: float = RetryPolicy.backoff_base,
    timeout: float = RetryPolicy.timeout,
    overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
    full_refresh: bool = False,
    stats: RequestStats | None = None,
    scan_log: ScanLog | None = None,
    transport: httpx.BaseTransport | None = None,
    destination_guard: Guard | None = None,
) -> Sequence[DltResource]:
    """Rootfi invoices, invoice payments and tracking categories over all configured companies.

    Args:
        api_key: the Rootfi API key (`api_key` header).
        companies: alias -> Rootfi company id; the alias is the `connection` of every row.
        base_url: the Rootfi API root (`.../v3`).
        page_size: rows per list request.
        max_attempts, backoff_base, timeout: the shared retry policy (as for Panora).
        overlap_seconds: how far before the last loaded change the next incremental scan starts.
        full_refresh: scan every record again, not only the changes.
        stats, scan_log, transport: request counters, per-scan results and an httpx transport (tests).
        destination_guard: held around each read of the destination (the job's one-writer lock).

    Returns:
        The resources `payments`, `invoices` and `tracking_categories`.
    """
    companies = check_companies(companies)
    policy = RetryPolicy(max_attempts=max_attempts, backoff_base=backoff_base, timeout=timeout)
    stats = stats if stats is not None else RequestStats()
    scan_log = scan_log if scan_log is not None else ScanLog()
    pacer = RateLimitPacer()  # the limit is per API key, across resources
    overlap = timedelta(seconds=overlap_seconds)

    def scan_all(spec: ObjectSpec) -> Iterator[Any]:
        # Per company, not dlt's `incremental`: one resource serves many companies, each with its own
        # position, and yields parent and child tables where only the parent has the cursor column.
        # The positions live in this resource's dlt state, committed with the load package: a run that
        # fails before its package loads leaves them where they were.
        positions: dict[str, str] = dlt.current.resource_state().setdefault(CURSOR_STATE_KEY, {})
        client = RootfiClient(api_key, base_url, policy=policy, pacer=pacer, stats=stats, transport=transport)
        tagger = Tagger()
        try:
            for alias, company_id in companies.items():
                last = None if full_refresh else positions.get(alias)
                since = datetime.fromisoformat(last) - overlap if last else None
                watermark = _Watermark()
                pages = prefetch(watermark.track(client.pages(spec.resource, company_id, page_size, since)))
                if since is not None:
                    log.info("%s [%s]: changes since %s", spec.resource, alias, iso_utc(since))
                result = yield from scan_account(
                    spec, alias, pages, scan_log, tagger, complete=since is None, guard=destination_guard
                )
                if result.status != "complete":
                    continue  # the position stays: the next run asks for these changes again
                if watermark.latest is not None and (last is None or watermark.latest.isoformat() > last):
                    positions[alias] = watermark.latest.isoformat()
        finally:
            client.close()

    return [dlt.resource(scan_all, name=spec.resource)(spec) for spec in OBJECTS.values()]
