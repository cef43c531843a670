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
   from (`work.json`, written and synced before the copy is used);
4. the writer works on the copy (dlt, dbt, the ledger: plain DuckDB connections to the copy's path);
5. checkpoint the copy, make sure no connection of this process still holds it, fsync it, and rename it over
   the file, then let the lock go. A writer can instead throw its copy away (`Turn.discard`: a load whose load
   step failed), unless the copy holds writes that must not be lost.

A writer stopped at any point leaves the file as it was. Its copy is thrown away by the next writer when what it
held can be done again (a load, the models), and kept when it holds writes that must not be lost (`durable`:
push's ledger rows say what was sent; a lost one is a payment sent twice): taken over whole when the file has
not changed since the copy was made; else moved aside whole (`stopped-*/`, its WAL with it) and its `keep`
tables carried into every fresh copy, in one transaction that records it in the copy itself
(`_accounting_etl.carried`), until a copy holding it is in place. A carry stopped half-way is done again; one
done is never done twice.

Reads that must agree with each other across several connections (the load's read-back of what is stored, in
slices) read a `snapshot`: a hard link to the file as it is (no copy), held with a shared lock like a writer's,
so that neither a writer of the rule (it replaces the file by a rename) nor one outside it (refused) changes
what the link points to while it is read.
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
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from pipelines.settings import DEFAULT_BUSY_SECONDS
from pipelines.warehouse.locks import AlreadyRunning, file_lock

log = logging.getLogger("accounting_etl.warehouse")

# How long a job waits for another process that holds the file open for writing outside this rule (an
# analyst's read-write connection) before it gives up with exit status 4: an INSERT takes milliseconds; a tool
# that keeps a read-write connection open (DBeaver in its default mode) keeps it until it is closed.
# ACCOUNTING_ETL__WAREHOUSE_BUSY_SECONDS sets another.
BUSY_SECONDS = DEFAULT_BUSY_SECONDS
# How long a writer waits for another writer of this rule (a load, a push) to finish.
WRITER_WAIT_SECONDS = 3600.0
# A test seam: `ACCOUNTING_ETL__TEST_KILL_AT=<point>` makes the process kill itself at that point of the
# write path (`copied`, `carried`, `before_rename`, `renamed`), so that the tests can stop a writer exactly there.
KILL_AT_ENV = "ACCOUNTING_ETL__TEST_KILL_AT"
CARRIED_TABLE = "_accounting_etl.carried"  # in the warehouse: which stopped copies a file holds the rows of

# A table to carry from a stopped copy: `schema.table`, or (`schema.table`, a condition on its rows in which
# `stopped` names the stopped copy's catalog).
Keep = str | tuple[str, str | None]


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

    @classmethod
    def from_json(cls, value: dict[str, Any] | None) -> FileState | None:
        if value is None:
            return None
        return cls(**{**value, "wal": tuple(value["wal"]) if value.get("wal") else None})

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "wal": list(self.wal) if self.wal else None}

    def same_file(self, other: FileState | None) -> bool:
        """The same file, unwritten since; a WAL gone is a WAL the writer's own rename moved away."""
        if other is None:
            return False
        mine = (self.device, self.inode, self.size, self.mtime_ns)
        return mine == (other.device, other.inode, other.size, other.mtime_ns) and other.wal in (None, self.wal)


@dataclass
class Turn:
    """One writer's turn: the copy to write (`path`), and whether to throw it away at the end."""

    path: Path
    discarded: bool = False

    def discard(self) -> None:
        """Throw the copy away at the end instead of putting it in place (unless it holds writes that must not
        be lost: then it is put in place all the same)."""
        self.discarded = True


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, text: str) -> None:
    """Write `path` whole or not at all, on disk before this returns (a temporary file renamed, both synced)."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync(path.parent)


def _ofd_lock(fd: int, kind: int) -> bool:
    """Take an open file description lock of `kind` (F_RDLCK, F_WRLCK) on the whole file, without waiting;
    False when a conflicting lock (DuckDB's included, also one of this process) is held."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for these locks), padded to its C size
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, request)  # type: ignore[attr-defined]
    except OSError:
        return False
    return True


def _has_ofd_locks() -> bool:
    return getattr(fcntl, "F_OFD_SETLK", None) is not None


def _held_in_this_process(path: Path) -> bool:
    """Whether a DuckDB database (of this process or another) still holds `path`. DuckDB locks a file with a
    POSIX record lock, which another lock of the same process never conflicts with; an open file description
    lock (Linux) does, so asking for one tells. On systems without them, False."""
    if not _has_ofd_locks() or not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        return not _ofd_lock(fd, fcntl.F_WRLCK)
    finally:
        os.close(fd)  # the open file description lock ends with its descriptor


