"""The exactly-once rules of push, the same for every provider; a provider's writer (`sources/<name>/writer.py`,
the contract in `sources/common/writer.py`) only speaks its API.

Why not dlt's `@dlt.destination` sink: it is at-least-once per batch (a failed or interrupted batch is sent
again whole) and keeps its progress only in the local pipeline folder, while the providers' POSTs have no
idempotency key. Exactly-once in effect needs a durable intent before each request and a lookup before any
resend, per record; so push talks HTTP through the sources' shared client and keeps its ledger in the
warehouse (`ledger.py`).

Per record:
1. Open entries an earlier run left are settled first, never resent blindly: `submitted` ones (in a job
   whose id is known) by following the job (a job still running stays `submitted` for the next run);
   `pending` (crashed after the intent) and `unknown` (no clear answer) ones by looking the record up
   (by the external id the writer puts into it, else by content): found -> `created`, no request.
2. The intent (`pending`) is written, then the request leaves (one record, or a batch where the API takes
   several), then its outcome is written: `created` with the record's ids; `submitted` with the job's id,
   then the job is followed until it ends (or `job_wait_seconds` pass); a 4xx is `rejected`; a request that
   may have arrived (timeout, dropped connection, 5xx, a 2xx that names no record) is `unknown`.
3. An `unknown` record is looked up, after `settle_seconds` when the request may still be running (no
   answer at all, or any unclear answer to an API whose accepted requests run on as jobs). A lookup that
   finds nothing is not proof: an API may write to the accounting system first and list the record later
   (Panora: at its next sync, every 8 h). So a record is sent again only when a lookup still finds nothing
   `resend_unknown_after` seconds after its send (default 9 h); until then it stays `unknown` and each run
   looks again. Against a server known to write atomically (the sandboxes), 0 resends at once.
4. A job that FAILED created nothing: its records are `failed` and sent again; a record failing inside a
   job that succeeded is `rejected` with the provider's reason. After `sends_per_record` sends, `failed`.
5. Anything no rule foresaw (an API failing a lookup, an answer of no known shape) ends only the records it
   touched, in a state the next run resolves: `unknown` where a request may have gone out, `failed` where
   none did; a `submitted` record stays submitted, a created one created.
6. What a server says is checked before it is believed (`_doubt`): a record an answer, a job or a lookup
   gives for a row is that row's only when it carries no other external id, its content (invoice, amount,
   currency; an invoice's number) is what the row sent, no other row has it, and it was not in the warehouse
   before this row was first sent. An answer that fails the check leaves the row `unknown`, and it is looked
   up; a record found by a lookup that carries the row's external id but differs from it is never taken and
   never sent past: it stays `unknown` for a person.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pipelines.push.ledger import FINAL, Ledger, PushStatus, may_resend
from sources.common.errors import ApiError, OutcomeUnknown, WriteRefused
from sources.common.secrets import SECRETS
from sources.common.writer import COMPARED, Created, Job, Writer

log = logging.getLogger("accounting_etl.push")

Row = dict[str, Any]
OPEN = (PushStatus.PENDING, PushStatus.UNKNOWN, PushStatus.SUBMITTED)
CLOCK_MARGIN = timedelta(minutes=5)  # a record's creation time, by the server's clock, may precede ours a little


@dataclass(frozen=True)
class SendRules:
    sends_per_record: int = 3  # sends of a record that certainly was not created, before it is `failed`
    settle_seconds: float = 30.0  # wait before looking up a record whose request may still be running
    resend_unknown_after: float = 9 * 3600.0  # one Panora sync (8 h) and a margin
    job_wait_seconds: float = 60.0  # how long a run follows a job before leaving it to the next run
    poll_seconds: float = 1.0  # between two looks at a running job


@dataclass
class Lane:
    """One provider's share of a push: its writer and its accounts (alias -> token or company id)."""

    title: str
    writer: Writer
    accounts: Mapping[str, str]


