"""The one place where credentials are masked: every secret the HTTP layer sends is registered here, and
every text that can carry one is passed through `SECRETS` before it reaches a log, a table or an error.

Some gateways echo a request's headers in their error answers, so masking cannot rely on the sources never
printing a credential: the HTTP layer masks the secrets a request carried in the answer's raw bytes before
anything parses them (`mask_bytes`), `ApiError` masks its message, and the jobs mask what they print, log
and store (`redact`). Values shorter than `MIN_SECRET_LENGTH` are not treated as secrets (masking "a"
everywhere would help nobody).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

MASK = "***"
MIN_SECRET_LENGTH = 6


class SecretRegistry:
    """The credentials of this process, and the masking of them in text and bytes."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._lock = threading.Lock()

    def add(self, values: Iterable[object]) -> None:
        new = {v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET_LENGTH}
        if new - self._secrets:
            with self._lock:
                self._secrets = self._secrets | new

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by `***` (longest first, so a secret that contains
        another is masked whole)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def describe(self, exc: BaseException, limit: int = 500) -> str:
        """An exception as one masked line: its type and message, at most `limit` characters."""
        return self.redact(f"{type(exc).__name__}: {exc}")[:limit]

    def __contains__(self, value: object) -> bool:
        return value in self._secrets


def mask_bytes(content: bytes, secrets: Iterable[str]) -> bytes:
    """`content` with each of `secrets` (as UTF-8) replaced by `***`: a server's answer before it is parsed."""
    for secret in secrets:
        raw = secret.encode()
        if raw and raw in content:
            content = content.replace(raw, MASK.encode())
    return content


SECRETS = SecretRegistry()
