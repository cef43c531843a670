"""What every sandbox server has: injected faults, request counters, a rate limit kept as nestjs's throttler
keeps it (a sliding log per key, refused requests counted) with `X-RateLimit-*` headers, and the JSON/socket
plumbing of a stdlib request handler (a dropped connection or a half-sent body needs the raw socket, which a
framework would hide), plus the admin routes under
`/_sandbox/` (never rate limited, never faulted).

Shared by the provider sandboxes, never by the sources they serve.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit


def scaled(specs: tuple[Any, ...], scale: float) -> tuple[Any, ...]:
    """Seed specs with their record counts (`invoices`, `payments`) multiplied by `scale`, at least one each."""
    return tuple(
        replace(s, invoices=max(1, round(s.invoices * scale)), payments=max(1, round(s.payments * scale)))
        for s in specs
    )


@dataclass
class Fault:
    """One injected fault, fired on the matching requests after `skip` of them, `times` times.

    kind: "status" (answer `status` with an error body), "drop" (close the connection without an answer),
    "truncate" (announce the full body, send half, close), "invalid_json" (200 with a broken body),
    "delay" (wait `seconds`, then answer normally), "rate_limit" (429 with Retry-After `seconds`, or the
    literal `retry_after` text), "echo" (answer `status` with an error that repeats every request header,
    credentials included, as some gateways do), "huge" (200 with a JSON body of `size` bytes), "nested"
    (answer `status` with an error body nested `depth` levels deep), "headers" (answer normally, with
    `headers` added to the answer, e.g. a rate-limit reset years away), "body" (answer `status` with `body`
    as it is: empty, `[]`, `null`, ...).
    `after_write`: for POST, apply the write first and then fault (the outcome the client cannot see).
    """

    kind: str
    status: int = 500
    method: str = "GET"
    path: str = "/accounting/"
    times: int = 1
    skip: int = 0
    seconds: float = 0.0
    after_write: bool = False
    connection: str | None = None  # only requests for this connection alias
    retry_after: str | None = None
    headers: dict[str, str] | None = None
    size: int = 0
    depth: int = 0
    body: str = ""
    fired: int = 0
    seen: int = 0

    def matches(self, method: str, path: str, alias: str | None) -> bool:
        if self.connection is not None and alias != self.connection:
            return False
        return method == self.method and path.startswith(self.path) and self.fired < self.times


@dataclass
class Stats:
    requests: Counter = field(default_factory=Counter)
    throttled: int = 0
    faults_fired: int = 0
    created: Counter = field(default_factory=Counter)

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "total_requests": sum(self.requests.values()),
            "throttled": self.throttled,
            "faults_fired": self.faults_fired,
            "created": dict(self.created),
        }


class ThrottlerLimiter:
    """The limiter of nestjs's throttler 5.x, as Panora runs it: per key (the server chooses it: route handler
    and client IP, or API key), a sliding log in which every request is a hit that expires `ttl` seconds after
    it was made, refused requests included. `Reset` counts down to a marker that restarts only when a request
    finds it expired, which is not when the oldest hit expires: a client that trusts it meets 429s."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits: dict[str, deque[float]] = {}
        self.markers: dict[str, float] = {}

    def hit(self, key: str, limit: int, ttl: float) -> tuple[bool, int, int]:
        """Count a request; returns (allowed, remaining, seconds to the marker)."""
        now = time.monotonic()
        with self.lock:
            log = self.hits.setdefault(key, deque())
            while log and log[0] <= now - ttl:
                log.popleft()
            marker = self.markers.get(key)
            if marker is None or marker <= now:
                marker = self.markers[key] = now + ttl
            log.append(now)
            return len(log) <= limit, max(0, limit - len(log)), max(1, math.ceil(marker - now))

    def clear(self) -> None:
        with self.lock:
            self.hits.clear()
            self.markers.clear()


