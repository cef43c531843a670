"""A rate budget shared by every worker that calls an API from the same place, counted as the server counts.

The servers keep a sliding log per key: each request is a hit that expires `window` seconds after it was made,
a refused request is a hit too, and a request is refused while the key holds `limit` hits (Panora: per route
handler and client IP; Rootfi: per API key). Every process on one machine (or behind one NAT)
draws on the same keys, so each keeps the log too, in a store they all reach:

- `SqliteHitLog`: a small SQLite file in a per-user folder of the system's temporary folder
  (`accounting-etl-<uid>/`, mode 0700, refused when another user owns it or others may write it), the
  default. SQLite's own file locking serializes the processes; a process killed mid-way leaves no lock and no
  half-written row (its transaction rolls back), and its hits expire like any other. A file that is not a
  database is set aside and made anew; a log that cannot be kept there is kept in the process, said once.
- `PostgresHitLog`: a table in a PostgreSQL database every machine reaches (the warehouse is the natural
  one), with a transaction-scoped advisory lock per key and the server's clock, for workers on several
  machines; it reconnects after the server restarts.

What servers say is bounded before it is kept: a learnt limit is at most `MAX_LIMIT_FACTOR` times the
configured one, and the hits an answer reports that the log lacks are one row with their count (a server
saying it counts three million hits writes one row, not three million). The log keeps constant space per key
over time: expired hits are deleted at every take of their key and, for every key, when a process opens the
log. A wall clock stepped back (hits or blocks stamped in the future) is detected and said; no wait the log
derives is longer than the window (a block, than its own length).

A request takes a hit before it leaves, or waits until the oldest hit of its key expires. The server's
`X-RateLimit-*` answer corrects the log (hits it counts that the log lacks came from elsewhere: they are added),
and a 429 blocks the key for everyone until its `Retry-After` has passed, so nobody knocks while throttled.

Written by hand: HTTP clients and retry libraries pace one process from headers or react to a 429 after the
fact; none shares a sliding log between processes or machines.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import dlt

from sources.common.secrets import SECRETS

log = logging.getLogger("accounting_etl.budget")

BUDGET_SETTING = "sources.rate_budget"  # SOURCES__RATE_BUDGET: a file, a postgresql:// URL, or `off`
MAX_LIMIT_FACTOR = 10  # a server's X-RateLimit-Limit is believed up to this multiple of the configured limit
STALE_SECONDS = 86_400.0  # hits older than this are deleted for every key when a process opens the log
CLOCK_SLACK = 1.0  # a stamp this far ahead of the clock is another process's clock, not a step back


def default_budget_file() -> Path:
    """The per-user budget file: `<temporary folder>/accounting-etl-<uid>/rate-budget.sqlite`."""
    return Path(tempfile.gettempdir()) / f"accounting-etl-{os.getuid()}" / "rate-budget.sqlite"


class UnsafeLocation(Exception):
    """A budget location another user owns or may write: trusting it would let them stall or flood the runs."""


class WaitTooLong(Exception):
    """The wait a server's rate-limit answer asks for is longer than the caller accepts."""

    def __init__(self, seconds: float, limit: float) -> None:
        self.seconds = seconds
        self.limit = limit
        super().__init__(f"the server's rate limit asks to wait {seconds:.0f}s, longer than the {limit:.0f}s allowed")


class HitLog(Protocol):
    def take(self, key: str, limit: int, window: float) -> float:
        """Record a hit for `key` when it holds fewer hits younger than `window` seconds than its limit (the
        server's, once learnt, else `limit`) and is not blocked: returns 0. Otherwise records nothing and
        returns the seconds until a hit can be taken."""
        ...

    def learn(self, key: str, limit: int, hits: int | None, window: float) -> None:
        """The server said its limit for `key`, and how many hits it counts in its window (`hits`, when it
        said what remains): keep the limit for every worker, and add the hits the log lacks (made elsewhere)."""
        ...

    def block(self, key: str, seconds: float) -> None:
        """Nobody takes a hit for `key` within `seconds` (the server refused one)."""
        ...


def _header_number(headers: Mapping[str, str], name: str) -> float | None:
    """A header's number; None when absent, not a number, not finite or negative (a broken header is ignored
    rather than trusted)."""
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _private_folder(folder: Path) -> None:
    """Make `folder` (0700) or check one that exists: owned by this user, no access for others."""
    try:
        folder.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise UnsafeLocation(f"{folder} is not a folder of this user's")
    if info.st_mode & 0o077:
        raise UnsafeLocation(f"{folder} is open to other users (mode {stat.S_IMODE(info.st_mode):o})")


