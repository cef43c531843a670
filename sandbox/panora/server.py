"""A Panora-compatible HTTP server on 127.0.0.1, with the real server's behaviour (as read from its code and
measured against it).

What it reproduces: the `{previous_cursor, next_cursor, data}` envelope (`prev_cursor` switchable), a raw
UUID `next_cursor` while it expects base64 cursors back (400 otherwise), every page after the first
starting with the previous page's last row, money fields equal to 0 dropped from the JSON, error bodies
`{statusCode, timestamp, path, message}` with the real codes (401 without a key, 500 for an unknown key,
token or id), an arbitrary connection's data for a request without a connection token, and the rate limit
per route handler and client IP (a sliding log in which refused requests count) with `X-RateLimit-*` headers
and `Retry-After` on 429.

What it adds for tests: switchable settings, injected faults (status codes, dropped connections,
truncated or invalid bodies, delays, 429s, faults after a POST was applied), request counters, and an
admin API under `/_sandbox/` (never rate limited, never faulted).

Built on the standard library's threading HTTP server: faults such as a connection dropped mid-body
need the raw socket, which a framework would hide.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from sandbox.http import Fault, JsonHandler, SandboxState
from sandbox.panora.seed import SANDBOX_API_KEY, seed_connections
from sandbox.panora.store import KINDS, Connection, Store, UnknownRecord

MONEY_FIELDS = frozenset(
    {
        "total_amount",
        "balance",
        "sub_total",
        "total_tax_amount",
        "total_discount",
        "applied_amount",
        "unit_price",
        "quantity",
    }
)
WRITABLE_KINDS = ("payments", "invoices")


@dataclass
class Settings:
    """Behaviour switches; the defaults are the real server's."""

    cursor_key: str = "previous_cursor"  # the spec says "prev_cursor"
    repeat_boundary_row: bool = True
    drop_zero_amounts: bool = True
    rate_limit: int | None = 100  # requests per window, route handler and client IP; None turns it off
    rate_window_seconds: float = 60.0
    delay_seconds: float = 0.0  # added to every API answer
    default_limit: int = 50