class SandboxState:
    """A sandbox server and what the shared handler needs of it: settings with `rate_limit` and
    `rate_window_seconds`, counters, faults and a lock. `start()` serves in a background thread (also as a
    context manager); `serve_forever()` blocks."""

    def __init__(self, settings: Any, handler: type[BaseHTTPRequestHandler], host: str, port: int) -> None:
        self.settings = settings
        self.stats = Stats()
        self.faults: list[Fault] = []
        self.limiter = ThrottlerLimiter()
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.sandbox = self  # type: ignore[attr-defined]

    @property
    def origin(self) -> str:
        """Scheme, host and port: where the sandbox's own routes (`/_sandbox/...`) are, whatever its API's root."""
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The API root a user configures as the base URL."""
        return self.origin

    def start(self) -> Self:
        threading.Thread(target=self.httpd.serve_forever, name=type(self).__name__, daemon=True).start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def reset_stats(self) -> None:
        with self.lock:
            self.stats = Stats()
        self.limiter.clear()

    def take_fault(self, method: str, path: str, alias: str | None) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path, alias):
                    fault.seen += 1
                    if fault.seen > fault.skip:
                        fault.fired += 1
                        self.stats.faults_fired += 1
                        return fault
        return None

    def count(self, route: str) -> None:
        with self.lock:
            self.stats.requests[route] += 1


class JsonHandler(BaseHTTPRequestHandler):
    """JSON answers, faults, the rate limit and the admin routes; a provider's handler adds its API."""

    protocol_version = "HTTP/1.1"
    # A body that breaks mid-way (`truncate`) and one that is not JSON (`invalid_json`), in the provider's shape.
    truncated_payload: ClassVar[Any] = {"data": [{"id": "x", "padding": "x" * 200}]}
    invalid_body: bytes = b'{"data": [{"id": '

    @property
    def state(self) -> SandboxState:
        return self.server.sandbox  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests and the demo read the pipeline's output, not the server's

    def error_payload(self, status: int, message: str) -> Any:
        return {"message": message}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        body = self.read_body() if method in ("POST", "DELETE") else b""
        if path.startswith("/_sandbox"):
            if not self.admin(method, path, body):
                self.own_admin(method, path)
            return
        self.route(method, path, query, body)

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        """The provider's API."""
        raise NotImplementedError

    def own_admin(self, method: str, path: str) -> None:
        """The provider's own admin routes, after the shared ones."""
        self.send_json(404, {"message": f"no admin route {method} {path}"})

    def send_json(
        self,
        status: int,
        payload: Any,
        extra_headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        truncate: bool = False,
    ) -> None:
        body = raw if raw is not None else json.dumps(payload, separators=(",", ":")).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra_headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if truncate:
                self.wfile.write(body[: max(1, len(body) // 2)])
                self.wfile.flush()
                self.drop()
                return
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def drop(self) -> None:
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def send_error_json(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        self.send_json(status, self.error_payload(status, message), headers)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def rate_limit(self, key: str) -> dict[str, str] | None:
        """Count the request under `key` (the server's choice: route and client, or API key); answers 429 itself
        and returns None when over."""
        state = self.state
        limit = state.settings.rate_limit
        if limit is None:
            return {}
        allowed, remaining, reset = state.limiter.hit(key, limit, state.settings.rate_window_seconds)
        headers = self.rate_limit_headers(limit, remaining, reset)
        if not allowed:
            with state.lock:
                state.stats.throttled += 1
            self.send_error_json(429, self.throttled_message(reset), {**headers, "Retry-After": str(reset)})
            return None
        return headers

    def rate_limit_headers(self, limit: int, remaining: int, reset: int) -> dict[str, str]:
        """The limit's headers on every answer (NestJS's throttler, as Panora's; a server may send none)."""
        return {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }

    def throttled_message(self, wait: int) -> str:
        """A 429's message, in the server framework's words."""
        return "ThrottlerException: Too Many Requests"

    def fire(self, fault: Fault, headers: dict[str, str]) -> bool:
        """Carry out a fault; True when the request was answered (or dropped) by it."""
        if fault.kind == "status":
            message = "Internal server error" if fault.status >= 500 else "Bad Request"
            self.send_error_json(fault.status, message, headers)
        elif fault.kind == "drop":
            self.drop()
        elif fault.kind == "truncate":
            self.send_json(200, self.truncated_payload, headers, truncate=True)
        elif fault.kind == "invalid_json":
            self.send_json(200, None, headers, raw=self.invalid_body)
        elif fault.kind == "rate_limit":
            with self.state.lock:
                self.state.stats.throttled += 1
            # whole seconds like the real servers, unless a test asks for a fraction to stay fast
            retry_after = fault.retry_after or (str(fault.seconds) if fault.seconds else "1")
            self.send_error_json(429, "ThrottlerException: Too Many Requests", {**headers, "Retry-After": retry_after})
        elif fault.kind == "echo":
            seen = "; ".join(f"{name}: {value}" for name, value in self.headers.items())
            self.send_error_json(fault.status, f"Gateway error. Request headers were: {seen}", headers)
        elif fault.kind == "huge":
            padding = "x" * max(0, fault.size - 40)
            self.send_json(200, None, headers, raw=b'{"data": [], "padding": "' + padding.encode() + b'"}')
        elif fault.kind == "nested":
            self.send_json(fault.status, None, headers, raw=b'{"message": ' * fault.depth + b"1" + b"}" * fault.depth)
        elif fault.kind == "body":
            self.send_json(fault.status, None, headers, raw=fault.body.encode())
        elif fault.kind == "headers":
            headers.update(fault.headers or {})
            return False
        elif fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        else:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        return True

    def admin(self, method: str, path: str, body: bytes) -> bool:
        """The shared admin routes; False when `path` is none of them (the provider's own may follow)."""
        state = self.state
        try:
            data = json.loads(body) if body else {}
        except json.JSONDecodeError:
            self.send_json(400, {"message": "admin body must be JSON"})
            return True
        if path == "/_sandbox/stats" and method == "GET":
            with state.lock:
                self.send_json(200, state.stats.snapshot())
        elif path == "/_sandbox/stats" and method == "DELETE":
            state.reset_stats()
            self.send_json(200, {"ok": True})
        elif path == "/_sandbox/settings" and method == "GET":
            self.send_json(200, asdict(state.settings))
        elif path == "/_sandbox/settings" and method == "POST":
            unknown = set(data) - set(asdict(state.settings))
            if unknown:
                self.send_json(400, {"message": f"unknown settings: {sorted(unknown)}"})
                return True
            for key, value in data.items():
                setattr(state.settings, key, value)
            state.limiter.clear()
            self.send_json(200, asdict(state.settings))
        elif path == "/_sandbox/faults" and method == "POST":
            try:
                faults = [Fault(**f) for f in (data if isinstance(data, list) else [data])]
            except TypeError as exc:
                self.send_json(400, {"message": str(exc)})
                return True
            state.inject(*faults)
            self.send_json(200, {"faults": len(state.faults)})
        elif path == "/_sandbox/faults" and method == "DELETE":
            state.clear_faults()
            self.send_json(200, {"faults": 0})
        else:
            return False
        return True
