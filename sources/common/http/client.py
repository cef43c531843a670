"""The one HTTP client every provider source uses: retries with backoff and jitter, 429 handling, pacing,
and limits on what a server can make a run do.

httpx does the HTTP (connection pooling, timeouts, transports); this module adds what httpx leaves to
its users: which failures are worth another try, how long to wait, the pacing from rate-limit headers,
and what a hostile answer is refused. Its rules:

- 5xx, timeouts, dropped connections and truncated or invalid JSON bodies are retried with exponential
  backoff and jitter, up to `RetryPolicy.max_attempts` tries; then `ApiError`.
- 429 waits for `Retry-After` (else the window's reset) and is retried, up to `max_throttle_waits` times.
  A wait the server asks for (`Retry-After`, `X-RateLimit-Reset`) longer than `max_wait_seconds` ends the
  request with an `ApiError` instead of holding the run (and its locks) for hours; a `Retry-After` that is
  neither a number nor an HTTP date is ignored (the backoff applies), a negative one is 0, `inf` is too long.
- An answer larger than `max_body_bytes` is refused while it streams in (never read whole into memory),
  and a body nested deeper than the JSON parser goes ends the request: neither is retried.
- Other 4xx are final: `ApiError` with the server's message.
- A provider can name 5xx answers that are final (`permanent_error`), e.g. Panora's 500 for a bad key, and
  the answers that refuse its credentials (`refused_credential`): `CredentialsRefused`, final, saying which.
- A refused credential is not sent to that root again for a minute: every later request of the process that
  carries it (an API key: any request; an account token: that account's) fails at once with the same
  `CredentialsRefused`, so a wrong key costs one failing request, not one per account and resource.
- Nothing answering at the API's root (every try refused or timed out on connecting) is `Unreachable`, naming
  the root; the client's later requests to it fail at once for a minute, so that a wrong base URL costs one
  request's retries, not every request's.
- A non-idempotent request (POST) is only resent when it certainly never reached the server (the
  connection could not be opened, or a 429). Any other doubt raises `OutcomeUnknown`.

Secrets: the values of the `secret_headers` (API keys, connection tokens) are registered in
`sources/common/secrets.py` and masked in every answer's raw bytes before anything reads them, so a
gateway that echoes them back cannot carry them into an error, a log, a table or dlt's state. Errors and
logs name a request by method, path and query only.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar

import dlt
import httpx
import orjson

from sources.common.errors import ApiError, CredentialsRefused, OutcomeUnknown, Unreachable
from sources.common.http import outcomes
from sources.common.http.budget import HitLog, RateBudget, SqliteHitLog, WaitTooLong, key_digest, shared_log
from sources.common.http.outcomes import Decision, Verdict
from sources.common.secrets import SECRETS, mask_bytes, printable

log = logging.getLogger("accounting_etl.http")

# Failures that mean the request never left this machine: safe to resend even for a POST.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
MESSAGE_CHARS = 500  # the most of a server's error message an error carries
UNREACHABLE_SECONDS = 60.0  # how long a root that never answered is given up on, for this process's requests
_UNREACHABLE: dict[str, tuple[float, str]] = {}  # base URL -> (when it was given up on, why)
# A credential a server refused is not offered to it again for this long, by any client of this process: a
# refusal is final, and asking again only adds failures (Merge blocks an address after 20 in 10 s).
REFUSED_SECONDS = 60.0
# "<base URL> <credential digest>" -> (when, status, message, credential): what the refusal said, no request
_REFUSED: dict[str, tuple[float, int | None, str, str]] = {}


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one request tries, and how much of a server's answer it accepts.

    Args:
        max_attempts: tries for one request on 5xx, network faults and broken bodies (1 = no retry).
        backoff_base: seconds of the first backoff; doubles each try.
        backoff_cap: the longest single backoff in seconds.
        max_throttle_waits: 429 answers tolerated for one request before giving up.
        timeout: seconds for connect, read and write of one try.
        max_wait_seconds: the longest wait a server may ask for (`Retry-After`, a rate-limit reset).
        max_body_bytes: the largest answer read; a larger one ends the request.
    """

    max_attempts: int = 6
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    max_throttle_waits: int = 30
    timeout: float = 60.0
    max_wait_seconds: float = 300.0
    max_body_bytes: int = 256 * 1024 * 1024

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


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a 429 asks for: `Retry-After` (seconds or an HTTP date), else `X-RateLimit-Reset`. None
    when neither says anything usable; `inf` for a wait without end; never negative."""
    for name in ("retry-after", "x-ratelimit-reset"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            try:
                moment = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError, OverflowError):
                continue
            if moment is None:
                continue
            if moment.tzinfo is None:
                continue  # an HTTP date is always GMT; one without a zone is not one
            seconds = moment.timestamp() - time.time()
        if math.isnan(seconds):
            continue
        return max(0.0, seconds)
    return None


class _Refused(Exception):
    """An answer this client will not read (too large, nested too deeply): the request ends, no retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def decode_json(content: bytes) -> Any:
    """A JSON body. orjson first (fast); what it refuses but the standard parser takes (a number beyond a
    double such as 1e400, NaN, an unpaired surrogate) is parsed by the standard library, so that one odd
    value is judged by the record's readers instead of making the whole page unreadable. A body nested
    deeper than a parser goes raises `_Refused`; any other broken body `ValueError`."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError as fast_error:
        try:
            return json.loads(content)
        except RecursionError:
            raise _Refused("the answer is nested deeper than the JSON parser allows") from None
        except (ValueError, UnicodeDecodeError):
            if "recursion" in str(fast_error).lower():
                raise _Refused("the answer is nested deeper than the JSON parser allows") from None
            raise fast_error from None


def _masked_after_parsing(body: Any, raw: bytes, secrets: tuple[str, ...]) -> Any:
    """A body whose raw bytes hold JSON escapes (`\\u0073...`) may spell a secret no mask of the bytes saw:
    written out again without escapes, masked, and read back. Only such bodies pay for it."""
    if not raw or b"\\u" not in raw or not secrets:
        return body if raw else None
    try:
        plain = orjson.dumps(body)
    except (TypeError, orjson.JSONEncodeError):  # a value orjson cannot write (a huge integer): left as read
        return body
    masked = mask_bytes(plain, secrets)
    return body if masked == plain else orjson.loads(masked)


def server_message(response: httpx.Response) -> str:
    """The `message` of an error body, else the start of the body; never more than `MESSAGE_CHARS`."""
    try:
        body = decode_json(response.content)
        if isinstance(body, dict) and "message" in body:
            message = body["message"]
            text = "; ".join(map(str, message)) if isinstance(message, list) else str(message)
        else:
            text = json.dumps(body)
    except Exception:  # not JSON, nested too deeply to read or to print: the body's start is the message
        text = response.content[:MESSAGE_CHARS].decode("utf-8", "replace") or response.reason_phrase
    return printable(text[:MESSAGE_CHARS])


def encode_json(value: Any) -> bytes:
    """A request body as JSON, with `Decimal`s written as exact JSON numbers (money must never pass
    through a float). Written by hand because neither the standard library nor orjson writes a Decimal
    as a number."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} cannot be written as a JSON number")
        return format(value, "f").encode()
    if isinstance(value, Mapping):
        items = (encode_json(str(k)) + b":" + encode_json(v) for k, v in value.items())
        return b"{" + b",".join(items) + b"}"
    if isinstance(value, list | tuple):
        return b"[" + b",".join(encode_json(v) for v in value) + b"]"
    return json.dumps(value, allow_nan=False).encode()


