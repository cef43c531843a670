"""`accounting-etl status`: what the last runs left behind, per provider and connection, and what the push
ledger holds, for a person after a scheduled run and for monitors (`--json`, exit codes).

Everything is read from the warehouse (`load_runs`, `load_run_scans`, `push_log`), so it says the same
whichever machine or orchestrator ran the loads; connections that are configured here but were never
loaded are listed too. A connection needs attention when the last scan of one of its tables failed (in its
last run or an earlier one that a run of other tables followed), or when its oldest table was last loaded
completely longer ago than `--max-age`, or was never loaded completely.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dlt

from pipelines import settings
from pipelines.push.ledger import PushStatus
from pipelines.registry import configured_providers
from pipelines.warehouse.access import read_warehouse
from sources.common.secrets import SECRETS, printable

NEEDS_A_PERSON = (
    PushStatus.REJECTED,
    PushStatus.FAILED,
    PushStatus.UNKNOWN,
)  # ledger states no later run settles on its own
IN_FLIGHT = (
    PushStatus.PENDING,
    PushStatus.SUBMITTED,
)  # states a run settles, unless they have lasted: then a person looks
# ACCOUNTING_ETL__PUSH_STUCK_AFTER: how long a pending/submitted row may last
STUCK_AFTER_SECONDS = settings.DEFAULT_STUCK_AFTER_SECONDS
_AGE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([smhd]?)\s*", re.IGNORECASE)
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_age(text: str) -> float:
    """`90m`, `6h`, `2d`, `3600` (seconds) -> seconds."""
    match = _AGE.fullmatch(text or "")
    if not match:
        raise ValueError(f"--max-age {text!r}: give a number with s, m, h or d (e.g. 6h)")
    return float(match.group(1)) * _UNIT[match.group(2).lower()]


@dataclass
class ConnectionStatus:
    provider: str
    connection: str
    last_run_at: datetime | None = None  # when its last load started
    duration_seconds: float | None = None
    status: str = "never loaded"  # ok | failed | never loaded
    written: int = 0  # records written by the last load
    rejected: int = 0
    deleted: int = 0
    throttled: int = 0  # 429s met by that load (the run's, across its connections)
    error: str | None = None
    fresh_at: datetime | None = None  # the oldest of its tables' last complete load
    age_seconds: float | None = None
    stale: bool = False

    @property
    def needs_attention(self) -> bool:
        return self.status != "ok" or self.stale


@dataclass
class StatusReport:
    generated_at: datetime
    max_age_seconds: float | None
    connections: list[ConnectionStatus] = field(default_factory=list)
    push_by_status: dict[str, int] = field(default_factory=dict)
    push_attention: list[dict[str, Any]] = field(default_factory=list)
    stuck_after_seconds: float = STUCK_AFTER_SECONDS

    @property
    def loads_ok(self) -> bool:
        return bool(self.connections) and not any(c.needs_attention for c in self.connections)

    @property
    def push_ok(self) -> bool:
        """No ledger row needs a person: none rejected, failed or unknown, none pending or submitted for longer
        than `stuck_after_seconds`."""
        return not self.push_attention

    @property
    def ok(self) -> bool:
        return self.loads_ok and self.push_ok

    def as_json(self) -> str:
        def plain(value: Any) -> Any:
            return value.isoformat() if isinstance(value, datetime) else value

        body = {
            "generated_at": self.generated_at.isoformat(),
            "ok": self.ok,
            "max_age_seconds": self.max_age_seconds,
            "connections": [
                {k: plain(v) for k, v in {**asdict(c), "needs_attention": c.needs_attention}.items()}
                for c in self.connections
            ],
            "push": {
                "ok": self.push_ok,
                "by_status": self.push_by_status,
                "stuck_after_seconds": self.stuck_after_seconds,
                "needs_a_person": [{k: plain(v) for k, v in row.items()} for row in self.push_attention],
            },
        }
        return json.dumps(body, indent=2, default=str)


_SCANS = """
SELECT r.provider, s.connection, s.resource, s.status, s.written, s.rejected, s.deleted, s.error, r.started_at,
       r.finished_at, r.duration_seconds, r.throttled
