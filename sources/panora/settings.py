"""Panora's settings, and the constants of its API as the running server behaves (read from its code and
measured against it)."""

from typing import Annotated

from dlt.common.configuration import configspec

from sources.common.settings import SecretSentinel, SourceSettings, setting

DEFAULT_BASE_URL = "https://api.panora.dev"
# The server has no documented maximum, and page sizes from 250 to 5000 load equally fast; 1000 keeps an answer
# near 1 MB and a 100-requests-a-minute budget at 100k records a minute.
DEFAULT_PAGE_SIZE = 1000

ENDPOINTS = {
    "payments": "/accounting/payments",
    "invoices": "/accounting/invoices",
    "tracking_categories": "/accounting/trackingcategories",
    "contacts": "/accounting/contacts",
}

# Panora's throttler (nestjs, as Panora configures it): 100 requests a minute per route handler and client IP,
# a sliding log in which refused requests count too.
RATE_LIMIT = 100
RATE_WINDOW_SECONDS = 60.0

API_KEY_HEADER = "x-api-key"
CONNECTION_TOKEN_HEADER = "x-connection-token"

# The envelope's previous-page key: the server says `previous_cursor`, the spec `prev_cursor`.
PREVIOUS_CURSOR_KEYS = ("previous_cursor", "prev_cursor")

# Panora answers 500 (not 4xx) for these; retrying cannot fix them.
PERMANENT_SERVER_ERRORS = ("API Key not found", "Connection not found", "connection token")

# The server rewrites these on every sync (every 8 h) even when nothing changed.
VOLATILE_FIELDS = frozenset({"modified_at"})

PROVIDER = "panora"


@configspec
class PanoraSettings(SourceSettings):
    """Panora's settings (`SOURCES__PANORA__<KEY>`): its credentials and accounts, then the shared ones."""

    api_key: Annotated[str, SecretSentinel] = setting(None, "Panora API key", required=True)
    connections: Annotated[dict[str, str], SecretSentinel] = setting(
        None, 'linked accounts: alias -> connection token, e.g. {"acme-eu": "<token>"}', required=True
    )
    base_url: str = setting(DEFAULT_BASE_URL, "API root (self-hosted Panora: its root, e.g. http://localhost:3000)")
    page_size: int = setting(DEFAULT_PAGE_SIZE, "rows per list request")
    remote_data: bool = setting(False, "also load each record's raw provider JSON (remote_data)")