class ApiClient:
    """A JSON-over-HTTP client with the rules above.

    Args:
        base_url: the API's root, e.g. `https://api.panora.dev`.
        headers: sent with every request (credentials go here, never into URLs).
        policy: retry, timeout and size settings.
        budget: the rate budget requests draw on (`sources/common/http/budget.py`); without one, requests are
            paced only by what the server's headers and 429s say, in this process alone.
        stats: counters to add to; one is made when not given.
        permanent_error: tells whether a 5xx answer is final (retrying cannot help).
        refused_credential: tells whether an answer refuses the request's credentials, and which
            (`api_key` or `account`), else None.
        transport: an httpx transport, for tests that need one precise fault.
        secret_headers: names of the headers whose values are credentials (here or per request): they are
            registered as secrets and masked in every answer before it is read.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        policy: RetryPolicy | None = None,
        budget: RateBudget | None = None,
        stats: RequestStats | None = None,
        permanent_error: Callable[[httpx.Response], bool] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        refused_credential: Callable[[httpx.Response], str | None] | None = None,
        rng: random.Random | None = None,
        secret_headers: Collection[str] = (),
    ) -> None:
        self.policy = policy or RetryPolicy()
        self.budget = budget or RateBudget(SqliteHitLog(":memory:"), lambda route: route, 2**31, 60.0)
        self.stats = stats or RequestStats()
        self.permanent_error = permanent_error or (lambda response: False)
        self.refused_credential = refused_credential or (lambda response: None)
        self.base_url = str(base_url)
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.secret_headers = frozenset(name.lower() for name in secret_headers)
        self._secrets = self._secret_values(headers)
        SECRETS.add(self._secrets)
        self._http = httpx.Client(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(self.policy.timeout),
            transport=transport,
            follow_redirects=False,
        )

    def _refusal_key(self, credentials: tuple[str, ...]) -> str:
        """What a refusal of these credentials is remembered under: the root and a digest, never the values."""
        return f"{self.base_url} {key_digest(chr(31).join(sorted(credentials)))}"

    def _secret_values(self, headers: Mapping[str, str] | None) -> tuple[str, ...]:
        return tuple(v for k, v in (headers or {}).items() if k.lower() in self.secret_headers and v)

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

    def _read(self, request: httpx.Request, secrets: tuple[str, ...]) -> httpx.Response:
        """Send `request` and read its answer up to `max_body_bytes`, with the secrets masked. Raises
        `_Refused` for a larger answer (announced or streamed), httpx's errors for network faults."""
        limit = self.policy.max_body_bytes
        response = self._http.send(request, stream=True)
        try:
            announced = response.headers.get("content-length", "")
            if announced.isdigit() and int(announced) > limit:
                raise _Refused(
                    f"the answer announces {int(announced):,} bytes, more than max_body_bytes={limit:,}",
                    response.status_code,
                )
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _Refused(f"the answer is larger than max_body_bytes={limit:,}", response.status_code)
                chunks.append(chunk)
        finally:
            response.close()
        content = mask_bytes(b"".join(chunks), secrets)
        return httpx.Response(response.status_code, headers=response.headers, content=content, request=request)

    def _try(
        self, request: httpx.Request, target: str, secrets: tuple[str, ...], route: str, idempotent: bool
    ) -> tuple[Decision, httpx.Response | None, Any]:
        """One try: what it came to (`outcomes`), the answer if one came, and its decoded body when it is OK."""
        response: httpx.Response | None = None
        try:
            try:
                response = self._read(request, secrets)
            finally:  # every slot is given back, answered or not
                self.budget.release(route, response.headers if response is not None else None)
        except _Refused as exc:
            return outcomes.unreadable(str(exc), idempotent, exc.status), None, None
        except NOT_SENT_ERRORS as exc:
            return outcomes.not_sent(f"connection failed ({type(exc).__name__})"), None, None
        except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            return outcomes.no_answer(f"{type(exc).__name__}: {exc or 'no detail'}", idempotent), None, None
        self.stats.add(bytes_received=len(response.content))
        status = response.status_code
        refused = None if 200 <= status < 300 or status == 429 else self.refused_credential(response)
        if refused is not None:
            raise CredentialsRefused(request.method, target, status, server_message(response), refused)
        message = "" if 200 <= status < 300 else server_message(response)
        decision = outcomes.answer(
            status, message, idempotent, permanent=status >= 500 and self.permanent_error(response)
        )
        if decision.verdict is not Verdict.OK:
            return decision, response, None
        try:
            return decision, response, _masked_after_parsing(decode_json(response.content), response.content, secrets)
        except _Refused as exc:
            return outcomes.unreadable(str(exc), idempotent, status), response, None
        except ValueError as exc:  # also a truncated body the server did not announce
            return outcomes.broken_body(f"invalid JSON body ({exc})", idempotent, status), response, None

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
        secrets = self._secrets + self._secret_values(headers)
        SECRETS.add(secrets)
        content = None if json_body is None else encode_json(json_body)
        if content is not None:
            headers = {**(headers or {}), "content-type": "application/json"}
        request = self._http.build_request(method, path, params=params, content=content, headers=headers)
        target = request.url.raw_path.decode("ascii", "replace")
        route = f"{method} {path}"  # what a rate budget is keyed by (servers count per route handler)
        attempts = 0
        throttles = 0
        connect_failures = 0
        given_up = _UNREACHABLE.get(self.base_url)
        if given_up is not None and time.monotonic() - given_up[0] < UNREACHABLE_SECONDS:
            raise Unreachable(method, target, self.base_url, given_up[1], 0)
        refusal_keys = {"api_key": self._refusal_key(self._secrets), "account": self._refusal_key(secrets)}
        for key in refusal_keys.values():
            refused = _REFUSED.get(key)
            if refused is not None and time.monotonic() - refused[0] < REFUSED_SECONDS:
                _, status, message, credential = refused
                raise CredentialsRefused(method, target, status, f"not sent: {message}", credential)
        while True:
            attempts += 1
            try:
                waited = self.budget.acquire(self.policy.max_wait_seconds, route)
            except WaitTooLong as exc:
                raise ApiError(method, target, None, f"not sent: {exc}", attempts) from None
            self.stats.add(requests=1, paced_seconds=waited)
            try:
                decision, response, body = self._try(request, target, secrets, route, idempotent)
            except CredentialsRefused as exc:
                key = refusal_keys.get(exc.credential, refusal_keys["account"])
                _REFUSED[key] = (time.monotonic(), exc.status, exc.message, exc.credential)
                raise
            if decision.verdict is Verdict.OK:
                return body
            if decision.verdict is Verdict.UNKNOWN:
                raise OutcomeUnknown(method, target, decision.status, decision.problem, attempts)
            if decision.verdict is Verdict.FINAL:
                raise ApiError(method, target, decision.status, decision.problem, attempts)
            if decision.verdict is Verdict.THROTTLED:
                assert response is not None
                throttles += 1
                wait = retry_after_seconds(response.headers)
                if wait is not None and wait > self.policy.max_wait_seconds:
                    raise ApiError(
                        method,
                        target,
                        decision.status,
                        f"the server asks to wait {wait:.0f}s before the next request, longer than "
                        f"max_wait_seconds={self.policy.max_wait_seconds:.0f}: {decision.problem}",
                        attempts,
                    )
                wait = wait or self.policy.backoff(throttles, self.rng)
                self.budget.throttled(route, wait)
                self.stats.add(throttled=1)
                if throttles > self.policy.max_throttle_waits:
                    raise ApiError(method, target, decision.status, decision.problem, attempts)
                log.info("%s %s: 429, waiting %.1fs as the server asks", method, target, wait)
                attempts -= 1  # a 429 is not a failed try; it has its own budget
                continue
            problem, status = decision.problem, decision.status
            connect_failures += not decision.sent
            if attempts >= self.policy.max_attempts:
                if connect_failures == attempts:
                    detail = f"{problem}, {attempts} tries"
                    _UNREACHABLE[self.base_url] = (time.monotonic(), detail)
                    raise Unreachable(method, target, self.base_url, detail, attempts)
                raise ApiError(method, target, status, f"gave up: {problem}", attempts)
            delay = self.policy.backoff(attempts, self.rng)
            self.stats.add(retries=1)
            # a server that is not there yet is said once, at the end, with its address (`Unreachable`)
            log.log(
                logging.DEBUG if connect_failures == attempts else logging.WARNING,
                "%s %s: %s (try %d of %d), retrying in %.2fs",
                method,
                target,
                problem,
                attempts,
                self.policy.max_attempts,
                delay,
            )
            self.sleep(delay)


