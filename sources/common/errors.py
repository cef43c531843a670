"""Errors raised by the shared HTTP layer and the normalizers. None of them carries a secret: a request is
named by its method, path and query (credentials travel in headers, which are never printed), and what a
server said is masked (`sources/common/secrets.py`), since some servers echo the credentials back."""

from __future__ import annotations

from sources.common.secrets import SECRETS, printable


class ConfigurationError(ValueError):
    """A setting is missing or wrong; the message says which and how to set it."""


class ApiError(Exception):
    """A request failed for good: a 4xx, a permanent 5xx, or a retry budget used up."""

    def __init__(self, method: str, target: str, status: int | None, message: str, attempts: int = 1) -> None:
        message = printable(SECRETS.redact(message))  # a server's words: masked, and nothing a terminal runs
        self.method = method
        self.target = printable(SECRETS.redact(target))
        self.status = status
        self.message = message
        self.attempts = attempts
        where = f"{method} {self.target}"
        code = f"HTTP {status}" if status is not None else "no answer"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"{where} failed{tries}: {code}: {message}")


class CredentialsRefused(ApiError):
    """The server refused the credentials the request carried: `credential` is `api_key` or `account` (the
    linked account's token). Final: no retry can help, and the fix is a setting."""

    def __init__(self, method: str, target: str, status: int | None, message: str, credential: str) -> None:
        self.credential = credential
        super().__init__(method, target, status, message)


class Unreachable(ApiError):
    """Nothing answered at the API's root (`base_url`): no connection could be opened, try after try."""

    def __init__(self, method: str, target: str, base_url: str, detail: str, attempts: int) -> None:
        self.base_url = base_url
        super().__init__(method, target, None, f"nothing answers at {base_url} ({detail})", attempts)


class WriteRefused(ApiError):
    """The server answered a write and refused it, whatever its status said: Merge's 201 with `errors` (the
    accounting system behind it refused the record). Nothing was created; final, as a 4xx is."""


class OutcomeUnknown(ApiError):
    """A non-idempotent request (POST) may or may not have taken effect: the request left, no clear
    answer came back. Never treat this as a failure that can simply be sent again."""


class PaginationError(Exception):
    """The server's paging went wrong in a way retrying cannot fix (a cursor that repeats)."""


class RecordError(ValueError):
    """One field of one record cannot be read. The normalizer adds the record's table, id and connection."""

    def __init__(self, field: str, message: str, record_id: str | None = None) -> None:
        self.field = field
        self.message = message
        self.record_id = record_id  # set by an adapter that knew the record's id before the bad field
        super().__init__(f"field {field!r}: {message}")


class StoredRecordsUnreadable(Exception):
    """What the warehouse holds of a table could not be read back: the scan that needed it fails, rather than
    take every record for new or mark stored ones deleted on a guess."""

    def __init__(self, table: str, cause: Exception) -> None:
        self.table = table
        detail = printable(SECRETS.redact(f"{type(cause).__name__}: {cause}"))[:300]
        super().__init__(
            f"cannot read back what the warehouse holds of {table} ({detail}); the scan stops and marks nothing deleted"
        )
