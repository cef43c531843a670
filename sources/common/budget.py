"""A rate budget shared by every worker that calls an API from the same place, counted as the server counts.

The servers keep a sliding log per key: each request is a hit that expires `window` seconds after it was made,
a refused request is a hit too, and a request is refused while the key holds `limit` hits (Panora: per route
handler and client IP; Rootfi: per API key; see API_NOTES). Every process on one machine (or behind one NAT)
draws on the same keys, so each keeps the log too, in a store they all reach:

- `SqliteHitLog`: a small SQLite file in a per-machine location (the system's temporary folder, not a
  pipeline's), the default. SQLite's own file locking serializes the processes; a process killed mid-way
  leaves no lock and no half-written row (its transaction rolls back), and its hits expire like any other.
- `PostgresHitLog`: a table in a PostgreSQL database every machine reaches (the warehouse is the natural
  one), with a transaction-scoped advisory lock per key and the server's clock, for workers on several
  machines.

A request takes a hit before it leaves, or waits until the oldest hit of its key expires. The server's
`X-RateLimit-*` answer corrects the log (hits it counts that the log lacks came from elsewhere: they are added),
and a 429 blocks the key for everyone until its `Retry-After` has passed, so nobody knocks while throttled.

Written by hand: HTTP clients and retry libraries pace one process from headers or react to a 429 after the
fact; none shares a sliding log between processes or machines.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import dlt

from sources.common.secrets import SECRETS

BUDGET_SETTING = "sources.rate_budget"  # SOURCES__RATE_BUDGET: a file, a postgresql:// URL, or `off`
DEFAULT_BUDGET_FILE = Path(tempfile.gettempdir()) / "accounting-etl" / "rate-budget.sqlite"


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


EXPIRE_EVERY = 100  # takes of a process between two deletions of a key's expired hits


class SqliteHitLog:
    """The log in a SQLite file (or in memory: `:memory:`, for one process alone)."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock  # wall-clock seconds: every process on the machine reads the same
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._con = sqlite3.connect(str(path), timeout=120, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._takes = 0
        with self._lock:
            self._con.execute("PRAGMA busy_timeout = 120000")
            if str(path) != ":memory:":
                # a write-ahead log without a sync per commit: a take cost 0.9 ms here with the default
                # rollback journal (an fsync each), 0.06 ms so; a hit lost to a power cut costs nothing
                self._con.execute("PRAGMA journal_mode = WAL")
                self._con.execute("PRAGMA synchronous = NORMAL")
            self._con.execute("CREATE TABLE IF NOT EXISTS hits (key TEXT NOT NULL, at REAL NOT NULL)")
            self._con.execute("CREATE INDEX IF NOT EXISTS hits_key ON hits (key, at)")
            self._con.execute("CREATE TABLE IF NOT EXISTS blocks (key TEXT PRIMARY KEY, until REAL NOT NULL)")
            self._con.execute("CREATE TABLE IF NOT EXISTS limits (key TEXT PRIMARY KEY, hits INTEGER NOT NULL)")

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

    def take(self, key: str, limit: int, window: float) -> float:
        def work(now: float) -> float:
            # one statement reads the block, the learnt limit and the live hits: a take is on the path of every
            # request, and each statement costs (7 statements took about 2 ms a request here, this about 1)
            until, learnt, count, oldest = self._con.execute(
                "SELECT (SELECT until FROM blocks WHERE key = ?), (SELECT hits FROM limits WHERE key = ?), "
                "count(*), min(at) FROM hits WHERE key = ? AND at > ?",
                (key, key, key, now - window),
            ).fetchone()
            if until is not None and until > now:
                return until - now
            if count < (learnt if learnt is not None else limit):
                self._con.execute("INSERT INTO hits VALUES (?, ?)", (key, now))
                self._takes += 1
                if self._takes % EXPIRE_EVERY == 0:  # expired hits count for nothing: dropped now and then
                    self._con.execute("DELETE FROM hits WHERE key = ? AND at <= ?", (key, now - window))
                return 0.0
            return max(oldest + window - now, 0.001)

        return self._transaction(work)

    def block(self, key: str, seconds: float) -> None:
        def work(now: float) -> None:
            self._con.execute(
                "INSERT INTO blocks VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET until = max(until, excluded.until)",
                (key, now + seconds),
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
                "SELECT count(*) FROM hits WHERE key = ? AND at > ?", (key, now - window)
            ).fetchone()
            if hits > count:
                self._con.executemany("INSERT INTO hits VALUES (?, ?)", [(key, now)] * (hits - count))

        self._transaction(work)


class PostgresHitLog:
    """The log in PostgreSQL (schema `accounting_etl`), for workers on several machines: one advisory lock per
    key for the length of a transaction, and the server's clock, so machines whose clocks differ agree."""

    def __init__(self, url: str) -> None:
        import psycopg2

        self._con = psycopg2.connect(url)
        self._con.autocommit = False
        self._lock = threading.Lock()
        with self._lock, self._con, self._con.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext('accounting-etl rate budget schema'))")
            cursor.execute("CREATE SCHEMA IF NOT EXISTS accounting_etl")
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS accounting_etl.rate_budget_hits (key TEXT NOT NULL, at DOUBLE PRECISION "
                "NOT NULL)"
            )
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS rate_budget_hits_key ON accounting_etl.rate_budget_hits (key, at)"
            )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS accounting_etl.rate_budget_blocks (key TEXT PRIMARY KEY, "
                "until DOUBLE PRECISION NOT NULL)"
            )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS accounting_etl.rate_budget_limits (key TEXT PRIMARY KEY, "
                "hits INTEGER NOT NULL)"
            )

    def _transaction(self, key: str, work: Callable[[Any, float], Any]) -> Any:
        with self._lock, self._con, self._con.cursor() as cursor:  # commits, or rolls back on an error
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s)), extract(epoch FROM clock_timestamp())", (key,))
            now = float(cursor.fetchone()[1])
            return work(cursor, now)

    def take(self, key: str, limit: int, window: float) -> float:
        def work(cursor: Any, now: float) -> float:
            expired = (key, now - window)
            cursor.execute("DELETE FROM accounting_etl.rate_budget_hits WHERE key = %s AND at <= %s", expired)
            cursor.execute("SELECT until FROM accounting_etl.rate_budget_blocks WHERE key = %s", (key,))
            blocked = cursor.fetchone()
            if blocked is not None and blocked[0] > now:
                return blocked[0] - now
            cursor.execute("SELECT hits FROM accounting_etl.rate_budget_limits WHERE key = %s", (key,))
            learnt = cursor.fetchone()
            cursor.execute("SELECT count(*), min(at) FROM accounting_etl.rate_budget_hits WHERE key = %s", (key,))
            count, oldest = cursor.fetchone()
            if count < (learnt[0] if learnt else limit):
                cursor.execute("INSERT INTO accounting_etl.rate_budget_hits VALUES (%s, %s)", (key, now))
                return 0.0
            return max(oldest + window - now, 0.001)

        return self._transaction(key, work)

    def block(self, key: str, seconds: float) -> None:
        def work(cursor: Any, now: float) -> None:
            cursor.execute(
                "INSERT INTO accounting_etl.rate_budget_blocks VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                "SET until = greatest(accounting_etl.rate_budget_blocks.until, excluded.until)",
                (key, now + seconds),
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
                "SELECT count(*) FROM accounting_etl.rate_budget_hits WHERE key = %s AND at > %s", (key, now - window)
            )
            (count,) = cursor.fetchone()
            if hits > count:
                cursor.executemany(
                    "INSERT INTO accounting_etl.rate_budget_hits VALUES (%s, %s)", [(key, now)] * (hits - count)
                )

        self._transaction(key, work)