class ProviderClient:
    """The part every provider's client shares: one API key header on every request, the headers whose values
    are credentials, the shared HTTP layer (`self.http`), and a rate budget keyed as the provider counts
    (`budget_key`), shared with every other worker through `budget_log` (default: `shared_log()`). A
    provider's client adds its paths and paging."""

    title: ClassVar[str]  # the provider as people write it, for messages
    api_key_header: ClassVar[str]
    api_key_scheme: ClassVar[str] = ""  # e.g. "Bearer": the header then carries "<scheme> <key>"
    secret_headers: ClassVar[tuple[str, ...]]
    rate_limit: ClassVar[int]  # requests per window and key, as the provider documents it
    rate_window_seconds: ClassVar[float]

    def __init__(
        self,
        api_key: str,
        base_url: str,
        policy: RetryPolicy | None = None,
        stats: RequestStats | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limit: int | None = None,
        rate_window_seconds: float | None = None,
        budget_log: HitLog | None = None,
    ) -> None:
        if not api_key:
            raise ValueError(f"the {self.title} API key is empty: set SOURCES__{self.title.upper()}__API_KEY")
        self.host = httpx.URL(base_url).netloc.decode("ascii", "replace")
        self.api_key_digest = key_digest(api_key)
        # SOURCES__<NAME>__RATE_LIMIT and __RATE_WINDOW_SECONDS override the documented values
        name = self.title.lower()
        limit = rate_limit or dlt.config.get(f"sources.{name}.rate_limit") or self.rate_limit
        window = (
            rate_window_seconds or dlt.config.get(f"sources.{name}.rate_window_seconds") or self.rate_window_seconds
        )
        budget = RateBudget(budget_log or shared_log(), self.budget_key, int(limit), float(window))
        credential = f"{self.api_key_scheme} {api_key}" if self.api_key_scheme else api_key
        SECRETS.add((api_key,))  # the key alone too: a server may echo it without its scheme
        self.http = ApiClient(
            base_url,
            {self.api_key_header: credential, "accept": "application/json"},
            policy=policy,
            budget=budget,
            stats=stats,
            permanent_error=self.is_permanent_error,
            refused_credential=self.refused_credential,
            transport=transport,
            secret_headers=self.secret_headers,
        )

    def budget_key(self, route: str) -> str:
        """The key the server counts a request under; by default, per route handler and client (Panora's)."""
        return f"{self.title.lower()} {self.host} {route}"

    @staticmethod
    def is_permanent_error(response: httpx.Response) -> bool:
        """Whether a 5xx answer is final (retrying cannot help); none is, unless the provider says so."""
        return False

    @staticmethod
    def refused_credential(response: httpx.Response) -> str | None:
        """Which credential an answer refuses (`api_key` or `account`), or None: by default a 401 or a 403
        refuses the API key; a provider that says it otherwise overrides this."""
        return "api_key" if response.status_code in (401, 403) else None

    def close(self) -> None:
        self.http.close()