def _private_file(path: Path) -> None:
    """A log file that exists must be this user's and writable by nobody else."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
        raise UnsafeLocation(f"{path} is not a file of this user's")
    if info.st_mode & 0o022:
        raise UnsafeLocation(f"{path} may be written by other users (mode {stat.S_IMODE(info.st_mode):o})")


class SqliteHitLog:
    """The log in a SQLite file (or in memory: `:memory:`, for one process alone). Hits are rows of (key, at,
    n): `n` hits made at `at`, one row for a take, one for the hits a server reported that the log lacked."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # wall-clock seconds: every process on the machine reads the same
        self.path = str(path)
        self._lock = threading.Lock()
        self._said_clock = False
        if self.path != ":memory:":
            _private_file(Path(path))
            self._con = self._open_file(Path(path))
        else:
            self._con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._schema()

    def _open_file(self, path: Path) -> sqlite3.Connection:
        """Open (and make) the file; one that is not a SQLite database is set aside, named, and made anew."""
        try:
            con = self._connect(path)
            self._con = con
            self._schema()
            return con
        except sqlite3.DatabaseError as exc:
            if "not a database" not in str(exc) and "malformed" not in str(exc):
                raise
            aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
            log.warning(
                "the rate budget file %s is not a readable database (%s): set aside as %s, a new one is made",
                path,
                exc,
                aside,
            )
            for suffix in ("", "-wal", "-shm"):
                if Path(f"{path}{suffix}").exists():
                    os.replace(f"{path}{suffix}", f"{aside}{suffix}")
            con = self._connect(path)
            self._con = con
            self._schema()
            return con

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        new = not path.exists()
        con = sqlite3.connect(str(path), timeout=120, isolation_level=None, check_same_thread=False)
        if new:
            os.chmod(path, 0o600)
        con.execute("PRAGMA busy_timeout = 120000")
        # a write-ahead log without a sync per commit: the default rollback journal syncs on every take, an
        # order of magnitude slower (DECISIONLOG.md, "One rate budget per route and client"); a hit lost to a
        # power cut costs nothing
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA synchronous = NORMAL")
        return con

    def _schema(self) -> None:
        with self._lock:
            con = self._con
            con.execute(
                "CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL, n INTEGER NOT NULL DEFAULT 1)"
            )
            columns = {row[1] for row in con.execute("PRAGMA table_info(hits)").fetchall()}
            if "n" not in columns:  # a log made by an earlier version: one row a hit
                con.execute("ALTER TABLE hits ADD COLUMN n INTEGER NOT NULL DEFAULT 1")
            con.execute("CREATE INDEX IF NOT EXISTS hits_key ON hits (key, at)")
            con.execute("CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, until REAL NOT NULL)")
            columns = {row[1] for row in con.execute("PRAGMA table_info(blocks)").fetchall()}
            if "seconds" not in columns:
                con.execute("ALTER TABLE blocks ADD COLUMN seconds REAL")
            con.execute("CREATE TABLE IF NOT EXISTS limits (key TEXT PRIMARY KEY, hits INTEGER NOT NULL)")
            con.execute("DELETE FROM hits WHERE at < ?", (self._clock() - STALE_SECONDS,))  # every key, once a run

    def _transaction(self, work: Callable[[float], Any]) -> Any:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")  # one writer at a time across processes
            try:
                result = work(self._clock())
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
            return result

    def _clock_stepped_back(self, key: str, ahead: float) -> None:
        if not self._said_clock:
            log.warning("the clock went back about %.0fs (the rate budget holds hits of %s from the future): "
                        "they count from now on, for one window", ahead, key)  # fmt: skip
            self._said_clock = True

    def take(self, key: str, limit: int, window: float) -> float:
        def work(now: float) -> float:
            # one statement reads the block, the learnt limit and the live hits: a take is on the path of every
            # request, and each statement costs (seven separate ones took twice as long)
            until, seconds, learnt, count, oldest, newest = self._con.execute(
                "SELECT (SELECT until FROM blocks WHERE key = ?), (SELECT seconds FROM blocks WHERE key = ?), "
                "(SELECT hits FROM limits WHERE key = ?), coalesce(sum(n), 0), min(at), max(at) FROM hits "
                "WHERE key = ? AND at > ?",
                (key, key, key, key, now - window),
            ).fetchone()
            if newest is not None and newest > now + CLOCK_SLACK:
                self._clock_stepped_back(key, newest - now)
                self._con.execute("UPDATE hits SET at = ? WHERE key = ? AND at > ?", (now, key, now))
                oldest = min(oldest, now)
            if until is not None and until > now:
                length = seconds if seconds is not None else window
                if until - now > length + CLOCK_SLACK:  # set before the clock went back
                    self._clock_stepped_back(key, until - now - length)
                    until = now + length
                    self._con.execute("UPDATE blocks SET until = ? WHERE key = ?", (until, key))
                return min(until - now, length)
            if count < (learnt if learnt is not None else limit):
                self._con.execute("INSERT INTO hits (key, at, n) VALUES (?, ?, 1)", (key, now))
                self._con.execute("DELETE FROM hits WHERE key = ? AND at <= ?", (key, now - window))
                return 0.0
            return min(max(oldest + window - now, 0.001), window)

        return self._transaction(work)

    def block(self, key: str, seconds: float) -> None:
        def work(now: float) -> None:
            self._con.execute(
                "INSERT INTO blocks (key, until, seconds) VALUES (?, ?, ?) ON CONFLICT (key) DO UPDATE SET "
                "seconds = CASE WHEN excluded.until > until THEN excluded.seconds ELSE seconds END, "
                "until = max(until, excluded.until)",
                (key, now + seconds, seconds),
            )

        self._transaction(work)

    def learn(self, key: str, limit: int, hits: int | None, window: float) -> None:
        def work(now: float) -> None:
            self._con.execute(
                "INSERT INTO limits VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET hits = excluded.hits", (key, limit)
            )
            if hits is None:
                return
            (count,) = self._con.execute(
                "SELECT coalesce(sum(n), 0) FROM hits WHERE key = ? AND at > ?", (key, now - window)
            ).fetchone()
            if hits > count:  # made elsewhere: one row for all of them
                self._con.execute("INSERT INTO hits (key, at, n) VALUES (?, ?, ?)", (key, now, hits - count))

        self._transaction(work)


