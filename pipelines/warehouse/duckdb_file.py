"""A DuckDB file that readers never block: every writer works on a copy and puts it in place with one rename.

Why a copy. DuckDB lets one process write a file, and only while no other process has it open, even read-only:
an analyst's notebook holding a read-only connection (the DuckDB UI, DBeaver and dashboards do the same) would
make every scheduled load fail at its first write, and a load writing in place would make every reader fail to
open the file while it runs. DuckLake would give readers and a writer side by side, but DuckDB downloads its
extension at run time, which a machine without internet cannot. A copy renamed over the file costs one copy of
the file per write (`bench/bench_write_path.py` measures it) and gives what readers need: a reader that opened
the file keeps reading the version it opened (on POSIX an open file outlives its name), a reader that opens it
later gets the new version whole, and no reader ever sees a write half done.

The rule every writer follows (`DuckDBFile.writing`), the load, the models, push and its ledger, a cancel, and
a user's own writes through `pipelines.warehouse.writing`:

1. take the file's writer lock (`.<file>.etl/writer.lock` beside it, an OS lock the kernel releases when its
   holder ends, however it ends): one writer at a time;
2. take a shared lock on the file and keep it to the end: DuckDB then refuses every other process's read-write
   open at once, with its own "Could not set lock" error, so nothing outside the rule can commit into the file
   while its copy is made and worked on (readers, who take shared locks too, are not affected). Nothing
   committed outside the rule is therefore ever lost: it is either in the file before the copy, or refused where
   it was tried. The lock is an open file description lock (Linux), which DuckDB's own record locks conflict
   with: a record lock of this process's own would be let go by the first close of any descriptor of the file
   in this process (POSIX's rule), the copy's among them;
3. copy the file (with the WAL a crashed writer left) to `.<file>.etl/work/<file>`, and note what it was copied
   from (`work.json`);
4. the writer works on the copy (dlt, dbt, the ledger: plain DuckDB connections to the copy's path);
5. checkpoint the copy, make sure no connection of this process still holds it, fsync it, and rename it over
   the file, then let the read-only connection go.

A writer stopped at any point leaves the file as it was. Its copy is thrown away by the next writer when what it
held can be done again (a load, the models), and picked up when it holds writes that must not be lost
(`durable`: push's ledger rows say what was sent; a lost one is a payment sent twice): taken over whole when the
file has not changed since the copy was made, else its ledger tables (`keep`) are carried into a fresh copy,
row by row.

Reads that must agree with each other across several connections (the load's read-back of what is stored, in
slices) read a `snapshot`: a hard link to the file as it is (no copy); a writer replaces the file by a rename and
so never changes what the link points to.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import signal
import struct
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipelines.warehouse.locks import AlreadyRunning, file_lock

log = logging.getLogger("accounting_etl.warehouse")

# How long a job waits for another process that holds the file open for writing outside this rule (an
# analyst's read-write connection) before it gives up with exit status 4: an INSERT takes milliseconds; a tool
# that keeps a read-write connection open (DBeaver in its default mode) keeps it until it is closed.
# ACCOUNTING_ETL__WAREHOUSE_BUSY_SECONDS sets another.
BUSY_SECONDS = 30.0
# How long a writer waits for another writer of this rule (a load, a push) to finish.
WRITER_WAIT_SECONDS = 3600.0
# A test seam: `ACCOUNTING_ETL__TEST_KILL_AT=<point>` makes the process kill itself at that point of the
# write path (`copied`, `before_rename`, `renamed`), so that the tests can stop a writer exactly there.
KILL_AT_ENV = "ACCOUNTING_ETL__TEST_KILL_AT"


class WarehouseBusy(AlreadyRunning):
    """Another process holds the DuckDB file open for writing outside the writer rule."""


def configured_busy_seconds() -> float:
    value = os.environ.get("ACCOUNTING_ETL__WAREHOUSE_BUSY_SECONDS")
    try:
        return float(value) if value else BUSY_SECONDS
    except ValueError:
        return BUSY_SECONDS


def _kill_point(point: str) -> None:
    if os.environ.get(KILL_AT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class FileState:
    """What a file was: enough to tell that nobody wrote it since (a commit changes its WAL or the file)."""

    device: int
    inode: int
    size: int
    mtime_ns: int
    wal: tuple[int, int] | None  # (size, mtime_ns) of its WAL, if it had one

    @classmethod
    def of(cls, path: Path) -> FileState | None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        try:
            wal_st = os.stat(_wal(path))
            wal = (wal_st.st_size, wal_st.st_mtime_ns)
        except FileNotFoundError:
            wal = None
        return cls(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, wal)

    def same_file(self, other: FileState | None) -> bool:
        """The same file, unwritten since; a WAL gone is a WAL the writer's own rename removed."""
        if other is None:
            return False
        mine = (self.device, self.inode, self.size, self.mtime_ns)
        return mine == (other.device, other.inode, other.size, other.mtime_ns) and other.wal in (None, self.wal)


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _held_in_this_process(path: Path) -> bool:
    """Whether a DuckDB database in this process still holds `path` (its lock). DuckDB locks a file with a
    POSIX record lock, which another lock of the same process never conflicts with; an open file description
    lock (Linux) does, so asking for one tells. On systems without them, False."""
    ofd_setlk = getattr(fcntl, "F_OFD_SETLK", None)
    if ofd_setlk is None:
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        return not _ofd_lock(fd, fcntl.F_WRLCK)
    finally:
        os.close(fd)  # the open file description lock ends with its descriptor


