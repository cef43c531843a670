"""One run at a time: an exclusive, non-blocking file lock per pipeline (load) or warehouse (push).

Two loads of the same pipeline at once would share dlt's local state and packages; two pushes would both
read the same queue. The lock is the operating system's (`fcntl.flock`), so it is released when the
process ends, however it ends: a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another process holds the lock; the message says which run and which process."""


@contextmanager
def exclusive(lock_file: str | Path, what: str) -> Iterator[None]:
    path = Path(lock_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise AlreadyRunning(f"{what} is already running (process {holder}); not starting a second one") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