class PostgresHitLog:
    """The log in PostgreSQL (schema `accounting_etl`), for workers on several machines: one advisory lock per
    key for the length of a transaction, and the server's clock, so machines whose clocks differ agree. A
    connection the server dropped (a restart) is opened again, once per statement that met it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._con: Any = None
        with self._lock:
            self._connect()

    def _connect(self) -> None:
        import psycopg2

        if self._con is not None:
            try:
                self._con.close()
            except Exception:
                pass
        self._con = psycopg2.connect(self._url)
        self._con.autocommit = False
        with self._con, self._con.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('accounting-etl rate budget schema'))")
            cursor.execute("CREATE SCHEMA IF NOT EXISTS accounting_etl")
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS accounting_etl.rate_budget_hits (key TEXT NOT NULL, at DOUBLE PRECISION "
                "NOT NULL, n BIGINT NOT NULL DEFAULT 1)"
            )
            cursor.execute(
                "ALTER TABLE accounting_etl.rate_budget_hits ADD COLUMN IF NOT EXISTS n BIGINT NOT NULL DEFAULT 1"
            )
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS rate_budget_hits_key ON accounting_etl.rate_budget_hits (key, at)"
            )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS accounting_etl.rate_budget_blocks (key TEXT PRIMARY KEY, "
                "until DOUBLE PRECISION NOT NULL)"
            )
            cursor.execute(
                "ALTER TABLE accounting_etl.rate_budget_blocks ADD COLUMN IF NOT EXISTS seconds DOUBLE PRECISION"
            )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS accounting_etl.rate_budget_limits (key TEXT PRIMARY KEY, "
                "hits BIGINT NOT NULL)"
            )
            cursor.execute("ALTER TABLE accounting_etl.rate_budget_limits ALTER COLUMN hits TYPE BIGINT")
            cursor.execute(
                "DELETE FROM accounting_etl.rate_budget_hits WHERE at < extract(epoch FROM clock_timestamp()) - %s",
                (STALE_SECONDS,),
            )

    def _transaction(self, key: str, work: Callable[[Any, float], Any]) -> Any:
        import psycopg2

        with self._lock:
            for attempt in (1, 2):
                try:
                    with self._con, self._con.cursor() as cursor:  # commits, or rolls back on an error
                        cursor.execute(
                            "SELECT pg_advisory_xact_lock(hashtext(%s)), extract(epoch FROM clock_timestamp())", (key,)
                        )
                        now = float(cursor.fetchone()[1])
                        return work(cursor, now)
                except (psycopg2.OperationalError, psycopg2.InterfaceError):
                    if attempt == 2:
                        raise
                    log.info("the rate budget's PostgreSQL connection was lost: connecting again")
                    self._connect()
        raise AssertionError("unreachable")

    def take(self, key: str, limit: int, window: float) -> float:
        def work(cursor: Any, now: float) -> float:
            cursor.execute(
                "DELETE FROM accounting_etl.rate_budget_hits WHERE key = %s AND at <= %s", (key, now - window)
            )
            cursor.execute("SELECT until, seconds FROM accounting_etl.rate_budget_blocks WHERE key = %s", (key,))
            blocked = cursor.fetchone()
            if blocked is not None and blocked[0] > now:
                length = blocked[1] if blocked[1] is not None else window
                return min(blocked[0] - now, length)  # the server's clock: no step of ours moves it
            cursor.execute("SELECT hits FROM accounting_etl.rate_budget_limits WHERE key = %s", (key,))
            learnt = cursor.fetchone()
            cursor.execute(
                "SELECT coalesce(sum(n), 0), min(at) FROM accounting_etl.rate_budget_hits WHERE key = %s", (key,)
            )
            count, oldest = cursor.fetchone()
            if count < (learnt[0] if learnt else limit):
                cursor.execute(
                    "INSERT INTO accounting_etl.rate_budget_hits (key, at, n) VALUES (%s, %s, 1)", (key, now)
                )
                return 0.0
            return min(max(oldest + window - now, 0.001), window)

        return self._transaction(key, work)

    def block(self, key: str, seconds: float) -> None:
        def work(cursor: Any, now: float) -> None:
            cursor.execute(
                "INSERT INTO accounting_etl.rate_budget_blocks (key, until, seconds) VALUES (%s, %s, %s) "
                "ON CONFLICT (key) DO UPDATE SET seconds = CASE WHEN excluded.until > "
                "accounting_etl.rate_budget_blocks.until THEN excluded.seconds ELSE "
                "accounting_etl.rate_budget_blocks.seconds END, "
                "until = greatest(accounting_etl.rate_budget_blocks.until, excluded.until)",
                (key, now + seconds, seconds),
            )

        self._transaction(key, work)

    def learn(self, key: str, limit: int, hits: int | None, window: float) -> None:
        def work(cursor: Any, now: float) -> None:
            cursor.execute(
                "INSERT INTO accounting_etl.rate_budget_limits VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                "SET hits = excluded.hits",
                (key, limit),
            )
            if hits is None:
                return
            cursor.execute(
                "SELECT coalesce(sum(n), 0) FROM accounting_etl.rate_budget_hits WHERE key = %s AND at > %s",
                (key, now - window),
            )
            (count,) = cursor.fetchone()
            if hits > count:
                cursor.execute(
                    "INSERT INTO accounting_etl.rate_budget_hits (key, at, n) VALUES (%s, %s, %s)",
                    (key, now, hits - count),
                )

        self._transaction(key, work)


class ResilientLog:
    """A hit log that never sinks a run: a store that fails (a file corrupted or taken away mid-run, a database
    gone) is said once, naming it, and this process goes on with a log of its own."""

    def __init__(self, log_: HitLog, where: str) -> None:
        self._log = log_
        self._where = where
        self._fallback: HitLog | None = None
        self._lock = threading.Lock()

    def _call(self, name: str, *args: Any) -> Any:
        if self._fallback is None:
            try:
                return getattr(self._log, name)(*args)
            except Exception as exc:
                with self._lock:
                    if self._fallback is None:
                        detail = f"{type(exc).__name__}: {SECRETS.redact(str(exc))[:200]}"
                        log.warning(
                            "the rate budget at %s failed (%s); this process keeps a budget of its own from now on",
                            self._where,
                            detail,
                        )
                        self._fallback = SqliteHitLog(":memory:")
        return getattr(self._fallback, name)(*args)

    def take(self, key: str, limit: int, window: float) -> float:
        return self._call("take", key, limit, window)

    def learn(self, key: str, limit: int, hits: int | None, window: float) -> None:
        self._call("learn", key, limit, hits, window)

    def block(self, key: str, seconds: float) -> None:
        self._call("block", key, seconds)


_LOGS: dict[str, HitLog] = {}
_LOGS_LOCK = threading.Lock()


def shared_log(location: str | None = None) -> HitLog:
    """The hit log at `location` (else `SOURCES__RATE_BUDGET`, else the per-user file), one per process: a
    postgresql:// URL, a file, or `off` (this process alone). A location that cannot be used safely (another
    user's, open to others, unreadable) is said, naming it, and this process keeps a log of its own."""
    location = str(location or dlt.config.get(BUDGET_SETTING) or default_budget_file())
    with _LOGS_LOCK:
        if location not in _LOGS:
            _LOGS[location] = _open_log(location)
        return _LOGS[location]


