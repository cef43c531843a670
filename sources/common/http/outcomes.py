"""What one try of a request came to, decided in one place: a pure classification of an answer or an
exception into what the client does next.

- `OK`: a 2xx answer whose body was read.
- `RETRY`: worth another try (5xx, a timeout, a dropped connection, a broken body), with backoff.
- `THROTTLED`: a 429; the client waits (the server's `Retry-After`, else a backoff) on a budget of its own.
- `FINAL`: no try can change it (a 4xx, an answer too large to read, a permanent server error).
- `UNKNOWN`: a write may have happened: the request was sent and no clear answer came back. Retrying could
  create a record twice, so the caller (push) looks the record up instead.

The one rule that used to repeat through the request loop: a try that failed after the request was sent is
`RETRY` when the request is idempotent and `UNKNOWN` when it is not. A request never sent (the connection
failed) is `RETRY` either way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Verdict(enum.Enum):
    OK = "ok"
    RETRY = "retry"
    THROTTLED = "throttled"
    FINAL = "final"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    problem: str = ""  # what went wrong, for the retry log and the error
    status: int | None = None
    sent: bool = True  # False: the connection failed before the request went out


def _after_sending(problem: str, idempotent: bool, status: int | None = None, unknown: str | None = None) -> Decision:
    """A try that failed once the request was out: another try, or (a write) an outcome nobody knows.
    `unknown` is what the error then says, where it differs from the retry log's `problem`."""
    if idempotent:
        return Decision(Verdict.RETRY, problem, status)
    return Decision(Verdict.UNKNOWN, unknown if unknown is not None else problem, status)


def not_sent(problem: str) -> Decision:
    """The connection failed before the request went out: safe to try again, for any method."""
    return Decision(Verdict.RETRY, problem, sent=False)


def no_answer(problem: str, idempotent: bool) -> Decision:
    """Sent, and no answer came (a timeout, a connection dropped mid-answer)."""
    return _after_sending(problem, idempotent, unknown=f"no answer ({problem})")


def unreadable(problem: str, idempotent: bool, status: int | None = None) -> Decision:
    """An answer this client will not read (too large, nested too deeply): no try can change it, but a write
    may have happened."""
    return Decision(Verdict.FINAL if idempotent else Verdict.UNKNOWN, problem, status)


def broken_body(problem: str, idempotent: bool, status: int) -> Decision:
    """A 2xx answer whose body is not the JSON it should be (also one cut short)."""
    return _after_sending(problem, idempotent, status)


def answer(status: int, message: str, idempotent: bool, permanent: bool = False) -> Decision:
    """An answer's status (its body not yet read): `permanent` says a 5xx is one retrying cannot fix (the
    provider's own list)."""
    if 200 <= status < 300:
        return Decision(Verdict.OK, status=status)
    if status == 429:
        return Decision(Verdict.THROTTLED, message, status)
    if status >= 500 and not permanent:
        return _after_sending(f"HTTP {status}: {message}", idempotent, status, unknown=message)
    return Decision(Verdict.FINAL, message, status)