class Engine:
    def __init__(
        self,
        ledger: Ledger,
        entries: Mapping[str, Mapping[str, Any]],
        rules: SendRules,
        concurrency: int = 4,
        on_event: Callable[[str, str], None] | None = None,
        loaded: Container[str] = frozenset(),
    ) -> None:
        self.ledger = ledger
        self.entries = entries
        self.rules = rules
        self.concurrency = max(1, concurrency)
        self.on_event = on_event or (lambda name, external_id: None)  # test hooks: intent, answered, ...
        # record id -> the external id of the row that has it
        self.claimed: dict[str, str] = {e["record_id"]: x for x, e in entries.items() if e.get("record_id")}
        self.loaded = loaded  # the records the warehouse held when this run began (`in` asks)
        self.sent_at: dict[str, datetime] = {}  # this run's sends
        self.lock = threading.Lock()
        self.errors: list[str] = []  # what stopped records part-way (masked)

    # -- the run ------------------------------------------------------------------------------------------
    def push(self, lane: Lane, rows: Sequence[tuple[str, Row]]) -> None:
        """Settle the open entries of these (kind, row) pairs, then send what is to be sent."""
        jobs: dict[tuple[str, str, str], list[Row]] = {}
        to_find: dict[tuple[str, str], list[Row]] = {}
        fresh: list[tuple[str, Row]] = []
        for kind, row in rows:
            entry = self.entries.get(row["external_id"], {})
            if entry.get("status") == PushStatus.SUBMITTED and entry.get("remote_job"):
                jobs.setdefault((kind, row["connection"], entry["remote_job"]), []).append(row)
            elif entry.get("status") in OPEN:
                to_find.setdefault((kind, row["connection"]), []).append(row)
            else:
                fresh.append((kind, row))
        settle: list[tuple[tuple[str, str], list[Row], Callable[[], list[Row]]]] = [
            (
                (kind, alias),
                job_rows,
                lambda k=kind, a=alias, j=job_id, r=job_rows: self._follow(lane, k, a, j, r, None),
            )
            for (kind, alias, job_id), job_rows in jobs.items()
        ]
        settle += [
            ((kind, alias), open_rows, lambda k=kind, a=alias, r=open_rows: self._resolve(lane, k, a, r, "resolve"))
            for (kind, alias), open_rows in to_find.items()
        ]
        again = self._run(lane, settle)
        batches: dict[tuple[str, str], list[Row]] = {}
        for kind, row in [*fresh, *again]:
            batches.setdefault((kind, row["connection"]), []).append(row)
        size = max(1, lane.writer.batch_size)
        sends = [
            ((kind, alias), part, lambda k=kind, a=alias, p=part: self._send(lane, k, a, p))
            for (kind, alias), batch_rows in batches.items()
            for part in (batch_rows[i : i + size] for i in range(0, len(batch_rows), size))
        ]
        self._run(lane, sends)

    def _run(
        self, lane: Lane, items: Sequence[tuple[tuple[str, str], list[Row], Callable[[], list[Row] | None]]]
    ) -> list[tuple[str, Row]]:
        """Run work items side by side, each guarded; returns the (kind, row) pairs they hand on."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="push") as pool:
            results = list(pool.map(lambda item: self._guarded(lane, *item), items))
        return [pair for result in results for pair in result]

    def _guarded(
        self, lane: Lane, key: tuple[str, str], rows: list[Row], work: Callable[[], list[Row] | None]
    ) -> list[tuple[str, Row]]:
        kind, alias = key
        try:
            return [(kind, row) for row in work() or []]
        except Exception as exc:
            message = SECRETS.describe(exc)
            ids = ", ".join(r["external_id"] for r in rows)
            log.error("push of %s [%s] stopped: %s", ids, alias, message)
            for row in rows:
                status = self.ledger.status(row["external_id"])
                if status in FINAL or status == PushStatus.SUBMITTED:
                    continue
                sent = status in (PushStatus.PENDING, PushStatus.UNKNOWN)
                follow_up = "looked up before any resend" if sent else "tried again by the next push"
                self._record(
                    kind,
                    row,
                    PushStatus.UNKNOWN if sent else PushStatus.FAILED,
                    "error",
                    error=f"{message} ({follow_up})",
                )
            with self.lock:
                self.errors.append(f"{ids} [{alias}]: {message}")
            return []

    # -- one batch ----------------------------------------------------------------------------------------
    def _record(self, kind: str, row: Row, status: str, phase: str, **details: Any) -> None:
        self.ledger.record(row["external_id"], row["connection"], status, phase=phase, kind=kind, **details)

    def _created(self, kind: str, row: Row, created: Created, phase: str, http_status: int | None = None) -> None:
        with self.lock:
            if created.record_id:
                self.claimed[created.record_id] = row["external_id"]
        # a created record's `error` holds the warnings the provider gave with it, if any
        warned = "created, with the provider's warnings: " + "; ".join(created.warnings) if created.warnings else None
        self._record(kind, row, PushStatus.CREATED, phase, record_id=created.record_id, remote_id=created.remote_id,
                     provider_id=created.provider_id, http_status=http_status, error=warned)  # fmt: skip

    def _doubt(self, kind: str, row: Row, created: Created, locked: bool = False) -> str | None:
        """Why `created` cannot be taken for `row`'s record (see the module text, rule 6), or None. `locked`:
        the caller holds the engine's lock."""
        external_id = row["external_id"]
        if created.external_id is not None and created.external_id != external_id:
            return f"it carries the external id {created.external_id!r}"
        if created.record_id:
            with nullcontext() if locked else self.lock:
                owner = self.claimed.get(created.record_id)
            if owner is not None and owner != external_id:
                return f"record {created.record_id} is {owner}'s"
        differs = differences(kind, row, created.content or {})
        if differs:
            return "its " + ", ".join(differs)
        if created.record_id in self.loaded and created.external_id != external_id:
            first = self._first_attempt([row])
            if created.created_at is None or created.created_at < first - CLOCK_MARGIN:
                return f"record {created.record_id} was in the warehouse before this row was sent"
        return None

    def _send(self, lane: Lane, kind: str, alias: str, rows: list[Row]) -> None:
        writer, rules = lane.writer, self.rules
        for send in range(1, rules.sends_per_record + 1):
            for row in rows:
                self._record(kind, row, PushStatus.PENDING, "intent", attempt=True)
                self.on_event("intent", row["external_id"])
            sent_at = datetime.now(UTC)
            with self.lock:
                for row in rows:
                    self.sent_at.setdefault(row["external_id"], sent_at)
            try:
                answer = writer.send(kind, lane.accounts[alias], rows)
            except OutcomeUnknown as exc:
                for row in rows:
                    self._record(kind, row, PushStatus.UNKNOWN, "outcome", http_status=exc.status, error=exc.message)
                if writer.runs_in_background or exc.status is None:
                    time.sleep(rules.settle_seconds)  # the request may still be running on the server
                rows = self._resolve(lane, kind, alias, rows, "resolve", sent_at=datetime.now(UTC))
                failure = f": {exc.message}"
            except ApiError as exc:
                final = isinstance(exc, WriteRefused) or (exc.status is not None and 400 <= exc.status < 500)
                for row in rows:
                    status = PushStatus.REJECTED if final else PushStatus.FAILED
                    self._record(kind, row, status, "outcome", http_status=exc.status,
                                 error=exc.message)  # fmt: skip
                return
            else:
                if isinstance(answer, Job):
                    for row in rows:
                        self._record(kind, row, PushStatus.SUBMITTED, "submitted", http_status=200,
                                     remote_job=answer.job_id or None, error=answer.label)  # fmt: skip
                        self.on_event("submitted", row["external_id"])
                    rows = self._follow(lane, kind, alias, answer.job_id, rows, answer)
                    failure = ""
                else:
                    doubted = self._answered(kind, rows, answer)
                    if not doubted:
                        return
                    # an answer that describes another record: whether this one was created, a lookup tells
                    rows = self._resolve(lane, kind, alias, doubted, "resolve", sent_at=datetime.now(UTC))
                    failure = ": the answer described another record"
            if not rows:
                return
            if send == rules.sends_per_record:
                for row in rows:
                    self._record(kind, row, PushStatus.FAILED, "resolve",
                                 error=f"not created after {send} sends (looked up each time){failure}")  # fmt: skip
                return
            time.sleep(writer.backoff(send))

    def _answered(self, kind: str, rows: list[Row], created: Mapping[str, Created]) -> list[Row]:
        """The answer names what was created: each row is `created`, or `unknown` when the answer leaves it
        out (the next run looks it up). Returns the rows whose answer describes a record that is not theirs
        (`unknown`, to be looked up now)."""
        self.on_event("answered", rows[0]["external_id"])
        doubted = []
        for row in rows:
            record = created.get(row["external_id"])
            if record is None:
                self._record(kind, row, PushStatus.UNKNOWN, "outcome", error="the answer does not name this record")
                continue
            doubt = self._doubt(kind, row, record)
            if doubt is None:
                self._created(kind, row, record, "outcome", 201)
            else:
                self._record(kind, row, PushStatus.UNKNOWN, "outcome", http_status=201,
                             error=f"the answer describes another record ({doubt}): looked up")  # fmt: skip
                doubted.append(row)
        self.on_event("recorded", rows[0]["external_id"])
        return doubted

    def _first_attempt(self, rows: Iterable[Row]) -> datetime:
        """The earliest send of these rows (now if none is known): a lookup reads changes from there on."""
        sent = [self.entries.get(r["external_id"], {}).get("first_attempt_at") or self.sent_at.get(r["external_id"])
                for r in rows]  # fmt: skip
        return min((t for t in sent if t is not None), default=datetime.now(UTC))

    def _find(self, lane: Lane, kind: str, alias: str, row: Row) -> tuple[Created | None, str | None]:
        """The record a lookup finds for `row`, claimed for it: (record, None). When the one found carries the
        row's external id but cannot be its (`_doubt`): (None, why), and the row is never sent past it; any
        other doubtful record is as good as none: (None, None). Finding and claiming are one step: two rows
        never take one record."""
        not_before = self._first_attempt([row]) - CLOCK_MARGIN
        with self.lock:
            taken = _Taken(set(self.claimed), self.loaded, not_before)
        found = lane.writer.find(kind, lane.accounts[alias], row, taken, not_before)  # type: ignore[arg-type]
        if found is None:
            return None, None
        with self.lock:
            doubt = self._doubt(kind, row, found, locked=True)
            if doubt is None and found.record_id:
                self.claimed[found.record_id] = row["external_id"]
        if doubt is None:
            return found, None
        return None, doubt if found.external_id == row["external_id"] else None

    def _resolve(
        self, lane: Lane, kind: str, alias: str, rows: list[Row], phase: str, sent_at: datetime | None = None
    ) -> list[Row]:
        """Look open rows up; the found are `created`. Returns the rows that may be sent again now."""
        lane.writer.refresh(kind, lane.accounts[alias], self._first_attempt(rows))
        again = []
        for row in rows:
            found, doubt = self._find(lane, kind, alias, row)
            last_sent = sent_at or self.entries.get(row["external_id"], {}).get("last_attempt_at")
            if found is not None:
                self._created(kind, row, found, phase)
            elif doubt is not None:
                # a record carrying this row's external id exists but is not what was sent: never sent past it
                self._record(kind, row, PushStatus.UNKNOWN, phase,
                             error=f"a record with this external id exists, but {doubt}: needs a person")  # fmt: skip
            elif may_resend(last_sent, self.rules.resend_unknown_after):
                again.append(row)
            else:
                error = "not found yet; sent again only after resend_unknown_after"
                self._record(kind, row, PushStatus.UNKNOWN, phase, error=error)
        return again

    def _follow(self, lane: Lane, kind: str, alias: str, job_id: str, rows: list[Row], answer: Job | None) -> list[Row]:
        """Wait for a job to end and record each row's outcome; returns the rows to send again."""
        job = answer
        deadline = time.monotonic() + self.rules.job_wait_seconds
        while job is None or not job.ended:
            if time.monotonic() >= deadline:
                log.info("job %s still running: followed up by the next push", job_id)
                return []
            if job is not None:
                time.sleep(self.rules.poll_seconds)
            try:
                job = lane.writer.job(lane.accounts[alias], job_id)
            except ApiError as exc:
                if exc.status == 404:  # the job is unknown to the server: the records themselves tell
                    return self._resolve(lane, kind, alias, rows, "resolve")
                error = f"the job's state could not be read ({exc}); the next push follows it"
                for row in rows:  # still in the job: followed by the next run, never resent
                    self._record(kind, row, PushStatus.SUBMITTED, "follow", remote_job=job_id or None, error=error)
                return []
        answered = {}
        for row in rows:  # what the job says was created, where it is this row's (`_doubt`)
            record = job.created.get(row["external_id"])
            doubt = None if record is None else self._doubt(kind, row, record)
            if doubt is not None:
                log.warning("job %s names a record for %s that is not its (%s): looked up", job_id,
                            row["external_id"], doubt)  # fmt: skip
            elif record is not None:
                answered[row["external_id"]] = record
        if any(row["external_id"] not in answered for row in rows):  # the records say which were created
            lane.writer.refresh(kind, lane.accounts[alias], self._first_attempt(rows))
        again = []
        for row in rows:
            created, doubt = answered.get(row["external_id"]), None
            if created is None:
                created, doubt = self._find(lane, kind, alias, row)
            if created is not None:
                self._created(kind, row, created, "outcome")
            elif doubt is not None:  # a record with this row's external id that is not what was sent
                self._record(kind, row, PushStatus.UNKNOWN, "outcome",
                             error=f"a record with this external id exists, but {doubt}: needs a person")  # fmt: skip
            elif job.failed:
                reason = job.failures.get(row["external_id"]) or job.unnamed_reason or job.error or ""
                self._record(kind, row, PushStatus.FAILED, "outcome", error=f"job {job_id} FAILED: {reason}")
                again.append(row)
            else:
                reason = job.failures.get(row["external_id"]) or job.unnamed_reason
                if reason is None:
                    reasons = "; ".join(job.reasons) or "none given"
                    reason = (
                        f"failed inside job {job_id} ({job.failed_count} failed; {lane.title}'s reasons: {reasons})"
                    )
                self._record(kind, row, PushStatus.REJECTED, "outcome", error=reason)
        self.on_event("recorded", rows[0]["external_id"])
        return again


