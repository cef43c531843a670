"""The exit statuses every command ends with, in one place (`pipelines/cli.py` maps errors to them)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    # Done, but something needs a look: a connection's scan failed (the rest loaded), a model failed, push rows
    # were rejected or are unknown, data is stale, nothing answered at a base URL.
    NEEDS_A_LOOK = 1
    BAD_INPUT = 2  # a setting that is missing or malformed, refused credentials, an unreadable CSV
    FAILED = 3  # the job itself failed
    BUSY = 4  # another run holds the lock, or another process holds the DuckDB file open for writing
