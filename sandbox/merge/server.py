"""A Merge-compatible HTTP server on 127.0.0.1 (Accounting API v1, as Merge's docs and its Python SDK give it).

Reproduced: `Authorization: Bearer <API key>` and `X-Account-Token: <linked-account token>` on every request;
`GET /api/accounting/v1/{payments,invoices,tracking-categories,contacts}` (and `/{id}`) with `cursor` and
`page_size` (default 30, at most 100), the envelope `{next, previous, results}`, the filters
`modified_after` / `modified_before` (on Merge's own `modified_at`: when its copy changed), `created_after` /
`created_before`, `remote_id`, `include_deleted_data` (deleted records come with `remote_was_deleted: true`) and
`expand` (related objects are ids unless expanded: invoice `line_items`, payment `applied_to_lines`, `contact`,
`tracking_categories`); `POST /payments` and `/invoices` with Merge's idempotency keys (sandbox/merge/writes.py); a rate
limit per linked account (100 requests a minute, Merge's Launch plan), answered
as Django REST framework throttles (429, `Retry-After`); and Merge's IP block: more than 20 failing requests
(status 400 or more, 429 aside) from one address within 10 s, and the address is refused for a while.

Merge documents no rate-limit headers, so none are sent beside the 429's `Retry-After`.

Added for tests: the faults every sandbox has, the query of every list request (`GET /_sandbox/requests`), and
the linked accounts (`GET /_sandbox/accounts`).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sandbox.http import Fault, JsonHandler, SandboxState
from sandbox.merge.seed import SANDBOX_API_KEY
from sandbox.merge.store import KINDS, Store
from sandbox.merge.writes import WRITABLE, Writes

ROOT = "/api/accounting/v1"
ACCOUNT_TOKEN_HEADER = "X-Account-Token"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EXPANDABLE = {
    "payments": {"account", "accounting_period", "applied_to_lines", "company", "contact", "payment_method",
                 "tracking_categories"},
    "invoices": {"accounting_period", "applied_credit_notes", "applied_payments", "applied_vendor_credits",
                 "company", "contact", "employee", "line_items", "payment_term", "payments", "purchase_orders",
                 "sales_orders", "tracking_categories"},
    "tracking-categories": {"company"},
    "contacts": {"addresses", "phone_numbers", "company"},
}  # fmt: skip
# nested lists the server sends as ids unless they are expanded
NESTED = {"payments": ("applied_to_lines",), "invoices": ("line_items",)}


@dataclass
class Settings:
    rate_limit: int | None = 100  # requests per window per linked account; None turns it off
    rate_window_seconds: float = 60.0
    default_page_size: int = 30
    max_page_size: int = 100
    delay_seconds: float = 0.0
    ip_block_failures: int = 20  # more failing requests than this from one address within the window: blocked
    ip_block_window_seconds: float = 10.0
    ip_block_seconds: float = 60.0


class MergeSandbox(SandboxState):
    """The Merge-compatible server and its state."""

    def __init__(
        self, store: Store | None = None, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(settings or Settings(), _Handler, host, port)
        self.store = store or Store()
        self.writes = Writes(self.store)  # POST /payments, /invoices (sandbox/merge/writes.py)
        self.api_key = SANDBOX_API_KEY
        self.list_requests: list[dict[str, str]] = []
        self.failures: dict[str, deque[float]] = {}  # client address -> times of its failing answers
        self.blocked_until: dict[str, float] = {}

    @property
    def url(self) -> str:
        """The API root a user configures as the base URL (Merge's includes `/api/accounting/v1`)."""
        return self.origin + ROOT

    def accounts(self) -> dict[str, str]:
        """What a user configures as the pipeline's accounts: alias -> linked-account token."""
        return self.store.tokens()

    def reset_stats(self) -> None:
        super().reset_stats()
        with self.lock:
            self.list_requests.clear()
        self.end_blocks()

    def failed(self, address: str) -> None:
        """A failing answer to `address`: past the limit within the window, the address is blocked."""
        settings = self.settings
        now = time.monotonic()
        with self.lock:
            times = self.failures.setdefault(address, deque())
            times.append(now)
            while times and times[0] <= now - settings.ip_block_window_seconds:
                times.popleft()
            if len(times) > settings.ip_block_failures:
                self.blocked_until[address] = now + settings.ip_block_seconds

    def end_blocks(self) -> None:
        """Lift every address's block now, as its time running out would (for tests that must not wait)."""
        with self.lock:
            self.blocked_until.clear()
            self.failures.clear()

    def blocked(self, address: str) -> bool:
        with self.lock:
            return self.blocked_until.get(address, 0.0) > time.monotonic()


def encode_cursor(after: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"m": after[0], "i": after[1]}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, str] | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return str(data["m"]), str(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


class _Handler(JsonHandler):
    server_version = "MergeSandbox/1.0"
    truncated_payload: ClassVar[Any] = {"next": None, "previous": None, "results": [{"id": "x", "pad": "x" * 200}]}
    invalid_body = b'{"next": null, "results": [{"id": '

    @property
    def sandbox(self) -> MergeSandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def error_payload(self, status: int, message: str) -> Any:
        return {"detail": message}

    # Merge's limit per linked account is answered as Django REST framework throttles: 429 with the wait in
    # `Retry-After` and in words, and no X-RateLimit-* headers on any answer (Merge documents none)
    def rate_limit_headers(self, limit: int, remaining: int, reset: int) -> dict[str, str]:
        return {}

    def throttled_message(self, wait: int) -> str:
        return f"Request was throttled. Expected available in {wait} seconds."

    def send_error_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        if status >= 400 and status != 429:
            self.sandbox.failed(self.client_address[0])
        super().send_error_json(status, message, headers)

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        sb = self.sandbox
        if not path.startswith(ROOT + "/"):
            self.send_error_json(404, f"Cannot {method} {path}")
            return
        parts = path[len(ROOT) + 1 :].split("/")
        kind = parts[0]
        sb.count(f"{method} {ROOT}/{kind}" + ("/{id}" if len(parts) > 1 else ""))
        if sb.blocked(self.client_address[0]):
            super().send_error_json(403, "Your IP address has been temporarily blocked after too many failed requests.")
            return
        token = self.headers.get(ACCOUNT_TOKEN_HEADER)
        headers = self.rate_limit(f"account {token}")
        if headers is None:
            return
        alias = next((a for a, t in sb.store.aliases.items() if t == token), None)
        fault = sb.take_fault(method, path, alias)
        if fault is not None and not fault.after_write and self.fire(fault, headers):
            return
        if sb.settings.delay_seconds:
            time.sleep(sb.settings.delay_seconds)
        if self.headers.get("Authorization") != f"Bearer {sb.api_key}":
            self.send_error_json(401, "Invalid API key.", headers)
            return
        if token is None or token not in sb.store.accounts:
            self.send_error_json(401, "Invalid or missing X-Account-Token.", headers)
            return
        if kind not in KINDS or len(parts) > 2:
            self.send_error_json(404, "Not found.", headers)
        elif method == "GET" and len(parts) == 1:
            self._list(token, kind, query, headers)
        elif method == "GET":
            self._retrieve(token, kind, parts[1], query, headers)
        elif method == "POST" and kind in WRITABLE and len(parts) == 1:
            self._create(token, kind, body, headers, fault if fault is not None and fault.after_write else None)
        else:
            self.send_error_json(405, f'Method "{method}" not allowed.', headers)

    def _create(self, token: str, kind: str, body: bytes, headers: dict[str, str], late_fault: Fault | None) -> None:
        answer = self.sandbox.writes.post(token, kind, self.headers.get(IDEMPOTENCY_HEADER), body)
        if answer.status >= 400:
            self.sandbox.failed(self.client_address[0])
        elif late_fault is not None and self.fire(late_fault, headers):
            return  # written, and the client never hears it
        self.send_json(answer.status, answer.body, headers)

    def _expand(self, kind: str, query: dict[str, str]) -> set[str] | None:
        wanted = {e for e in query.get("expand", "").split(",") if e}
        return wanted if wanted <= EXPANDABLE[kind] else None

    def _list(self, token: str, kind: str, query: dict[str, str], headers: dict[str, str]) -> None:
        sb = self.sandbox
        with sb.lock:
            sb.list_requests.append({"kind": kind, "account": token, **query})
        expand = self._expand(kind, query)
        if expand is None:
            self.send_error_json(400, f"expand must be a comma-separated list of {sorted(EXPANDABLE[kind])}", headers)
            return
        try:
            size = int(query.get("page_size", sb.settings.default_page_size))
            if not 1 <= size <= sb.settings.max_page_size:
                raise ValueError
        except ValueError:
            self.send_error_json(400, f"page_size must be between 1 and {sb.settings.max_page_size}.", headers)
            return
        filters: dict[str, Any] = {"include_deleted_data": query.get("include_deleted_data", "").lower() == "true",
                                   "remote_id": query.get("remote_id")}  # fmt: skip
        for name in ("modified_after", "modified_before", "created_after", "created_before"):
            if query.get(name):
                moment = _moment(query[name])
                if moment is None:
                    self.send_error_json(400, f"{name} must be an ISO 8601 date-time.", headers)
                    return
                filters[name] = moment
        after = None
        if query.get("cursor"):
            after = decode_cursor(query["cursor"])
            if after is None:
                self.send_error_json(400, "Invalid cursor.", headers)
                return
        rows, more = sb.store.page(token, kind, after, size, filters)
        results = [self._shaped(token, kind, row, expand) for row in rows]
        next_cursor = encode_cursor((rows[-1]["modified_at"], rows[-1]["id"])) if more else None
        self.send_json(200, {"next": next_cursor, "previous": query.get("cursor"), "results": results}, headers)

    def _retrieve(self, token: str, kind: str, record_id: str, query: dict[str, str], headers: dict[str, str]) -> None:
        expand = self._expand(kind, query)
        if expand is None:
            self.send_error_json(400, "Invalid expand.", headers)
            return
        row = self.sandbox.store.get(token, kind, record_id)
        if row is None or (row.get("remote_was_deleted") and query.get("include_deleted_data") != "true"):
            self.send_error_json(404, "Not found.", headers)
            return
        self.send_json(200, self._shaped(token, kind, row, expand), headers)

    def _shaped(self, token: str, kind: str, row: dict[str, Any], expand: set[str]) -> dict[str, Any]:
        """A stored record as Merge serves it: nested lists as ids and related objects as ids, unless expanded."""
        store = self.sandbox.store
        for name in NESTED.get(kind, ()):
            if name not in expand and isinstance(row.get(name), list):
                row[name] = [item["id"] if isinstance(item, dict) else item for item in row[name]]
        if "contact" in expand and isinstance(row.get("contact"), str):
            row["contact"] = store.get(token, "contacts", row["contact"]) or row["contact"]
        if "tracking_categories" in expand and isinstance(row.get("tracking_categories"), list):
            row["tracking_categories"] = [
                store.get(token, "tracking-categories", c) or c if isinstance(c, str) else c
                for c in row["tracking_categories"]
            ]
        return row

    def own_admin(self, method: str, path: str) -> None:
        sb = self.sandbox
        if path == "/_sandbox/accounts" and method == "GET":
            self.send_json(200, {"api_key": sb.api_key, "accounts": sb.store.tokens()})
        elif path == "/_sandbox/requests" and method == "GET":
            with sb.lock:
                self.send_json(200, {"requests": list(sb.list_requests)})
        else:
            super().own_admin(method, path)


def _moment(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
