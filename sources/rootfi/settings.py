"""Rootfi's settings, and the constants of its API as its documentation and code give them."""

from typing import Annotated, Any

from dlt.common.configuration import configspec

from sources.common.settings import SecretSentinel, SourceSettings, setting

DEFAULT_BASE_URL = "https://api.rootfi.dev/v3"
DEFAULT_PAGE_SIZE = 500

ENDPOINTS = {
    "payments": "/accounting/invoice_payments",
    "invoices": "/accounting/invoices",
    "tracking_categories": "/accounting/tracking_categories",
    "contacts": "/accounting/contacts",  # Rootfi's v3 accounting contacts (customers and vendors)
}
SYNC_STATUS = "/core/syncs/{sync_id}"

# 100 requests a minute per API key, across routes (its burst of 200 is not relied on)
RATE_LIMIT = 100
RATE_WINDOW_SECONDS = 60.0

API_KEY_HEADER = "api_key"

# Records changed within this many seconds before the last loaded `rootfi_updated_at` are asked for again:
# `gte` already includes equal timestamps, and this margin also covers rows a sync committed late with an
# earlier stamp. Re-read rows that did not change are recognised by their content hash and not rewritten.
DEFAULT_OVERLAP_SECONDS = 300.0
# A record stamped later than now plus this never moves a company's position (a scan from there would skip
# every change until then). At most the overlap, so a position within the skew loses nothing.
DEFAULT_CLOCK_SKEW_SECONDS = 60.0

# Job states of the write API
JOB_ENDED = ("SUCCESS", "FAILED")

PROVIDER = "rootfi"
# `rootfi_updated_at` (loaded as `modified_at`) moves on every platform sync, changed or not
VOLATILE_FIELDS = frozenset({"modified_at"})


@configspec
class RootfiSettings(SourceSettings):
    """Rootfi's settings (`SOURCES__ROOTFI__<KEY>`): its credentials and companies, then the shared ones."""

    api_key: Annotated[str, SecretSentinel] = setting(None, "Rootfi API key", required=True)
    companies: dict[str, Any] = setting(
        None, 'linked companies: alias -> Rootfi company id, e.g. {"northwind-uk": 4101}', required=True
    )
    base_url: str = setting(DEFAULT_BASE_URL, "API root")
    page_size: int = setting(DEFAULT_PAGE_SIZE, "rows per list request")
    overlap_seconds: float = setting(
        DEFAULT_OVERLAP_SECONDS, "an incremental scan starts this long before the last loaded change"
    )
    clock_skew_seconds: float = setting(
        DEFAULT_CLOCK_SKEW_SECONDS,
        "a record stamped later than now plus this never moves a company's position (keep it at most the overlap)",
    )
