"""The two locks every job uses: an operating-system file lock and a PostgreSQL advisory lock.

- `file_lock`: one load at a time per pipeline and warehouse, one push at a time per warehouse, one writer
  at a time per DuckDB file, and one dbt run at a time per work folder (`pipelines/models/dbt_runner.py`).
  It is `fcntl.flock`, released by the kernel when the holder ends, however it ends, so a killed run never
  leaves a stale lock. Written here rather than with `filelock`: the holder writes who it is (process id and
  what it does) into the file, so that whoever is refused or waits can say whom it met.
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
def file_lock(
    path: str | Path,
    what: str,
    wait: bool = False,
    wait_seconds: float | None = None,
    resource: str | None = None,
) -> Iterator[None]:
    """Hold an exclusive lock on `path` for `what`: refuse at once with `AlreadyRunning` when another holds it,
    or (`wait`) wait for it, up to `wait_seconds` (None: as long as it takes), saying once whom it waits for.
    The holder's process id and `what` are written into the file, for the message of whoever meets it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        if not _try_lock(handle):
            holder = _holder(handle)
            if not wait:
                raise AlreadyRunning(f"{holder} is running; not starting {what} beside it") from None
            log.info("%s waits for %s to finish%s", what, holder, f" with {resource}" if resource else "")
            deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
            while not _try_lock(handle):
                if deadline is not None and time.monotonic() >= deadline:
                    raise AlreadyRunning(
                        f"{_holder(handle)} has held {resource or path} for more than {wait_seconds:.0f}s; "
                        f"{what} gave up waiting"
                    ) from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\t{what}")
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_lock(handle: Any) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(handle: Any) -> str:
    """Who holds the lock, as its file says: `<what> (process <pid>)`."""
    handle.seek(0)
    pid, _, what = handle.read().strip().partition("\t")
    if not pid:
        return "another run"
    return f"{what or 'another run'} (process {pid})"


def lock_key(name: str) -> int:
    """Advisory locks are keyed by a signed 64-bit number."""
    digest = hashlib.blake2b(f"accounting-etl:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def advisory_lock(
    url: str, name: str, what: str, wait: bool = True, wait_seconds: float | None = None
) -> Iterator[Any]:
    """Hold the session advisory lock `name` on the server at `url`: wait for it (up to `wait_seconds`, None:
    as long as it takes), or refuse at once with `AlreadyRunning`; yields the psycopg2 connection that holds it
    (autocommit). Advisory locks belong to the database they are taken in."""
    import psycopg2

    connection = psycopg2.connect(url)
    try:
        connection.autocommit = True
        deadline = None if wait_seconds is None else time.monotonic() + wait_seconds
        said = False
        with connection.cursor() as cursor:
            while True:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),))
                if cursor.fetchone()[0]:
                    break
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    raise AlreadyRunning(f"{what}: another run holds the lock {name!r}; not starting beside it")
                if not said:
                    log.info("%s waits for another run holding %r", what, name)
                    said = True
                time.sleep(0.2)
        yield connection
    finally:
        connection.close()  # ends the session, and with it the lock