_LOGS: dict[str, HitLog] = {}
_LOGS_LOCK = threading.Lock()


def shared_log(location: str | None = None) -> HitLog:
    """The hit log at `location` (else `SOURCES__RATE_BUDGET`, else the per-machine file), one per process:
    a postgresql:// URL, a file, or `off` (this process alone)."""
    location = str(location or dlt.config.get(BUDGET_SETTING) or DEFAULT_BUDGET_FILE)
    with _LOGS_LOCK:
        if location not in _LOGS:
            if location.startswith(("postgresql://", "postgres://")):
                SECRETS.add([location])
                _LOGS[location] = PostgresHitLog(location)
            else:
                _LOGS[location] = SqliteHitLog(":memory:" if location == "off" else location)
        return _LOGS[location]


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
        """The answer's `X-RateLimit-*` headers, if any: the server's limit, and hits the log lacks."""
        if headers is None:
            return
        limit = _header_number(headers, "x-ratelimit-limit")
        if limit is None or limit < 1:
            return
        remaining = _header_number(headers, "x-ratelimit-remaining")
        hits = None if remaining is None else max(0, int(limit - remaining))
        self.log.learn(self.key_of(route), int(limit), hits, self.window)

    def throttled(self, route: str, seconds: float) -> None:
        """A 429: every worker waits `seconds` before its next request of this key."""
        self.log.block(self.key_of(route), seconds)
