"""How Merge's Accounting API is spoken to: a Bearer API key, one linked account's token on every request,
cursor pages in the envelope `{next, previous, results}`, and the filters of an incremental scan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx

from sources.common.errors import ApiError
from sources.common.http.budget import key_digest
from sources.common.http.client import ProviderClient, RequestStats, RetryPolicy
from sources.common.http.pagination import follow_cursor
from sources.merge.settings import (
    ACCOUNT_TOKEN_HEADER,
    API_KEY_HEADER,
    ENDPOINTS,
    EXPAND,
    RATE_LIMIT,
    RATE_WINDOW_SECONDS,
)


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class MergeClient(ProviderClient):
    """One API key and one linked account: Merge counts requests per linked account, so the budget is that
    account's (keyed by a digest of its token, never the token)."""

    title = "Merge"
    api_key_header = API_KEY_HEADER
    api_key_scheme = "Bearer"
    secret_headers = (API_KEY_HEADER, ACCOUNT_TOKEN_HEADER)
    rate_limit = RATE_LIMIT
    rate_window_seconds = RATE_WINDOW_SECONDS

    def __init__(
        self,
        api_key: str,
        account_token: str,
        base_url: str,
        policy: RetryPolicy | None = None,
        stats: RequestStats | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limit: int | None = None,
        rate_window_seconds: float | None = None,
    ) -> None:
        if not account_token:
            raise ValueError("a Merge linked account has an empty token: check SOURCES__MERGE__ACCOUNTS")
        self.account_token = account_token
        self.account_digest = key_digest(account_token)
        super().__init__(api_key, base_url, policy=policy, stats=stats, transport=transport, rate_limit=rate_limit,
                         rate_window_seconds=rate_window_seconds)  # fmt: skip

    def budget_key(self, route: str) -> str:
        """Merge counts per linked account, whatever the route."""
        return f"merge {self.host} account {self.account_digest}"

    @staticmethod
    def refused_credential(response: httpx.Response) -> str | None:
        """401 refuses a credential, named in its `detail`: the account token, else the API key. A 403 does so
        only when its `detail` names one; another 403 (Merge's block of an address after too many failures, a
        permission) refuses this request, not a credential, and must not be remembered as one."""
        if response.status_code not in (401, 403):
            return None
        try:
            detail = str(response.json().get("detail", "")).lower()
        except (ValueError, AttributeError):
            detail = ""
        if "account" in detail and "token" in detail:
            return "account"
        if response.status_code == 401 or "api key" in detail or "authentication" in detail:
            return "api_key"
        return None

    def pages(
        self, resource: str, page_size: int, modified_after: datetime | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint for this account, deleted records included (`remote_was_deleted`),
        nested lists expanded (invoice lines, payment applications); with `modified_after`, only what Merge
        changed after it. Rows come as sent (repeats included: the scan drops them)."""
        params: dict[str, Any] = {"page_size": page_size, "include_deleted_data": "true"}
        if resource in EXPAND:
            params["expand"] = EXPAND[resource]
        if modified_after is not None:
            params["modified_after"] = iso_utc(modified_after)
        path = ENDPOINTS[resource]
        headers = {ACCOUNT_TOKEN_HEADER: self.account_token}

        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            asked = params if cursor is None else {**params, "cursor": cursor}  # every other parameter the same
            body = self.http.get_json(path, params=asked, headers=headers)
            if not isinstance(body, dict) or not isinstance(body.get("results"), list):
                raise ApiError("GET", path, 200, "the answer is not a page {next, previous, results}")
            next_cursor = body.get("next")
            if next_cursor is not None and not isinstance(next_cursor, str):
                raise ApiError("GET", path, 200, "the answer's `next` cursor is not text")
            return body["results"], next_cursor or None

        return follow_cursor(fetch, row_key, resource, drop_repeats=False)


def row_key(row: Any) -> str | None:
    """A row's Merge id, for de-duplication; None when it has none."""
    value = row.get("id") if isinstance(row, dict) else None
    return value if isinstance(value, str) and value else None