def _sql_text(value: str) -> str:
    return value.replace("'", "''")


class DuckDBFile:
    """One DuckDB warehouse file and its private folder beside it (`.<file>.etl/`): the writer's lock, the
    copy a writer works on, stopped copies to carry over, snapshots of readers, and the other locks of the jobs
    that write it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.home = self.path.parent / f".{self.path.name}.etl"
        # one path for every turn's copy: dbt's parse of the models is kept for the profile (and so the path) it
        # was made for. DuckDB's instance cache hands out an instance by path, so a turn refuses to start while
        # an instance of this process still holds the copy before it (`_prepare_copy`).
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
        """A path to the file as it is now, unchanged while held (a hard link: no copy, and a shared lock that
        keeps writers outside the rule out); None when there is no file yet. Raises `WarehouseBusy` when
        another process holds the file for writing."""
        if not self.path.exists():
            yield None
            return
        if _wal(self.path).exists():
            # a writer outside the rule is at work, or crashed: its WAL pairs with this very file, and a link
            # to the file alone would lose what it holds. A write that changes nothing puts it into the file.
            with self.writing("checkpointing the WAL another process left"):
                pass
        folder = self.home / "read" / uuid.uuid4().hex[:16]
        folder.mkdir(parents=True)
        alive = open(folder / ".alive", "w")  # held while the snapshot is: a dead owner's can be removed
        fcntl.flock(alive, fcntl.LOCK_EX)
        self._remove_dead_snapshots()
        link = folder / self.path.name
        try:
            os.link(self.path, link)
            with self._shared_lock(link, configured_busy_seconds()):
                yield link
        finally:
            alive.close()
            shutil.rmtree(folder, ignore_errors=True)

    def _remove_dead_snapshots(self) -> None:
        """Snapshots whose owner ended without removing them (each keeps a replaced file's disk): their
        `.alive` lock is free. A lock, not a process id, so that owners in other PID namespaces count."""
        for marker in (self.home / "read").glob("*/.alive"):
            with suppress(OSError):
                if time.time() - marker.stat().st_mtime < 60:  # one just made, maybe not yet locked
                    continue
            with suppress(OSError), open(marker, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                shutil.rmtree(marker.parent, ignore_errors=True)

    @contextmanager
    def _shared_lock(self, path: Path, busy_seconds: float) -> Iterator[None]:
        """A shared lock on `path` (the file or a link to it) for the block: every other process's read-write
        open is refused while it is held. Waits `busy_seconds` for a process that holds it for writing now,
        then `WarehouseBusy`, naming that process."""
        if not _has_ofd_locks():  # no such locks here: DuckDB's own, let go by any close in this process
            hold = self._open_read_only(path, busy_seconds)
            try:
                yield
            finally:
                hold.close()
            return
        fd = os.open(path, os.O_RDONLY)
        try:
            deadline = time.monotonic() + busy_seconds
            said = False
            while not _ofd_lock(fd, fcntl.F_RDLCK):
                if time.monotonic() >= deadline or not said:
                    message = self._holder_message(path)
                    if time.monotonic() >= deadline:
                        raise WarehouseBusy(message)
                    log.warning("%s; waiting up to %.0fs", message, busy_seconds)
                    said = True
                time.sleep(0.25)
            yield
        finally:
            os.close(fd)  # and with it the lock

    def _holder_message(self, path: Path) -> str:
        try:  # DuckDB's own message names the process that holds the file
            duckdb.connect(str(path), read_only=True).close()
        except duckdb.IOException as exc:
            return self._busy_message(exc)
        return f"the warehouse {self.path} is held for writing by another process"

    def _open_read_only(self, path: Path, wait_seconds: float) -> duckdb.DuckDBPyConnection:
        """A read-only connection to `path`, waiting up to `wait_seconds` while another process holds it for
        writing; then `WarehouseBusy`, naming that process."""
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
            "read-only), or write through accounting-etl (README: 'Readers, writers and where state lives')"
        )

    # -- writing -------------------------------------------------------------------------------------------
    @contextmanager
    def writing(
        self,
        what: str,
        durable: bool = False,
        keep: Sequence[Keep] = (),
        wait_seconds: float = WRITER_WAIT_SECONDS,
        busy_seconds: float | None = None,
        timings: dict[str, float] | None = None,
    ) -> Iterator[Turn]:
        """Hold the writer's turn on the file for `what` and yield the copy to write; the copy is put in place
        when the block ends, also when it ends with an error (what was committed stays committed, as it would
        in the file itself), unless the turn is discarded. `durable`: a stop half-way must not lose what was
        written (push's ledger); `keep`: the tables holding it, carried over row by row should the file have
        changed before the next writer comes. `timings` gets the seconds spent waiting for the turn (`wait`),
        copying (`copy`) and putting the copy in place (`publish`)."""
        timings = timings if timings is not None else {}
        started = time.monotonic()
        self.home.mkdir(parents=True, exist_ok=True)
        busy = configured_busy_seconds() if busy_seconds is None else busy_seconds
        with file_lock(self.lock_path("writer"), what, wait=True, wait_seconds=wait_seconds, resource=str(self.path)):
            existed = self.path.exists()
            with self._shared_lock(self.path, busy) if existed else nullcontext():
                copying = time.monotonic()
                timings["wait"] = round(copying - started, 3)
                turn, must_keep, carried = self._prepare_copy(what, durable, [_keep_json(k) for k in keep])
                timings["copy"] = round(time.monotonic() - copying, 3)
                failed = False
                try:
                    yield turn
                except BaseException:
                    failed = True
                    raise
                finally:
                    publishing = time.monotonic()
                    try:
                        if turn.discarded and not must_keep:
                            self._throw_away()
                        else:
                            self._publish(existed)
                            self._forget_carried(carried)
                        timings["publish"] = round(time.monotonic() - publishing, 3)
                    except Exception:
                        if not failed:
                            raise
                        log.exception("could not put the copy of %s in place after an error", self.path)

    def _read_manifest(self) -> dict[str, Any] | None:
        try:
            content = json.loads(self.manifest.read_text())
        except (OSError, ValueError):
            return None
        return content if isinstance(content, dict) else None

    def _prepare_copy(self, what: str, durable: bool, keep: list[list[Any]]) -> tuple[Turn, bool, list[Path]]:
        """Make the copy to write: take over the one a stopped writer left when it holds durable writes and the
        file is unchanged since, else copy the file afresh (moving a stopped durable copy aside first), then
        carry the rows of every stopped copy into it. Returns the turn, whether its copy must be kept whatever
        the writer says, and the stopped copies carried."""
        if _held_in_this_process(self.work_path):
            raise RuntimeError(
                f"a connection of this process still holds the copy of {self.path} of an earlier write; a new copy "
                "under the same name would be written through it into a deleted file: restart the process"
            )
        leftover = self._read_manifest()
        current = FileState.of(self.path)
        if self.work_path.exists():
            if leftover is not None and leftover.get("copied") and leftover.get("durable"):
                copied_from = FileState.from_json(leftover.get("source"))
                unchanged = (copied_from is None and current is None) or (
                    copied_from is not None and copied_from.same_file(current)
                )
                if unchanged:
                    log.warning(
                        "taking over the copy of %s that a stopped writer left (%s): it holds writes that must "
                        "not be lost",
                        self.path,
                        leftover.get("what", "writer"),
                    )
                    kept = leftover.get("keep", []) + [k for k in keep if k not in leftover.get("keep", [])]
                    self._write_manifest({**leftover, "what": what, "keep": kept, "durable": True})
                    return Turn(self.work_path), True, self._carry_all()
                self._set_aside(leftover)
            elif leftover is None:  # a copy without a readable note of what it is: kept aside, never deleted
                self._set_aside({"what": "an unknown writer", "keep": []})
            else:
                log.info("removing the copy of %s a stopped %s left", self.path, leftover.get("what", "writer"))
        if current is not None and current.wal is not None:
            durable = True  # the WAL a crashed writer left is in this copy only, once the file is replaced
        self._fresh_copy(what, durable, keep, current)
        carried = self._carry_all()
        return Turn(self.work_path), durable or bool(carried), carried

    def _set_aside(self, leftover: dict[str, Any]) -> None:
        """Move a stopped durable copy aside whole (one rename of its folder: the file and its WAL together),
        with a note of the tables to carry from it."""
        aside = self.home / f"stopped-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
        aside.mkdir()
        _write_synced(aside / "carry.json", json.dumps({"what": leftover.get("what"), "keep": leftover.get("keep")}))
        os.replace(self.work_dir, aside / "copy")
        _fsync(self.home)
        log.error(
            "%s changed after a %s stopped half-way; what it wrote is kept in %s and its ledger rows are carried "
            "into the warehouse",
            self.path,
            leftover.get("what", "writer"),
            aside,
        )

    def _write_manifest(self, content: dict[str, Any]) -> None:
        _write_synced(self.manifest, json.dumps(content))

    def _fresh_copy(self, what: str, durable: bool, keep: list[list[Any]], current: FileState | None) -> None:
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
        source = None if current is None else current.as_json()
        self._write_manifest(
            {"what": what, "pid": os.getpid(), "durable": durable, "keep": keep, "source": source, "copied": True}
        )
        _kill_point("copied")

    def _carry_all(self) -> list[Path]:
        """Carry the rows of every stopped copy into this turn's copy (each at most once)."""
        carried = []
        for note in sorted(self.home.glob("stopped-*/carry.json")):
            copy = note.parent / "copy" / self.path.name
            if not copy.exists():
                continue
            try:
                keep = json.loads(note.read_text()).get("keep") or []
            except (OSError, ValueError):
                log.error("cannot read %s: the stopped copy beside it is left for a person", note)
                continue
            self._carry_over(copy, note.parent.name, keep)
            carried.append(note.parent)
        if carried:
            _kill_point("carried")
        return carried

    def _carry_over(self, stopped: Path, name: str, keep: list[list[Any]]) -> None:
        """The kept tables' rows of a stopped copy, into this turn's copy, in one transaction that also records
        `name` there: by primary key, the stopped writer's row winning; tables without a key by whole rows."""
        with duckdb.connect(str(self.work_path)) as con:
            con.execute(f"ATTACH '{_sql_text(str(stopped))}' AS stopped (READ_ONLY)")
            con.execute("BEGIN TRANSACTION")
            try:
                schema = CARRIED_TABLE.split(".")[0]
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {CARRIED_TABLE} (name VARCHAR PRIMARY KEY, "
                    "carried_at TIMESTAMP WITH TIME ZONE)"
                )
                if con.execute(f"SELECT count(*) FROM {CARRIED_TABLE} WHERE name = ?", [name]).fetchone()[0]:
                    con.execute("ROLLBACK")
                    return
                for qualified, condition in keep:
                    self._carry_table(con, qualified, condition)
                con.execute(f"INSERT INTO {CARRIED_TABLE} VALUES (?, current_timestamp)", [name])
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            finally:
                with suppress(Exception):
                    con.execute("DETACH stopped")

    @staticmethod
    def _carry_table(con: Any, qualified: str, condition: str | None) -> None:
        schema, table = qualified.split(".", 1)
        there = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'stopped' AND schema_name = ? "
            "AND table_name = ?",
            [schema, table],
        ).fetchone()[0]
        if not there:
            return
        con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        con.execute(f'CREATE TABLE IF NOT EXISTS "{schema}"."{table}" AS FROM stopped."{schema}"."{table}" LIMIT 0')
        keys = [
            row[0]
            for row in con.execute(
                "SELECT unnest(constraint_column_names) FROM duckdb_constraints() WHERE database_name = "
                "current_database() AND schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
                [schema, table],
            ).fetchall()
        ]
        mine = f'"{schema}"."{table}"'
        theirs = f'(SELECT * FROM stopped."{schema}"."{table}" WHERE {condition or "TRUE"})'
        if keys:
            match = " AND ".join(f'm."{k}" = s."{k}"' for k in keys)
            con.execute(f"DELETE FROM {mine} m WHERE EXISTS (SELECT 1 FROM {theirs} s WHERE {match})")
            con.execute(f"INSERT INTO {mine} BY NAME FROM {theirs}")
        else:
            con.execute(f"INSERT INTO {mine} BY NAME (FROM {theirs} EXCEPT FROM {mine})")

    def _forget_carried(self, carried: list[Path]) -> None:
        """The stopped copies whose rows the file in place now holds."""
        for folder in carried:
            shutil.rmtree(folder, ignore_errors=True)

    def _throw_away(self) -> None:
        shutil.rmtree(self.work_dir, ignore_errors=True)
        with suppress(FileNotFoundError):
            self.manifest.unlink()

    def _publish(self, existed: bool) -> None:
        """Checkpoint the copy and rename it over the file (or, when there was no file, put it there only if
        none has appeared meanwhile)."""
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
        if existed:
            if _wal(self.path).exists():
                # the WAL of a writer that crashed outside the rule: its content is in the copy (copied along and
                # replayed), and DuckDB would refuse to open the new file beside it. Kept, not deleted.
                os.replace(_wal(self.path), self.home / f"replaced-{time.strftime('%Y%m%dT%H%M%S')}.wal")
            os.replace(self.work_path, self.path)
        else:
            try:
                os.link(self.work_path, self.path)  # fails if a file appeared meanwhile: never replaced unseen
            except FileExistsError:
                raise RuntimeError(
                    f"{self.path} was created by another process while this write ran; it is left as it is, and "
                    f"this write's copy is kept in {self.work_dir}"
                ) from None
            os.unlink(self.work_path)
        _kill_point("renamed")
        _fsync(self.path.parent)
        self.manifest.unlink()
        shutil.rmtree(self.work_dir, ignore_errors=True)


def _keep_json(keep: Keep) -> list[Any]:
    if isinstance(keep, str):
        return [keep, None]
    return [keep[0], keep[1]]
