"""The one place where credentials are masked, and where text from servers is made safe to print.

Every secret the HTTP layer sends is registered here, and every text that can carry one is passed through
`SECRETS` before it reaches a log, a table or an error. Some gateways echo a request's headers in their error
answers, so masking cannot rely on the sources never printing a credential: the HTTP layer masks the secrets a
request carried in the answer's raw bytes before anything parses them (`mask_bytes`), `ApiError` masks its
message, and the jobs mask what they print, log and store (`redact`).

A secret is masked as it is written and as a server may write it back: in another case, JSON-escaped (`\\/`,
`\\uXXXX`) and percent-encoded. Values shorter than `MIN_SECRET_LENGTH` are not masked (masking "a" everywhere
would help nobody): such a credential is said once, so that nobody believes it is.

`printable` neutralizes what a terminal would act on (escape sequences that clear the screen, colour a fake
"all loaded" line, hide text or make links; other control and format characters) in text that came from a
server or a warehouse: they are shown escaped (`\\x1b`), never sent to the terminal as they came.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_LENGTH = 6

log = logging.getLogger("accounting_etl.secrets")


def _variants(secret: str) -> set[str]:
    """How a server may write a secret back: as it is, JSON-escaped (with `/` escaped or not, non-ASCII as
    `\\uXXXX`), percent-encoded. Case is dealt with by matching without it; raw bytes are matched without
    regard to ASCII case only, so the secret's wholly upper- and lowercase forms are variants too (a letter
    beyond ASCII changes its bytes with its case)."""
    out: set[str] = set()
    for form in {secret, secret.upper(), secret.lower()}:
        escaped = json.dumps(form)[1:-1]
        out |= {
            form,
            escaped,
            escaped.replace("/", "\\/"),
            json.dumps(form, ensure_ascii=False)[1:-1],
            quote(form, safe=""),
            quote_plus(form, safe=""),
        }
    return out


class _Masker:
    """Every way a set of secrets may be written, found without regard to case. Most text holds none: a search
    of the lowercased text for each lowercased form (about a millisecond for a 0.5 MB page) comes first, and
    only a hit pays for the regular expression (fifteen times as long)."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = sorted({w for s in secrets if s for w in _variants(s)}, key=len, reverse=True)
        self.lowered = [w.lower() for w in forms]
        self.lowered_bytes = [w.encode().lower() for w in forms]  # bytes lower only ASCII letters
        self.pattern = re.compile("|".join(map(re.escape, forms)), re.IGNORECASE) if forms else None
        self.bytes_pattern = (
            re.compile(b"|".join(re.escape(w.encode()) for w in forms), re.IGNORECASE) if forms else None
        )

    def text(self, text: str) -> str:
        if self.pattern is None:
            return text
        lowered = text.lower()
        if not any(w in lowered for w in self.lowered):
            return text
        return self.pattern.sub(MASK, text)

    def bytes(self, content: bytes) -> bytes:
        if self.bytes_pattern is None:
            return content
        lowered = content.lower()
        if not any(w in lowered for w in self.lowered_bytes):
            return content
        return self.bytes_pattern.sub(MASK.encode(), content)


class SecretRegistry:
    """The credentials of this process, and the masking of them in text and bytes."""

    def __init__(self) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._masker = _Masker(())
        self._short_said = False
        self._lock = threading.Lock()

    def add(self, values: Iterable[object]) -> None:
        texts = [v for v in values if isinstance(v, str) and v]
        if any(len(v) < MIN_SECRET_LENGTH for v in texts) and not self._short_said:
            self._short_said = True
            log.warning(
                "a credential shorter than %d characters is not masked in output (too short to tell from other "
                "text): use a longer one, or keep this run's output private",
                MIN_SECRET_LENGTH,
            )
        new = {v for v in texts if len(v) >= MIN_SECRET_LENGTH}
        if new - self._secrets:
            with self._lock:
                self._secrets = self._secrets | new
                self._masker = _Masker(self._secrets)

    def redact(self, text: str) -> str:
        """`text` with every registered secret replaced by `***`, in any of the ways it may be written (longest
        first, so that a secret that contains another is masked whole)."""
        return self._masker.text(text)

    def describe(self, exc: BaseException, limit: int = 500) -> str:
        """An exception as one masked, printable line: its type and message, at most `limit` characters."""
        return printable(self.redact(f"{type(exc).__name__}: {exc}"))[:limit]

    def __contains__(self, value: object) -> bool:
        return value in self._secrets


@functools.lru_cache(maxsize=256)
def _masker(secrets: tuple[str, ...]) -> _Masker:
    return _Masker(secrets)


def mask_bytes(content: bytes, secrets: Iterable[str]) -> bytes:
    """`content` with each of `secrets` replaced by `***`, in any of the ways it may be written: a server's
    answer before it is parsed."""
    return _masker(tuple(sorted(set(secrets)))).bytes(content)


_NEUTRAL_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` with every control, format, separator and private character shown escaped (`\\x1b`,
    `\\u202e`): nothing in it acts on a terminal. Plain text passes unchanged; `keep_newlines` leaves line
    breaks (a traceback in a log) as they are."""
    if text.isprintable():
        return text
    out = []
    for char in text:
        if char == " " or (keep_newlines and char == "\n") or unicodedata.category(char) not in _NEUTRAL_CATEGORIES:
            out.append(char)
        else:
            code = ord(char)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out)


SECRETS = SecretRegistry()