FROM {raw}.load_run_scans s JOIN {raw}.load_runs r ON r.run_id = s.run_id"""

LAST_RUNS = f"""
WITH scans AS ({_SCANS}),
latest AS (SELECT provider, connection, max(started_at) AS started_at FROM scans GROUP BY provider, connection)
SELECT s.provider, s.connection, s.started_at, max(s.duration_seconds), max(s.throttled), sum(s.written),
       sum(s.rejected), sum(s.deleted)
FROM scans s JOIN latest l
  ON l.provider = s.provider AND l.connection = s.connection AND l.started_at = s.started_at
GROUP BY s.provider, s.connection, s.started_at
ORDER BY s.provider, s.connection"""

# Each table's own last scan, where it did not complete: a run of other tables since (`--resources contacts`)
# leaves a failed table failed, not hidden behind that run's success.
FAILING = f"""
WITH scans AS ({_SCANS}),
latest AS (SELECT provider, connection, resource, max(started_at) AS started_at FROM scans
           GROUP BY provider, connection, resource)
SELECT s.provider, s.connection, s.resource, coalesce(s.error, s.status), s.started_at
FROM scans s JOIN latest l ON l.provider = s.provider AND l.connection = s.connection
  AND l.resource = s.resource AND l.started_at = s.started_at
