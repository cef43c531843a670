"""How the Panora API is spoken to: headers, base64 cursors, the repeated boundary row, dedup."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import httpx

from sources.common.errors import ApiError
from sources.common.http.client import ProviderClient, server_message
from sources.common.http.pagination import follow_cursor
from sources.panora.settings import (
    API_KEY_HEADER,
    CONNECTION_TOKEN_HEADER,
    ENDPOINTS,
    PERMANENT_SERVER_ERRORS,
    PREVIOUS_CURSOR_KEYS,
    RATE_LIMIT,
    RATE_WINDOW_SECONDS,
)

log = logging.getLogger("accounting_etl.panora")


def is_permanent_error(response: httpx.Response) -> bool:
    """Panora's 500s for an unknown API key or connection token are final."""
    message = server_message(response)
    return any(marker.lower() in message.lower() for marker in PERMANENT_SERVER_ERRORS)


def encode_cursor(raw: str) -> str:
    """The server sends the last row's raw id and expects it back base64-encoded."""
    return base64.b64encode(raw.encode()).decode()


class PanoraClient(ProviderClient):
    """One API key, many connections. Every request carries a connection token: the server answers a
    request without one with an arbitrary connection's data, so such a request is refused here."""

    title = "Panora"
    api_key_header = API_KEY_HEADER
    secret_headers = (API_KEY_HEADER, CONNECTION_TOKEN_HEADER)
    rate_limit = RATE_LIMIT  # per route handler and client: ProviderClient's default key
    rate_window_seconds = RATE_WINDOW_SECONDS

    @staticmethod
    def is_permanent_error(response: httpx.Response) -> bool:
        return is_permanent_error(response)

    @staticmethod
    def refused_credential(response: httpx.Response) -> str | None:
        """Panora refuses a missing key with 401, and an unknown key or connection token with a 500 whose
        message says which."""
        if response.status_code in (401, 403):
            return "api_key"
        if response.status_code >= 500:
            message = server_message(response).lower()
            if "api key not found" in message:
                return "api_key"
            if "connection not found" in message or "connection token" in message:
                return "account"
        return None

    @staticmethod
    def _headers(connection_token: str) -> dict[str, str]:
        if not connection_token:
            raise ValueError("refusing to call Panora without a connection token")
        return {CONNECTION_TOKEN_HEADER: connection_token}

    def create(self, resource: str, body: dict[str, Any], connection_token: str) -> Any:
        """POST a new record. Raises `OutcomeUnknown` when it cannot tell whether it was created."""
        return self.http.request_json(
            "POST",
            ENDPOINTS[resource],
            json_body=body,
            headers=self._headers(connection_token),
            idempotent=False,
        )

    def pages(
        self,
        resource: str,
        connection_token: str,
        page_size: int,
        remote_data: bool = False,
        start_after: str | None = None,
        drop_repeats: bool = True,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint, without the row each page repeats from the page before.

        Rows are de-duplicated on `id` across the whole scan (`row_key`; not with `drop_repeats=False`, for
        a caller that drops them itself); rows without an id pass through (the normalizer reports them). A
        cursor that comes back twice means the scan would never end.
        `start_after` continues a scan after the row with that id (rows are in insertion order).
        """
        if page_size < 2:
            raise ValueError("page_size must be at least 2: each page repeats one row of the previous one")
        headers = self._headers(connection_token)
        params: dict[str, Any] = {"limit": page_size}
        if remote_data:
            params["remote_data"] = "true"
        pages = 0

        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            nonlocal pages
            pages += 1
            page_params = params if cursor is None else {**params, "cursor": encode_cursor(cursor)}
            body = self.http.get_json(ENDPOINTS[resource], params=page_params, headers=headers)
            return _read_envelope(body, resource, pages)

        return follow_cursor(
            fetch,
            row_key,
            resource,
            cursor=start_after,
            seen_keys=[start_after] if start_after else (),
            drop_repeats=drop_repeats,
        )


def row_key(row: Any) -> str | None:
    """A row's id for de-duplication; a blank one names no row (rows without one are each reported)."""
    row_id = row.get("id") if isinstance(row, dict) else None
    return row_id if isinstance(row_id, str) and row_id.strip() else None


def _read_envelope(body: Any, resource: str, number: int) -> tuple[list[Any], str | None]:
    """`{previous_cursor | prev_cursor, next_cursor, data}` -> (data, next_cursor)."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ApiError("GET", ENDPOINTS[resource], 200, f"page {number} is not a list envelope")
    if not any(key in body for key in PREVIOUS_CURSOR_KEYS) and "next_cursor" not in body:
        log.debug("%s page %d has no cursor keys; taking it as the last page", resource, number)
    next_cursor = body.get("next_cursor")
    if next_cursor is not None and not isinstance(next_cursor, str):
        raise ApiError("GET", ENDPOINTS[resource], 200, f"page {number} has a non-text next_cursor")
    return body["data"], next_cursor or None