def _ofd_lock(fd: int, kind: int) -> bool:
    """Take an open file description lock of `kind` (F_RDLCK, F_WRLCK) on the whole file, without waiting;
    False when a conflicting lock (DuckDB's included) is held."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for these locks), padded to its C size
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DuckDBFile:
    """One DuckDB warehouse file and its private folder beside it (`.<file>.etl/`): the writer's lock, the
    copy a writer works on, snapshots of readers, and the other locks of the jobs that write it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.home = self.path.parent / f".{self.path.name}.etl"
        self.work_dir = self.home / "work"
        self.work_path = self.work_dir / self.path.name  # the same name: DuckDB names the catalog after the file
        self.manifest = self.home / "work.json"

    def __repr__(self) -> str:
        return f"DuckDBFile({str(self.path)!r})"

    def lock_path(self, name: str) -> Path:
        return self.home / f"{name}.lock"

    # -- reading -------------------------------------------------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[Path | None]:
        """A path to the file as it is now, unchanged by writers while held (a hard link: no copy); None when
        there is no file yet. Raises `WarehouseBusy` when another process holds the file for writing."""
        if not self.path.exists():
            yield None
            return
        if _wal(self.path).exists():
            # a writer outside the rule is at work, or crashed: its WAL pairs with this very file, and a link
            # to the file alone would lose what it holds. A write that changes nothing puts it into the file.
            with self.writing("checkpointing the WAL another process left"):
                pass
        folder = self.home / "read" / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        folder.mkdir(parents=True)
        self._remove_dead_snapshots()
        link = folder / self.path.name
        try:
            os.link(self.path, link)
            self._open_read_only(link, configured_busy_seconds()).close()  # held elsewhere for writing: say so now
            yield link
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _remove_dead_snapshots(self) -> None:
        """Snapshots of processes that ended without removing theirs: each keeps a replaced file's disk."""
        for folder in (self.home / "read").glob("*-*"):
            pid = folder.name.split("-", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)

    def _open_read_only(self, path: Path, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        """A read-only connection to `path` (the file or a link to it), waiting up to `wait_seconds` while
        another process holds it for writing; then `WarehouseBusy`, naming that process."""
        deadline = time.monotonic() + wait_seconds
        said = False
        while True:
            try:
                return duckdb.connect(str(path), read_only=True)
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() >= deadline:
                    raise WarehouseBusy(self._busy_message(exc)) from None
                if not said:
                    log.warning("%s; waiting up to %.0fs", self._busy_message(exc), wait_seconds)
                    said = True
                time.sleep(0.25)

    def _busy_message(self, exc: Exception) -> str:
        held = str(exc).split("Conflicting lock is held in", 1)
        holder = held[1].split(". However", 1)[0].strip() if len(held) > 1 else "another process"
        return (
            f"the warehouse {self.path} is open for writing in {holder}: close that connection (or open it "
            "read-only), or write through accounting-etl (see the README, 'Writing to the warehouse')"
        )

    # -- writing -------------------------------------------------------------------------------------------
    @contextmanager
    def writing(
        self,
        what: str,
        durable: bool = False,
        keep: Sequence[str] = (),
        wait_seconds: float = WRITER_WAIT_SECONDS,
        busy_seconds: float | None = None,
        timings: dict[str, float] | None = None,
    ) -> Iterator[Path]:
        """Hold the writer's turn on the file for `what` and yield the path of a copy to write; the copy is put
        in place when the block ends, also when it ends with an error (what was committed stays committed, as
        it would in the file itself). `durable`: a stop half-way must not lose what was written (push's
        ledger); `keep`: the tables (`schema.table`) holding what must not be lost, carried over row by row
        should the file have changed before the next writer comes. `timings` gets the seconds spent waiting for
        the turn (`wait`), copying (`copy`) and putting the copy in place (`publish`)."""
        timings = timings if timings is not None else {}
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        with (
            file_lock(self.lock_path("writer"), what, wait=True, wait_seconds=wait_seconds, resource=str(self.path)),
            self._outside_writers_refused(configured_busy_seconds() if busy_seconds is None else busy_seconds),
        ):
            copying = time.monotonic()
            timings["wait"] = round(copying - started, 3)
            self._prepare_copy(what, durable, list(keep))
            timings["copy"] = round(time.monotonic() - copying, 3)
            failed = False
            try:
                yield self.work_path
            except BaseException:
                failed = True
                raise
            finally:
                publishing = time.monotonic()
                try:
                    self._publish()
                    timings["publish"] = round(time.monotonic() - publishing, 3)
                except Exception:
                    if not failed:
                        raise
                    log.exception("could not put the copy of %s in place after an error", self.path)

    @contextmanager
    def _outside_writers_refused(self, busy_seconds: float) -> Iterator[None]:
        """A read-only connection to the file for the whole write: every other process's read-write open is
        refused while it is held. Waits `busy_seconds` for a process that holds it for writing right now."""
        if not self.path.exists():
            yield
            return
        if getattr(fcntl, "F_OFD_SETLK", None) is None:  # no such locks here: DuckDB's own, less strictly kept
            hold = self._open_read_only(self.path, busy_seconds)
            try:
                yield
            finally:
                hold.close()
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            deadline = time.monotonic() + busy_seconds
            said = False
            while not _ofd_lock(fd, fcntl.F_RDLCK):
                if time.monotonic() >= deadline or not said:
                    try:  # DuckDB's own message names the process that holds the file
                        duckdb.connect(str(self.path), read_only=True).close()
                        message = f"the warehouse {self.path} is held for writing by another process"
                    except duckdb.IOException as exc:
                        message = self._busy_message(exc)
                    if time.monotonic() >= deadline:
                        raise WarehouseBusy(message)
                    log.warning("%s; waiting up to %.0fs", message, busy_seconds)
                    said = True
                time.sleep(0.25)
            yield
        finally:
            os.close(fd)  # and with it the lock

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.manifest.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _write_manifest(self, content: dict[str, Any]) -> None:
        temporary = self.manifest.with_suffix(".tmp")
        temporary.write_text(json.dumps(content))
        os.replace(temporary, self.manifest)

    def _prepare_copy(self, what: str, durable: bool, keep: list[str]) -> None:
        """Make the copy to write: take over the one a stopped writer left when it holds durable writes, else
        copy the file afresh."""
        leftover = self._read_manifest()
        current = FileState.of(self.path)
        if leftover is not None and leftover.get("copied") and leftover.get("durable") and self.work_path.exists():
            source = leftover.get("source")
            copied_from = (
                FileState(**{**source, "wal": tuple(source["wal"]) if source["wal"] else None}) if source else None
            )
            unchanged = (copied_from is None and current is None) or (
                copied_from is not None and copied_from.same_file(current)
            )
            kept = sorted(set(keep) | set(leftover.get("keep", [])))
            if unchanged:
                log.warning(
                    "taking over the copy of %s that a stopped %s left: it holds writes that must not be lost",
                    self.path,
                    leftover.get("what", "writer"),
                )
                self._write_manifest({**leftover, "what": what, "keep": kept, "durable": True})
                return
            aside = self.home / f"stopped-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}.duckdb"
            os.replace(self.work_path, aside)
            with suppress(FileNotFoundError):
                os.replace(_wal(self.work_path), _wal(aside))
            self._fresh_copy(what, True, kept, current)
            self._carry_over(aside, leftover.get("keep", []))
            return
        if leftover is not None or self.work_dir.exists():
            log.info("removing the copy of %s a stopped %s left", self.path, (leftover or {}).get("what", "writer"))
        self._fresh_copy(what, durable, keep, current)

    def _fresh_copy(self, what: str, durable: bool, keep: list[str], current: FileState | None) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        with suppress(FileNotFoundError):
            self.manifest.unlink()
        self.work_dir.mkdir(parents=True)
        if current is not None:
            shutil.copyfile(self.path, self.work_path)
            if current.wal is not None:
                shutil.copyfile(_wal(self.path), _wal(self.work_path))
            if durable:  # the copy holds the writes that must survive: on disk before anything is written to it
                _fsync(self.work_path)
        source = None if current is None else {**current.__dict__, "wal": list(current.wal) if current.wal else None}
        self._write_manifest(
            {"what": what, "pid": os.getpid(), "durable": durable, "keep": keep, "source": source, "copied": True}
        )
        _kill_point("copied")

    def _carry_over(self, stopped: Path, tables: Sequence[str]) -> None:
        """The file changed after a durable writer stopped: carry its kept tables' rows into the fresh copy
        (by primary key, the stopped writer's row winning; tables without a key by whole rows). The stopped
        copy stays beside the file, named in the log."""
        log.error(
            "%s changed after a writer stopped half-way; its ledger rows are carried over from %s (kept there)",
            self.path,
            stopped,
        )
        with duckdb.connect(str(self.work_path)) as con:
            con.execute(f"ATTACH '{_sql_text(str(stopped))}' AS stopped (READ_ONLY)")
            for qualified in tables:
                schema, table = qualified.split(".", 1)
                there = con.execute(
                    "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'stopped' AND schema_name = ? "
                    "AND table_name = ?",
                    [schema, table],
                ).fetchone()[0]
                if not there:
                    continue
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
                con.execute(
                    f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" AS FROM stopped."{schema}"."{table}" LIMIT 0'
                )
                keys = [
                    row[0]
                    for row in con.execute(
                        "SELECT unnest(constraint_column_names) FROM duckdb_constraints() WHERE database_name = "
                        "current_database() AND schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                        [schema, table],
                    ).fetchall()
                ]
                mine, theirs = f'"{schema}"."{table}"', f'stopped."{schema}"."{table}"'
                if keys:
                    match = " AND ".join(f'm."{k}" = s."{k}"' for k in keys)
                    con.execute(f"DELETE FROM {mine} m WHERE EXISTS (SELECT 1 FROM {theirs} s WHERE {match})")
                    con.execute(f"INSERT INTO {mine} BY NAME FROM {theirs}")
                else:
                    con.execute(f"INSERT INTO {mine} BY NAME (FROM {theirs} EXCEPT FROM {mine})")
            con.execute("DETACH stopped")

    def _publish(self) -> None:
        """Checkpoint the copy and rename it over the file."""
        if not self.work_path.exists():  # nothing wrote it, and there was no file: an empty warehouse
            duckdb.connect(str(self.work_path)).close()
        with duckdb.connect(str(self.work_path)) as con:
            con.execute("CHECKPOINT")
        if _held_in_this_process(self.work_path) or _wal(self.work_path).exists():
            raise RuntimeError(
                f"the copy of {self.path} is still open in this process, so it cannot be put in place; the file "
                "is unchanged and the next write starts again"
            )
        _fsync(self.work_path)
        _kill_point("before_rename")
        with suppress(FileNotFoundError):
            # the WAL of a writer that crashed outside the rule: its content is in the copy (it was copied along
            # and replayed), and DuckDB would refuse to open the new file beside it
            _wal(self.path).unlink()
        os.replace(self.work_path, self.path)
        _kill_point("renamed")
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        self.manifest.unlink()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _sql_text(value: str) -> str:
    return value.replace("'", "''")
