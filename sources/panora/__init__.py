"""Panora unified accounting API as a dlt source: payments, invoices, tracking categories and contacts for
one or many linked accounts (connection tokens), normalized into typed parent tables and child tables.

Tables (all with a `connection` column holding the alias, never the token):
    payments, invoices, tracking_categories, contacts            keyed by `id`
    payments__line_items, invoices__line_items                   `payment_id` / `invoice_id`, `line_index`
    payments__tracking_categories, invoices__tracking_categories `..._id`, `position`, `tracking_category_id`
    invoices__line_items__tracking_categories                    `invoice_id`, `line_index`, `position`, ...
    rejected_records                                             records that could not be read, and why

Configuration: `PanoraSettings` (`sources/panora/settings.py`), read through dlt's config and secrets, so
`SOURCES__PANORA__...` environment variables work.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import dlt
import httpx
from dlt.sources import DltResource

from sources.common.http.client import RequestStats, RetryPolicy
from sources.common.http.prefetch import DEFAULT_LOOKAHEAD, fetch_ahead
from sources.common.provider import Provider
from sources.common.scan import ScanLog, scan_account
from sources.common.settings import retry_policy
from sources.common.stored.records import NOTHING_STORED, StoredRecords
from sources.common.tables.declared import ResourceTables
from sources.common.tables.object_specs import ObjectSpec
from sources.panora.client import PanoraClient, row_key
from sources.panora.objects import OBJECTS
from sources.panora.settings import DEFAULT_BASE_URL, DEFAULT_PAGE_SIZE, PanoraSettings
from sources.panora.writer import PanoraWriter

__all__ = ["PROVIDER", "RESOURCES", "panora_source"]


RESOURCES: tuple[str, ...] = tuple(OBJECTS)


def check_connections(connections: Any) -> dict[str, str]:
    if not isinstance(connections, dict) or not connections:
        raise ValueError(
            'SOURCES__PANORA__CONNECTIONS must map aliases to connection tokens, e.g. {"acme-eu": "<token>"}'
        )
    for alias, token in connections.items():
        if not isinstance(alias, str) or not alias.strip():
            raise ValueError("every connection needs a non-empty alias")
        if not isinstance(token, str) or not token.strip():
            raise ValueError(f"connection {alias!r} has an empty connection token")
    return dict(connections)


@dlt.source(name="panora", max_table_nesting=0, spec=PanoraSettings)
def panora_source(
    api_key: str = dlt.secrets.value,
    connections: dict[str, str] = dlt.secrets.value,
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
    remote_data: bool = False,
    stats: RequestStats | None = None,
    scan_log: ScanLog | None = None,
    transport: httpx.BaseTransport | None = None,
    stored: StoredRecords = NOTHING_STORED,
) -> Sequence[DltResource]:
    """Panora payments, invoices, tracking categories and contacts over all configured connections.

    The settings are `PanoraSettings`' fields (each documented there); the rest is what a job hands in.

    Args:
        stats: request counters to fill (for the run summary).
        scan_log: per-scan results to fill (complete or failed, counts).
        transport: an httpx transport (tests).
        stored: what the warehouse already holds (the job's: `pipelines/warehouse/stored.py`); the deletions a
            complete scan finds are handed to it.

    Returns:
        The resources `payments`, `invoices`, `tracking_categories` and `contacts`.
    """
    connections = check_connections(connections)
    policy = retry_policy(max_attempts, backoff_base, timeout, max_wait_seconds, max_body_bytes)
    stats = stats if stats is not None else RequestStats()
    scan_log = scan_log if scan_log is not None else ScanLog()

    def scan_all(spec: ObjectSpec) -> Iterator[Any]:
        client = PanoraClient(api_key, base_url, policy=policy, stats=stats, transport=transport,
                            rate_limit=rate_limit, rate_window_seconds=rate_window_seconds)  # fmt: skip
        tables = ResourceTables()
        scans = (
            # the pages as sent: the scan drops the repeated rows, where it knows which records are stored
            (
                alias,
                functools.partial(
                    client.pages, spec.resource, token, page_size, remote_data=remote_data, drop_repeats=False
                ),
            )
            for alias, token in connections.items()
        )
        try:
            for alias, pages in fetch_ahead(scans, lookahead):
                try:
                    yield from scan_account(spec, alias, pages, scan_log, tables, row_key=row_key, stored=stored)
                finally:
                    pages.close()
        finally:
            client.close()

    # Each resource fills its parent table and the child tables; every table gets its own hints where it is
    # yielded (`TableSpec.tag`), because dlt starts a table variant from the resource's hints and would
    # give the child tables the parent's primary key. `parallelized`: each resource runs in dlt's thread
    # pool, so the routes go side by side and one waiting for its budget never holds up another (in dlt's
    # round robin on one thread, a group of 50 connections reached 60% of the allowed rate; side by side, all).
    return [dlt.resource(scan_all, name=spec.resource, parallelized=True)(spec) for spec in OBJECTS.values()]


def _source(api_key: str, accounts: dict[str, str], full_refresh: bool = False, **options: Any) -> Any:
    return panora_source(api_key=api_key, connections=accounts, **options)  # every Panora scan is complete


PROVIDER = Provider(
    name="panora",
    title="Panora",
    resources=RESOURCES,
    accounts_setting="connections",
    settings_spec=PanoraSettings,
    make_source=_source,
    check_accounts=check_connections,
    pushes=frozenset({"payment", "invoice"}),
    make_writer=PanoraWriter,
)
