"""Logging for the jobs: progress on stderr, quiet libraries, and secrets masked in every line.

The HTTP layer masks what servers echo and registers every credential it sends
(`sources/common/secrets.py`); the filter here is the same mask applied to each log line, for a message
some library builds from a value it was handed."""

from __future__ import annotations

import logging
import sys
from typing import Any

from sources.common.secrets import SECRETS, printable


class SecretMask(logging.Filter):
    """Replaces every registered secret in a log record's final message, and shows escaped what a terminal
    would act on (escape sequences a server's text may carry)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = printable(SECRETS.redact(message), keep_newlines=True)
        if redacted != message:
            record.msg, record.args = redacted, ()
        if record.exc_info and record.exc_info[1] is not None:
            # a traceback is formatted from the exception itself: format it now, masked
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info, record.exc_text = None, printable(SECRETS.redact(text), keep_newlines=True)
        return True


MASK_FILTER = SecretMask()


_CONSOLE: Any = None


def is_terminal() -> bool:
    """Whether a person watches standard error (live progress and colour), rather than cron, CI or a pipe."""
    return sys.stderr.isatty()


def console() -> Any:
    """The one rich console on standard error: live progress and, on a terminal, the log lines share it."""
    global _CONSOLE
    if _CONSOLE is None:
        from rich.console import Console

        _CONSOLE = Console(stderr=True)
    return _CONSOLE


def setup_logging(verbose: bool = False) -> None:
    """Our loggers at INFO (DEBUG when verbose) on stderr; dlt and httpx only when they warn. On a terminal
    the lines go through the rich console that draws the live progress; elsewhere they are plain text."""
    handler: logging.Handler
    if is_terminal():
        from rich.logging import RichHandler

        handler = RichHandler(console=console(), show_path=False, markup=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s", "%H:%M:%S"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%H:%M:%S"))
    handler.addFilter(MASK_FILTER)
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
        dlt_handler.addFilter(MASK_FILTER)