class PanoraSandbox(SandboxState):
    """The Panora-compatible server and its state."""

    def __init__(
        self,
        store: Store | None = None,
        settings: Settings | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(settings or Settings(), _Handler, host, port)
        self.store = store or Store(seed_connections())
        self.api_key = SANDBOX_API_KEY

    def accounts(self) -> dict[str, str]:
        """What a user configures as the pipeline's connections: alias -> connection token."""
        return self.store.tokens()


def error_body(status: int, path: str, message: str) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return {"statusCode": status, "timestamp": stamp, "path": path, "message": message}


def drop_zero_money(record: dict[str, Any]) -> dict[str, Any]:
    """The real server leaves a money field out of the JSON when it is 0, also inside line items."""
    out = {k: v for k, v in record.items() if not (k in MONEY_FIELDS and _is_zero(v))}
    if isinstance(out.get("line_items"), list):
        out["line_items"] = [
            {k: v for k, v in li.items() if not (k in MONEY_FIELDS and _is_zero(v))} if isinstance(li, dict) else li
            for li in out["line_items"]
        ]
    return out


def _is_zero(value: Any) -> bool:
    """A zero amount (not `False`, which Python also calls equal to 0)."""
    return type(value) in (int, float) and value == 0


def remote_data_for(conn: Connection, record: dict[str, Any]) -> dict[str, Any]:
    """A plausible raw provider payload, as `remote_data=true` adds."""
    return {
        "provider": conn.provider,
        "Id": record.get("remote_id"),
        "SyncToken": "0",
        "MetaData": {"LastUpdatedTime": record.get("remote_updated_at")},
    }


class _Handler(JsonHandler):
    server_version = "PanoraSandbox/1.0"
    truncated_payload: ClassVar[Any] = {
        "previous_cursor": None,
        "next_cursor": None,
        "data": [{"id": str(uuid.uuid4()), "padding": "x" * 200}],
    }
    invalid_body = b'{"previous_cursor": null, "next_cursor": "abc", "data": [{"id": '

    @property
    def sandbox(self) -> PanoraSandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def error_payload(self, status: int, message: str) -> Any:
        return error_body(status, self.path.split("?")[0], message)

    # -- routing ---------------------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        if path == "/health":
            self.send_json(200, {"status": "ok"})
            return
        sb = self.sandbox
        route = f"{method} {self._route_name(path)}"
        sb.count(route)
        limit_headers = self.rate_limit(f"{route} {self.client_address[0]}")  # per route handler and client IP
        if limit_headers is None:
            return
        token = self.headers.get("x-connection-token")
        conn = sb.store.by_token(token) if token else None
        fault = sb.take_fault(method, path, conn.alias if conn else None)
        if fault is not None and not fault.after_write and self.fire(fault, limit_headers):
            return
        if sb.settings.delay_seconds:
            time.sleep(sb.settings.delay_seconds)
        self._api(method, path, query, body, limit_headers, fault)

    @staticmethod
    def _route_name(path: str) -> str:
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "accounting":
            return f"/accounting/{parts[1]}/{{id}}"
        return path

    def _api(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        body: bytes,
        headers: dict[str, str],
        late_fault: Fault | None,
    ) -> None:
        sb = self.sandbox
        if not self.headers.get("x-api-key"):
            self.send_error_json(401, "Unauthorized", headers)
            return
        if self.headers.get("x-api-key") != sb.api_key:
            self.send_error_json(500, "ReferenceError: API Key not found.", headers)
            return
        if path == "/connections" and method == "GET":
            self.send_json(
                200,
                [
                    {
                        "id_connection": c.token[:8],
                        "provider_slug": c.provider,
                        "vertical": "accounting",
                        "status": "valid",
                    }
                    for c in sb.store.connections.values()
                ],
                headers,
            )
            return
        parts = path.strip("/").split("/")
        if len(parts) not in (2, 3) or parts[0] != "accounting" or parts[1] not in KINDS:
            self.send_error_json(404, f"Cannot {method} {path}", headers)
            return
        token = self.headers.get("x-connection-token")
        if token:
            conn = sb.store.by_token(token)
            if conn is None:
                self.send_error_json(500, "ReferenceError: Connection not found for this connection token.", headers)
                return
        else:
            # The real server answers with some connection's data: clients must never rely on this.
            conn = next(iter(sb.store.connections.values()))
        kind = parts[1]
        if method == "GET" and len(parts) == 2:
            self._list(conn, kind, query, headers)
        elif method == "GET":
            self._get(conn, kind, parts[2], query, headers)
        elif method == "POST" and len(parts) == 2 and kind in WRITABLE_KINDS:
            self._create(conn, kind, body, headers, late_fault)
        else:
            self.send_error_json(404, f"Cannot {method} {path}", headers)

    def _render(self, conn: Connection, record: dict[str, Any], remote_data: bool) -> dict[str, Any]:
        record = drop_zero_money(record) if self.sandbox.settings.drop_zero_amounts else dict(record)
        if remote_data:
            record["remote_data"] = remote_data_for(conn, record)
        return record

    def _list(self, conn: Connection, kind: str, query: dict[str, str], headers: dict[str, str]) -> None:
        settings = self.sandbox.settings
        try:
            limit = int(query.get("limit", settings.default_limit))
            if limit < 1:
                raise ValueError
        except ValueError:
            self.send_error_json(400, "Bad Request", headers)
            return
        cursor_id = None
        if query.get("cursor"):
            cursor_id = _decode_cursor(query["cursor"])
            if cursor_id is None:
                self.send_error_json(400, "Bad Request", headers)
                return
        try:
            rows, more = self.sandbox.store.page(conn, kind, cursor_id, limit)
        except UnknownRecord:
            self.send_error_json(400, "The provided cursor does not exist!", headers)
            return
        if cursor_id is not None and not settings.repeat_boundary_row and rows and rows[0]["id"] == cursor_id:
            rows, more = self.sandbox.store.page(conn, kind, cursor_id, limit + 1)
            rows = rows[1:]
        next_cursor = rows[-1]["id"] if more and rows else None
        remote = query.get("remote_data", "").lower() == "true"
        payload = {
            settings.cursor_key: cursor_id,
            "next_cursor": next_cursor,
            "data": [self._render(conn, r, remote) for r in rows],
        }
        self.send_json(200, payload, headers)

    def _get(self, conn: Connection, kind: str, record_id: str, query: dict[str, str], headers: dict[str, str]) -> None:
        try:
            record = self.sandbox.store.get(conn, kind, record_id)
        except UnknownRecord:
            # The real server answers 500, not 404, for an id it does not know.
            self.send_error_json(500, "TypeError: Cannot read properties of null (reading 'id')", headers)
            return
        self.send_json(200, self._render(conn, record, query.get("remote_data", "").lower() == "true"), headers)

    def _create(
        self, conn: Connection, kind: str, body: bytes, headers: dict[str, str], late_fault: Fault | None
    ) -> None:
        try:
            payload = json.loads(body or b"null")
        except json.JSONDecodeError:
            self.send_error_json(400, "Bad Request", headers)
            return
        problem = _validate_input(kind, payload)
        if problem:
            self.send_json(400, {**error_body(400, self.path, "Bad Request"), "message": [problem]}, headers)
            return
        record = self.sandbox.store.create_from_input(conn, kind, payload)
        with self.sandbox.lock:
            self.sandbox.stats.created[kind] += 1
        if late_fault is not None and self.fire(late_fault, headers):
            return
        self.send_json(201, self._render(conn, record, False), headers)

    # -- admin -----------------------------------------------------------------------------------------
    def own_admin(self, method: str, path: str) -> None:
        if path == "/_sandbox/connections" and method == "GET":
            self.send_json(200, {"api_key": self.sandbox.api_key, "connections": self.sandbox.store.tokens()})
        else:
            super().own_admin(method, path)


def _decode_cursor(cursor: str) -> str | None:
    """The server base64-decodes the cursor it receives; a raw UUID does not survive that."""
    try:
        decoded = base64.b64decode(cursor.encode(), validate=True).decode()
        return str(uuid.UUID(decoded))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _validate_input(kind: str, payload: Any) -> str | None:
    """The server's DTO validation, reduced to what makes it answer 400."""
    if not isinstance(payload, dict):
        return "body must be an object"
    for money in ("total_amount",):
        if money in payload and payload[money] is not None and not isinstance(payload[money], int | float):
            return f"{money} must be a number"
    if kind == "payments" and payload.get("currency") is not None and not isinstance(payload["currency"], str):
        return "currency must be a string"
    for key in ("line_items", "tracking_categories"):
        if key in payload and not isinstance(payload[key], list):
            return f"{key} must be an array"
    return None