def _open_log(location: str) -> HitLog:
    if location == "off":
        return SqliteHitLog(":memory:")
    where = SECRETS.redact(location)
    try:
        if location.startswith(("postgresql://", "postgres://")):
            SECRETS.add([location])
            return ResilientLog(PostgresHitLog(location), where)
        path = Path(location)
        if path.parent == default_budget_file().parent:
            _private_folder(path.parent)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        return ResilientLog(SqliteHitLog(path), where)
    except Exception as exc:
        detail = f"{type(exc).__name__}: {SECRETS.redact(str(exc))[:200]}"
        log.warning(
            "the rate budget cannot be kept at %s (%s): this process keeps a budget of its own, not shared with "
            "other workers",
            where,
            detail,
        )
        return SqliteHitLog(":memory:")


def key_digest(secret: str) -> str:
    """A key's name for a credential (Rootfi counts per API key): a digest, never the credential."""
    return hashlib.blake2b(secret.encode(), digest_size=8).hexdigest()


class RateBudget:
    """What the HTTP layer asks before each request and tells after it, for one API (see the module text).

    Args:
        log: where the hits are kept (`shared_log()`).
        key_of: a request's route (`GET /accounting/payments`) -> the key the server counts it under.
        limit: requests per window, until the server's `X-RateLimit-Limit` says otherwise.
        window: the server's window in seconds. The log keeps each hit a little longer (`slack`), since a hit is
            logged before the request reaches the server and must not expire here before it expires there.
    """

    def __init__(
        self,
        log: HitLog,
        key_of: Callable[[str], str],
        limit: int,
        window: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.log = log
        self.key_of = key_of
        self.limit = limit
        self.window = window + min(1.0, 0.05 * window) + 0.05
        self.sleep = sleep

    def acquire(self, max_wait: float, route: str) -> float:
        """Wait for a hit of this route's key; returns the seconds waited. Raises `WaitTooLong` rather than
        wait longer than `max_wait` seconds in all."""
        key = self.key_of(route)
        waited = 0.0
        while True:
            wait = self.log.take(key, self.limit, self.window)
            if wait <= 0:
                return waited
            if waited + wait > max_wait:
                raise WaitTooLong(waited + wait, max_wait)
            self.sleep(wait)
            waited += wait

    def release(self, route: str, headers: Mapping[str, str] | None) -> None:
        """The answer's `X-RateLimit-*` headers, if any: the server's limit (believed up to `MAX_LIMIT_FACTOR`
        times the configured one), and the hits the log lacks (at most that limit). Never raises: the answer
        it was given is worth more than the bookkeeping."""
        if headers is None:
            return
        try:
            limit = _header_number(headers, "x-ratelimit-limit")
            if limit is None or limit < 1:
                return
            learnt = int(min(limit, self.limit * MAX_LIMIT_FACTOR))
            remaining = _header_number(headers, "x-ratelimit-remaining")
            hits = None if remaining is None else int(min(max(0.0, limit - remaining), learnt))
            self.log.learn(self.key_of(route), learnt, hits, self.window)
        except Exception as exc:
            detail = f"{type(exc).__name__}: {SECRETS.redact(str(exc))[:200]}"
            log.warning("the rate budget could not keep what a server said of its limit (%s)", detail)

    def throttled(self, route: str, seconds: float) -> None:
        """A 429: every worker waits `seconds` before its next request of this key."""
        self.log.block(self.key_of(route), seconds)