def differences(kind: str, row: Mapping[str, Any], content: Mapping[str, Any]) -> list[str]:
    """How a record's content (in the queue's terms) differs from the row that was sent: `name value (sent
    value)` for each compared field both have."""
    out = []
    for name in COMPARED[kind]:
        sent, got = row.get(name), content.get(name)
        if sent is None or got is None:
            continue
        if name == "currency":
            sent, got = str(sent).upper(), str(got).upper()
        elif name == "total_amount":
            try:
                sent, got = int(sent), int(got)
            except (TypeError, ValueError):
                pass
        else:
            sent, got = str(sent), str(got)
        if sent != got:
            out.append(f"{name} {got!r} (sent {sent!r})")
    return out


class _Taken:
    """The records a lookup must not take by content: claimed by a row, or in the warehouse from before this
    row was first sent (`not_before`). A loaded record created after that may be the one this row's earlier
    send created, brought in by a load since; skipping it would send the row again. Without a creation time
    (or without `loaded.created_at`), a loaded record counts as there before."""

    def __init__(self, claimed: set[str], loaded: Container[str], not_before: datetime | None = None) -> None:
        self.claimed = claimed
        self.loaded = loaded
        self.not_before = not_before

    def __contains__(self, record_id: object) -> bool:
        if record_id in self.claimed:
            return True
        if record_id not in self.loaded:
            return False
        created_at = getattr(self.loaded, "created_at", None)
        created = created_at(record_id) if created_at is not None and self.not_before is not None else None
        return created is None or created < self.not_before
