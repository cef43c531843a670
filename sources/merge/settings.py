"""Merge's settings, and the constants of its Accounting API as its docs and its Python SDK give them
(`../shared/MERGE_NOTES.md` in the team's notes)."""

from typing import Annotated, Any

from dlt.common.configuration import configspec

from sources.common.settings import SecretSentinel, SourceSettings, setting

DEFAULT_BASE_URL = "https://api.merge.dev/api/accounting/v1"  # the EU root: https://api-eu.merge.dev/api/accounting/v1
MAX_PAGE_SIZE = 100  # a larger page_size is refused with 400
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE  # Merge's own default is 30

ENDPOINTS = {
    "payments": "/payments",
    "invoices": "/invoices",
    "tracking_categories": "/tracking-categories",
    "contacts": "/contacts",
}
# Merge lists no invoice lines and no payment applications of their own: they come nested when expanded.
EXPAND = {"payments": "applied_to_lines", "invoices": "line_items"}

API_KEY_HEADER = "Authorization"  # `Bearer <key>`
ACCOUNT_TOKEN_HEADER = "X-Account-Token"

# Per linked account: 100 requests a minute on Merge's Launch plan (Professional 400, Enterprise 600: raise
# SOURCES__MERGE__RATE_LIMIT to the plan's figure).
RATE_LIMIT = 100
RATE_WINDOW_SECONDS = 60.0

# An incremental scan asks for records Merge changed after the start of the account's last complete scan,
# less this margin (records Merge committed late with an earlier stamp); rows read twice are recognised by their
# content hash and not rewritten.
DEFAULT_OVERLAP_SECONDS = 300.0
# A change only inside an expanded object (a line, an application) may not move its parent's `modified_at`,
# Merge warns: so every account is also scanned completely this often, and that scan marks vanished records
# deleted.
DEFAULT_FULL_SCAN_DAYS = 7.0

PROVIDER = "merge"
# Merge's `modified_at` moves when its copy is re-synced, whether or not anything changed
VOLATILE_FIELDS = frozenset({"modified_at"})


@configspec
class MergeSettings(SourceSettings):
    """Merge's settings (`SOURCES__MERGE__<KEY>`): its credentials and linked accounts, then the shared ones."""

    api_key: Annotated[str, SecretSentinel] = setting(None, "Merge API key (sent as a Bearer token)", required=True)
    accounts: Annotated[dict[str, Any], SecretSentinel] = setting(
        None,
        'linked accounts: alias -> account token (X-Account-Token), e.g. {"soylent-us": "<account token>"}',
        required=True,
    )
    base_url: str = setting(DEFAULT_BASE_URL, "API root, with /api/accounting/v1 (the EU root works too)")
    page_size: int = setting(DEFAULT_PAGE_SIZE, "rows per list request (at most 100)")
    overlap_seconds: float = setting(
        DEFAULT_OVERLAP_SECONDS, "an incremental scan starts this long before the last complete scan began"
    )
    full_scan_days: float = setting(
        DEFAULT_FULL_SCAN_DAYS,
        "scan every record again after this many days (what marks vanished records deleted)",
    )