WHERE s.status <> 'complete'
ORDER BY s.provider, s.connection, s.resource"""

LAST_COMPLETE = f"""
WITH scans AS ({_SCANS})
SELECT provider, connection, resource, max(CASE WHEN status = 'complete' THEN finished_at END) FROM scans
GROUP BY provider, connection, resource"""  # NULL: the table was scanned but never loaded completely


def read_status(
    database: str | None = None,
    dataset: str | None = None,
    max_age_seconds: float | None = None,
    stuck_after_seconds: float | None = None,
) -> StatusReport:
    """The state of every connection the warehouse has loaded (or the settings name) and of the push
    ledger; `max_age_seconds` marks connections whose data is older as stale; `stuck_after_seconds` (default
    ACCOUNTING_ETL__PUSH_STUCK_AFTER, else an hour) how long a pending or submitted push may last before a
    person looks."""
    raw = settings.dataset_name(dataset)
    if database is not None and not Path(database).exists():
        raise settings.ConfigurationError(f"no warehouse at {database}: load first, or name the DuckDB file")
    now = datetime.now(UTC)
    if stuck_after_seconds is None:
        configured = dlt.config.get("accounting_etl.push_stuck_after")
        stuck_after_seconds = parse_age(str(configured)) if configured else STUCK_AFTER_SECONDS
    report = StatusReport(now, max_age_seconds, stuck_after_seconds=stuck_after_seconds)
    found: dict[tuple[str, str], ConnectionStatus] = {}
    with read_warehouse(database, dataset) as query:
        tables = {r[0] for r in query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{raw}'")[1]}  # fmt: skip
        if {"load_runs", "load_run_scans"} <= tables:
            for provider, alias, started, seconds, throttled, written, rejected, deleted in query(
                LAST_RUNS.format(raw=raw)
            )[1]:
                found[(provider, alias)] = ConnectionStatus(
                    provider,
                    alias,
                    last_run_at=_utc(started),
                    duration_seconds=seconds,
                    status="ok",
                    written=int(written or 0),
                    rejected=int(rejected or 0),
                    deleted=int(deleted or 0),
                    throttled=int(throttled or 0),
                )
            for provider, alias, resource, error, started in query(FAILING.format(raw=raw))[1]:
                entry = found[(provider, alias)]
                if entry.status == "ok":  # the first failing table (by name) says why
                    entry.status = "failed"
                    earlier = _utc(started)
                    since = f" (its last scan, in the run of {earlier:%Y-%m-%d %H:%M} UTC)" if (
                        earlier and entry.last_run_at and earlier < entry.last_run_at) else ""  # fmt: skip
                    entry.error = printable(SECRETS.redact(f"{resource}: {error}{since}"))[:500]
            oldest: dict[tuple[str, str], datetime | None] = {}
            for provider, alias, _, finished in query(LAST_COMPLETE.format(raw=raw))[1]:
                moment, key = _utc(finished), (provider, alias)
                if key not in oldest:
                    oldest[key] = moment
                elif oldest[key] is not None:  # a table never loaded completely keeps the connection's age unknown
                    oldest[key] = None if moment is None else min(moment, oldest[key])
            for key, moment in oldest.items():
                if key in found:
                    found[key].fresh_at = moment
        if "push_log" in tables:
            report.push_by_status = dict(query(f"SELECT status, count(*) FROM {raw}.push_log GROUP BY status")[1])
            states = ", ".join(f"'{s}'" for s in NEEDS_A_PERSON)
            in_flight = ", ".join(f"'{s}'" for s in IN_FLIGHT)
            stuck_before = datetime.fromtimestamp(now.timestamp() - report.stuck_after_seconds, UTC).isoformat()
            names, rows = query(
                f"SELECT external_id, kind, connection, status, error, attempts, updated_at FROM {raw}.push_log "
                f"WHERE status IN ({states}) OR (status IN ({in_flight}) AND (updated_at IS NULL OR updated_at < "
                f"CAST('{stuck_before}' AS TIMESTAMP WITH TIME ZONE))) ORDER BY updated_at DESC, external_id"
            )
            report.push_attention = [
                {
                    **dict(zip(names, row, strict=True)),
                    "error": printable(SECRETS.redact(str(row[4])))[:500] if row[4] else None,
                }
                for row in rows
            ]
            for row in report.push_attention:
                if row["status"] in IN_FLIGHT:
                    row["error"] = (f"{row['status']} since {row['updated_at']}: longer than "
                                    f"{_age(report.stuck_after_seconds)}; the next push follows it up") + (
                        f" ({row['error']})" if row.get("error") else "")  # fmt: skip
    for provider in configured_providers():
        for alias in provider.accounts():
            found.setdefault((provider.name, alias), ConnectionStatus(provider.name, alias))
    for entry in found.values():
        if entry.fresh_at is not None:
            entry.age_seconds = round((now - entry.fresh_at).total_seconds(), 1)
        entry.stale = max_age_seconds is not None and (entry.age_seconds is None or entry.age_seconds > max_age_seconds)
    report.connections = sorted(found.values(), key=lambda c: (c.provider, c.connection))
    return report


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def render(report: StatusReport, console: Any) -> None:
    """The report as tables on a rich console (a terminal gets colour; a pipe plain text)."""
    from rich.markup import escape
    from rich.table import Table

    loads = Table(title="Loads, per connection (the last run)", title_justify="left")
    for column in ("provider", "connection", "last load (UTC)", "took", "status", "written", "rejected",
                   "deleted", "429s", "data age"):  # fmt: skip
        loads.add_column(column, justify="right" if column in ("took", "written", "rejected", "deleted", "429s")
                         else "left")  # fmt: skip
    for c in report.connections:
        status = f"[red]{c.status}[/]" if c.status != "ok" else "[green]ok[/]"
        age = _age(c.age_seconds) + (" [red](stale)[/]" if c.stale else "")
        loads.add_row(
            escape(c.provider),
            escape(c.connection),
            c.last_run_at.strftime("%Y-%m-%d %H:%M") if c.last_run_at else "-",
            f"{c.duration_seconds:.1f}s" if c.duration_seconds is not None else "-",
            status,
            f"{c.written:,}",
            f"{c.rejected:,}",
            f"{c.deleted:,}",
            f"{c.throttled:,}",
            age,
        )
    console.print(loads)
    for c in report.connections:
        if c.error:
            console.print(f"[red]FAILED[/] {escape(f'{c.provider} [{c.connection}]: {c.error}')}", highlight=False)
    if report.max_age_seconds is not None:
        console.print(f"stale: data older than {_age(report.max_age_seconds)}")
    ledger = ", ".join(f"{status} {count:,}" for status, count in sorted(report.push_by_status.items()))
    console.print(f"\npush ledger: {ledger or 'empty'}")
    if report.push_attention:
        people = Table(title="Pushes that need a person", title_justify="left")
        for column in ("external_id", "kind", "connection", "status", "attempts", "error"):
            people.add_column(column, overflow="fold")
        for row in report.push_attention:
            people.add_row(*(escape(str(row[k])) if row[k] is not None else "" for k in
                             ("external_id", "kind", "connection", "status", "attempts", "error")))  # fmt: skip
        console.print(people)
    healthy = "all connections loaded and fresh" if report.max_age_seconds is not None else "all connections loaded"
    verdict = f"[green]{healthy}[/]" if report.ok else "[red]needs attention[/]"
    console.print(f"\n{verdict}")
