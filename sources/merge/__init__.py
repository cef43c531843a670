"""Merge's Accounting API as a dlt source: payments (with where they are applied), invoices (with their
lines; bills marked), tracking categories and contacts for one or many linked accounts, into the same tables as
the other providers (`sources/common/unified_model.py`, `provider = 'merge'`; how Merge's records are adapted:
`sources/merge/objects.py`).

Incremental, as Merge advises: each account's scan asks only for what Merge changed after the start of that
account's last scan that completed (`modified_after`, less `overlap_seconds`), deleted records included
(`include_deleted_data=true`: a record with `remote_was_deleted` marks its row deleted). Merge warns that a change
only inside an expanded object (an invoice's line, a payment's application) may not move its parent's
`modified_at`, so every account is also scanned completely every `full_scan_days` (and on `full_refresh`); a
complete scan also marks deleted a stored record Merge no longer lists at all. The positions live in each
resource's dlt state, per account, and move only when that account's scan completed, in the same load package
as its data.

Configuration: `MergeSettings` (`sources/merge/settings.py`), read through dlt's config and secrets, so
`SOURCES__MERGE__...` environment variables work.
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
from sources.common.scan import ScanLog, kept_moment, scan_account
from sources.common.settings import retry_policy
from sources.common.stored.records import NOTHING_STORED, StoredRecords
from sources.common.tables.declared import ResourceTables
from sources.common.tables.object_specs import ObjectSpec
from sources.merge.client import MergeClient, iso_utc, row_key
from sources.merge.objects import OBJECTS
from sources.merge.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_FULL_SCAN_DAYS,
    DEFAULT_OVERLAP_SECONDS,
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    MergeSettings,
)
from sources.merge.writer import MergeWriter, row_problem

__all__ = ["PROVIDER", "RESOURCES", "check_accounts", "merge_source"]

log = logging.getLogger("accounting_etl.merge")

RESOURCES: tuple[str, ...] = tuple(OBJECTS)
POSITIONS_STATE_KEY = "scans"  # resource state: alias -> {"since": start of the last complete scan, "full": ...}


def check_accounts(accounts: Any) -> dict[str, str]:
    """alias -> linked-account token, or a `ValueError` that says how to configure them."""
    if not isinstance(accounts, dict) or not accounts:
        raise ValueError('SOURCES__MERGE__ACCOUNTS must map aliases to Merge account tokens, e.g. {"acme-us": "..."}')
    out = {}
    for alias, token in accounts.items():
        if not isinstance(alias, str) or not alias.strip():
            raise ValueError("every Merge linked account needs a non-empty alias")
        if not isinstance(token, str) or not token.strip():
            raise ValueError(f"Merge linked account {alias!r} has no account token")
        out[alias] = token.strip()
    return out


@dlt.source(name="merge", max_table_nesting=0, spec=MergeSettings)
def merge_source(
    api_key: str = dlt.secrets.value,
    accounts: dict[str, Any] = dlt.secrets.value,
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
    full_scan_days: float = DEFAULT_FULL_SCAN_DAYS,
    full_refresh: bool = False,
    stats: RequestStats | None = None,
    scan_log: ScanLog | None = None,
    transport: httpx.BaseTransport | None = None,
    stored: StoredRecords = NOTHING_STORED,
) -> Sequence[DltResource]:
    """Merge payments, invoices, tracking categories and contacts over all configured linked accounts.

    The settings are `MergeSettings`' fields (each documented there); the rest is what a job hands in.

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
    accounts = check_accounts(accounts)
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"SOURCES__MERGE__PAGE_SIZE must be between 1 and {MAX_PAGE_SIZE} (Merge's maximum)")
    policy = retry_policy(max_attempts, backoff_base, timeout, max_wait_seconds, max_body_bytes)
    stats = stats if stats is not None else RequestStats()
    scan_log = scan_log if scan_log is not None else ScanLog()
    overlap = timedelta(seconds=overlap_seconds)
    full_every = timedelta(days=full_scan_days)

    def scan_all(spec: ObjectSpec) -> Iterator[Any]:
        # Per account, not dlt's `incremental`: one resource serves many accounts, each with its own position,
        # and the position is when a scan began (Merge's advice), not a value of the records.
        positions: dict[str, dict[str, str]] = dlt.current.resource_state(spec.resource).setdefault(
            POSITIONS_STATE_KEY, {}
        )
        clients = {
            alias: MergeClient(
                api_key,
                token,
                base_url,
                policy=policy,
                stats=stats,
                transport=transport,
                rate_limit=rate_limit,
                rate_window_seconds=rate_window_seconds,
            )
            for alias, token in accounts.items()
        }
        tables = ResourceTables()
        plans: dict[str, tuple[datetime, datetime | None]] = {}  # alias -> (scan start, changes since)

        def scan_of(alias: str) -> tuple[str, Callable[[], Iterator[list[Any]]]]:
            kept = positions.get(alias) or {}
            started = datetime.now(UTC)
            since, full = kept_moment(kept.get("since"), alias), kept_moment(kept.get("full"), alias)
            complete = full_refresh or since is None or full is None or started - full >= full_every
            after = None if complete else since - overlap  # type: ignore[operator]
            plans[alias] = (started, after)
            return alias, functools.partial(clients[alias].pages, spec.resource, page_size, after)

        try:
            for alias, pages in fetch_ahead((scan_of(alias) for alias in accounts), lookahead):
                started, after = plans[alias]
                if after is not None:
                    log.info("%s [%s]: changes since %s", spec.resource, alias, iso_utc(after))
                try:
                    result = yield from scan_account(
                        spec, alias, pages, scan_log, tables, complete=after is None, row_key=row_key, stored=stored
                    )
                finally:
                    pages.close()
                if result.status != "complete":
                    continue  # the position stays: the next run asks for these changes again
                kept = dict(positions.get(alias) or {})
                kept["since"] = started.isoformat()
                if after is None:
                    kept["full"] = started.isoformat()
                positions[alias] = kept
        finally:
            for client in clients.values():
                client.close()

    # `parallelized`: the resources run side by side in dlt's thread pool (as the other providers'); they share
    # each account's budget. The resource state is asked for by name, as dlt needs from a thread of that pool.
    return [dlt.resource(scan_all, name=spec.resource, parallelized=True)(spec) for spec in OBJECTS.values()]


def _source(api_key: str, accounts: dict[str, str], full_refresh: bool = False, **options: Any) -> Any:
    return merge_source(api_key=api_key, accounts=check_accounts(accounts), full_refresh=full_refresh, **options)


PROVIDER = Provider(
    name="merge",
    title="Merge",
    resources=RESOURCES,
    accounts_setting="accounts",
    settings_spec=MergeSettings,
    make_source=_source,
    check_accounts=check_accounts,
    pushes=frozenset({"payment", "invoice"}),
    make_writer=MergeWriter,
    row_problem=row_problem,
)
