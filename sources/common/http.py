"""The one HTTP client every provider source uses: retries with backoff and jitter, 429 handling, pacing.

httpx does the HTTP (connection pooling, timeouts, transports); this module adds what httpx leaves to
its users: which failures are worth another try, how long to wait, and the pacing from rate-limit
headers. Its rules:

- 5xx, timeouts, dropped connections and truncated or invalid JSON bodies are retried with exponential
  backoff and jitter, up to `RetryPolicy.max_attempts` tries; then `ApiError`.
- 429 waits for `Retry-After` (else the window's reset) and is retried, up to `max_throttle_waits` times.
- Other 4xx are final: `ApiError` with the server's message.
- A provider can name 5xx answers that are final (`permanent_error`), e.g. Panora's 500 for a bad key.
- A non-idempotent request (POST) is only resent when it certainly never reached the server (the
  connection could not be opened, or a 429). Any other doubt raises `OutcomeUnknown`.

Errors and logs name a request by method, path and query only; headers (where the credentials are) are
never printed.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from sources.common.errors import ApiError, OutcomeUnknown
from sources.common.ratelimit import RateLimitPacer

log = logging.getLogger("accounting_etl.http")

# Failures that mean the request never left this machine: safe to resend even for a POST.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one request tries.

    Args:
        max_attempts: tries for one request on 5xx, network faults and broken bodies (1 = no retry).
        backoff_base: seconds of the first backoff; doubles each try.
        backoff_cap: the longest single backoff in seconds.
        max_throttle_waits: 429 answers tolerated for one request before giving up.
        timeout: seconds for connect, read and write of one try.
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_throttle_waits: int = 30
    timeout: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random, so retries spread out."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


@dataclass
class RequestStats:
    """Counters for a run summary; thread-safe."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    paced_seconds: float = 0.0
    bytes_received: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **deltas: float) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return {
                "requests": self.requests,
                "retries": self.retries,
                "throttled": self.throttled,
                "paced_seconds": round(self.paced_seconds, 3),
                "bytes_received": self.bytes_received,
            }


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        value = headers.get("x-ratelimit-reset")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value)
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def server_message(response: httpx.Response) -> str:
    """The `message` of an error body, else the start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict) and "message" in body:
        message = body["message"]
        return "; ".join(map(str, message)) if isinstance(message, list) else str(message)
    return json.dumps(body)[:300]


class ApiClient:
    """A JSON-over-HTTP client with the retry rules above.

    Args:
        base_url: the API's root, e.g. `https://api.panora.dev`.
        headers: sent with every request (credentials go here, never into URLs).
        policy: retry and timeout settings.
        pacer: shared rate-limit pacer; one is made when not given.
        stats: counters to add to; one is made when not given.
        permanent_error: tells whether a 5xx answer is final (retrying cannot help).
        transport: an httpx transport, for tests that need one precise fault.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy | None = None,
        pacer: RateLimitPacer | None = None,
        stats: RequestStats | None = None,
        permanent_error: Callable[[httpx.Response], bool] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.pacer = pacer or RateLimitPacer()
        self.stats = stats or RequestStats()
        self.permanent_error = permanent_error or (lambda response: False)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._http = httpx.Client(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(self.policy.timeout),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get_json(
        self, path: str, params: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None
    ) -> Any:
        return self.request_json("GET", path, params=params, headers=headers)

    def request_json(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one request with retries; returns the decoded JSON body of a 2xx answer."""
        idempotent = method in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS") if idempotent is None else idempotent
        request = self._http.build_request(method, path, params=params, json=json_body, headers=headers)
        target = request.url.raw_path.decode("ascii", "replace")
        attempts = 0
        throttles = 0
        while True:
            attempts += 1
            waited = self.pacer.acquire()
            self.stats.add(requests=1, paced_seconds=waited)
            problem: str
            status: int | None = None
            response: httpx.Response | None = None
            try:
                try:
                    response = self._http.send(request)
                    content = response.read()
                finally:  # every slot is given back, answered or not
                    self.pacer.release(response.headers if response is not None else None)
            except NOT_SENT_ERRORS as exc:
                problem = f"connection failed ({type(exc).__name__})"
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem = f"{type(exc).__name__}: {exc or 'no detail'}"
                if not idempotent:
                    raise OutcomeUnknown(method, target, None, f"no answer ({problem})", attempts) from exc
            else:
                self.stats.add(bytes_received=len(content))
                status = response.status_code
                if status == 429:
                    throttles += 1
                    wait = _retry_after_seconds(response.headers) or self.policy.backoff(throttles, self.rng)
                    self.pacer.throttled(wait)
                    self.stats.add(throttled=1)
                    if throttles > self.policy.max_throttle_waits:
                        raise ApiError(method, target, status, server_message(response), attempts)
                    log.info("%s %s: 429, waiting %.1fs as the server asks", method, target, wait)
                    attempts -= 1  # a 429 is not a failed try; it has its own budget
                    continue
                if 200 <= status < 300:
                    try:
                        return orjson.loads(content) if content else None
                    except orjson.JSONDecodeError as exc:  # also a truncated body the server did not announce
                        problem = f"invalid JSON body ({exc})"
                        if not idempotent:
                            raise OutcomeUnknown(method, target, status, problem, attempts) from exc
                elif status >= 500 and not self.permanent_error(response):
                    problem = f"HTTP {status}: {server_message(response)}"
                    if not idempotent:
                        raise OutcomeUnknown(method, target, status, server_message(response), attempts)
                else:
                    raise ApiError(method, target, status, server_message(response), attempts)
            if attempts >= self.policy.max_attempts:
                raise ApiError(method, target, status, f"gave up: {problem}", attempts)
            delay = self.policy.backoff(attempts, self.rng)
            self.stats.add(retries=1)
            log.warning(
                "%s %s: %s (try %d of %d), retrying in %.2fs",
                method,
                target,
                problem,
                attempts,
                self.policy.max_attempts,
                delay,
            )
            self.sleep(delay)
