"""The two locks every job uses: an operating-system file lock and a PostgreSQL advisory lock.

- `file_lock`: one run at a time per pipeline (load) or warehouse (push), and one writer at a time per DuckDB
  file. It is `fcntl.flock`, released by the kernel when the holder ends, however it ends, so a killed run
  never leaves a stale lock. Written here rather than with `filelock`: that library waits by polling, while a
  load waiting for the warehouse should sleep in the kernel until the lock is free; and the holder's process
  id is written into the file, for the message of whoever is refused.
- `advisory_lock`: the same in a PostgreSQL server, so it works across machines; it lives in the session and
  ends with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("accounting_etl.locks")


class AlreadyRunning(RuntimeError):
    """Another run holds the lock; the message says which run and which process."""


@contextmanager
def file_lock(path: str | Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `path` for `what`: wait for it (logged when it is held elsewhere), or refuse
    at once with `AlreadyRunning`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                handle.seek(0)
                holder = handle.read().strip() or "unknown"
                raise AlreadyRunning(
                    f"{what} is already running (process {holder}); not starting a second one"
                ) from None
            started = time.monotonic()
            log.info("waiting for %s", what)
            fcntl.flock(handle, fcntl.LOCK_EX)
            log.info("holding %s after %.1fs of waiting", what, time.monotonic() - started)
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def lock_key(name: str) -> int:
    """Advisory locks are keyed by a signed 64-bit number."""
    digest = hashlib.blake2b(f"accounting-etl:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def advisory_lock(url: str, name: str, what: str, wait: bool = True) -> Iterator[Any]:
    """Hold the session advisory lock `name` on the server at `url` (waiting for it, or refusing with
    `AlreadyRunning`); yields the psycopg2 connection that holds it (autocommit)."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s)", (lock_key(name),))
            else:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
                if not cursor.fetchone()[0]:
                    raise AlreadyRunning(f"{what} is already running")
        yield connection
    finally:
        connection.close()  # ends the session, and with it the lock
