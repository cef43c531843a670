"""Logging for the jobs: progress on stderr, quiet libraries, and secrets masked in every line.

The sources never put a credential into a message; the mask is the second line of defence, for a
message some library builds from a value it was handed."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

MASK = "***"


class SecretMask(logging.Filter):
    """Replaces every known secret value in a log record's final message."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str]) -> None:
        self.secrets.update(v for v in values if isinstance(v, str) and len(v) >= 6)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        return True


SECRETS = SecretMask()


def setup_logging(verbose: bool = False) -> None:
    """Our loggers at INFO (DEBUG when verbose) on stderr; dlt and httpx only when they warn."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(SECRETS)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_accounting_etl", False):
            root.removeHandler(old)
    handler._accounting_etl = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("accounting_etl").setLevel(logging.DEBUG if verbose else logging.INFO)
    for noisy in ("httpx", "httpcore", "dlt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # dlt's own logger writes through its own handler; mask there too
    for dlt_handler in logging.getLogger("dlt").handlers:
        dlt_handler.addFilter(SECRETS)
