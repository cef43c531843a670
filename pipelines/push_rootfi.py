"""Pushing queued payments of Rootfi companies: batches through Rootfi's write jobs, exactly once in effect.

Rootfi takes `POST /accounting/invoice_payments {"company_id", "data": [...]}` and answers with a job
(CREATED -> RUNNING -> SUCCESS or FAILED); each record succeeds or fails inside the job on its own, and
the HTTP status says nothing about it. There is no idempotency key, so every payment carries its
`external_id` as its `document_number`, and that is how it is found again.

Per company, per run:
1. Entries an earlier run left open are settled first, never resent blindly: `submitted` ones (their job
   is known) by following the job; a job still running stays `submitted` for the next run. `pending`
   (crashed before the answer) and `unknown` (no clear answer) ones by looking the payment up by
   `document_number`; found -> `created`.
2. New payments go in batches: the intent (`pending`) is written for each, then the batch is POSTed and
   every row becomes `submitted` with the job's id (`remote_job`) before anything else happens.
3. The job is followed until it ends (or `job_wait_seconds` pass: then it stays `submitted`). Outcomes
   per record come from the job's own answer when it holds them (`created` with `rootfi_id` and
   `platform_id`, or `rejected` with Rootfi's error), else from a lookup by `document_number`: found ->
   `created`; not found after a SUCCESS job -> `rejected` (the job failed it); after a FAILED job ->
   `failed` (nothing was created; the next run sends it again).
4. A POST without a clear answer leaves the batch `unknown`: after `settle_seconds` (a job accepted before
   the answer was lost runs in the background, so this wait applies after a 5xx too) the payments are looked
   up, and what is not found is sent again only `resend_unknown_after` seconds after the send (as for
   Panora); a 4xx answer rejects the batch's rows with the server's message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import iso4217

from pipelines.ledger import Ledger, calendar_day, may_resend
from sources.common.errors import ApiError, OutcomeUnknown
from sources.common.secrets import SECRETS
from sources.rootfi.helpers import RootfiClient, updated_at
from sources.rootfi.objects import platform_ref, record_key
from sources.rootfi.settings import JOB_ENDED

log = logging.getLogger("accounting_etl.push")

KIND = "payment"
RESOURCE = "payments"
LOOKUP_MARGIN = timedelta(minutes=5)  # a created record's rootfi_updated_at may precede our clock a little


@dataclass(frozen=True)
class JobOptions:
    batch_size: int = 50
    job_wait_seconds: float = 60.0
    poll_seconds: float = 1.0
    settle_seconds: float = 30.0
    resend_unknown_after: float = 9 * 3600.0
    page_size: int = 500


def payment_body(row: Mapping[str, Any], company_id: str) -> dict[str, Any]:
    """Rootfi's invoice payment input for a queued row: major units as an exact decimal (never a float:
    `encode_json` writes it as the JSON number it is), platform ids, `document_number` = `external_id`
    (the key that finds it again), the queued calendar day (today in UTC when none)."""
    currency = str(row["currency"]).upper()
    exponent = iso4217.Currency(currency).exponent or 0
    body: dict[str, Any] = {
        "invoice_id": platform_ref(row["invoice_id"], company_id),
        "amount": Decimal(int(row["total_amount"])).scaleb(-exponent),
        "currency_id": currency,
        "document_number": row["external_id"],
    }
    day = calendar_day(row.get("transaction_date")) or datetime.now(UTC).date()
    body["payment_date"] = day.isoformat()
    for column, name in (("contact_id", "contact_id"), ("account_id", "account_id")):
        if row.get(column):
            body[name] = platform_ref(row[column], company_id)
    if row.get("exchange_rate") is not None:
        body["currency_rate"] = str(row["exchange_rate"])
    if row.get("type"):
        body["payment_mode"] = str(row["type"])
    return body


class _Lookup:
    """A company's invoice payments by `document_number`, read from a moment on and refreshed incrementally."""

    def __init__(self, client: RootfiClient, company_id: str, page_size: int) -> None:
        self.client = client
        self.company_id = company_id
        self.page_size = page_size
        self.by_document: dict[str, dict[str, Any]] = {}
        self.since: datetime | None = None

    def find(self, document_numbers: Sequence[str], since: datetime) -> dict[str, dict[str, Any]]:
        start = since - LOOKUP_MARGIN
        if self.since is None or start < self.since:
            self.since = start
        read_from = self.since
        newest = read_from
        for page in self.client.pages(RESOURCE, self.company_id, self.page_size, updated_since=read_from):
            for record in page:
                if isinstance(record, dict) and record.get("document_number") and not record.get("rootfi_deleted_at"):
                    self.by_document[str(record["document_number"])] = record
                moment = updated_at(record)
                if moment is not None:
                    newest = max(newest, moment)
        self.since = newest  # the next refresh continues from the newest change seen (`gte`: no gap)
        return {d: self.by_document[d] for d in document_numbers if d in self.by_document}


class RootfiPusher:
    """Sends the valid queued payments of Rootfi companies; see the module text."""

    def __init__(
        self,
        client: RootfiClient,
        ledger: Ledger,
        companies: Mapping[str, str],
        entries: dict[str, dict[str, Any]],
        options: JobOptions,
        sends: int = 3,
        on_event: Callable[[str, str], None] | None = None,
    ) -> None:
        self.client = client
        self.ledger = ledger
        self.companies = companies
        self.entries = entries
        self.options = options
        self.sends = sends
        self.on_event = on_event or (lambda name, external_id: None)
        self.lookups: dict[str, _Lookup] = {}
        self.errors: list[str] = []  # what stopped a company's push part-way (masked)

    def push(self, rows: Sequence[dict[str, Any]]) -> None:
        """Push each company's rows; Rootfi failing for one company (an error the rules below do not settle)
        stops that company alone, its rows left as the ledger shows them (the next run resolves those)."""
        by_company: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_company.setdefault(row["connection"], []).append(row)
        for alias, company_rows in by_company.items():
            try:
                self._push_company(alias, company_rows)
            except Exception as exc:
                message = SECRETS.describe(exc)
                log.error("push to Rootfi company %s stopped: %s", alias, message)
                self.errors.append(f"[{alias}]: {message}")
                for row in company_rows:
                    status = self.ledger.status(row["external_id"])
                    if status in ("pending", "unknown"):
                        self._record(row, "unknown", "error", error=f"{message} (looked up before any resend)")

    # -- one company -----------------------------------------------------------------------------------
    def _record(self, row: Mapping[str, Any], status: str, phase: str, **details: Any) -> None:
        self.ledger.record(row["external_id"], row["connection"], status, phase=phase, kind=KIND, **details)

    def _lookup(self, alias: str) -> _Lookup:
        if alias not in self.lookups:
            self.lookups[alias] = _Lookup(self.client, self.companies[alias], self.options.page_size)
        return self.lookups[alias]

    def _push_company(self, alias: str, rows: list[dict[str, Any]]) -> None:
        todo: list[dict[str, Any]] = []
        by_job: dict[str, list[dict[str, Any]]] = {}
        to_find: list[dict[str, Any]] = []
        for row in rows:
            entry = self.entries.get(row["external_id"], {})
            if entry.get("status") == "submitted" and entry.get("remote_job"):
                by_job.setdefault(entry["remote_job"], []).append(row)
            elif entry.get("status") in ("pending", "unknown", "submitted"):
                to_find.append(row)
            else:
                todo.append(row)
        for sync_id, job_rows in by_job.items():
            self._follow(alias, sync_id, job_rows, answer=None)
        if to_find:
            todo.extend(self._resolve(alias, to_find, "resolve"))
        for send in range(1, self.sends + 1):
            if not todo:
                return
            retry: list[dict[str, Any]] = []
            for start in range(0, len(todo), self.options.batch_size):
                retry.extend(self._send_batch(alias, todo[start : start + self.options.batch_size], send))
            todo = retry
            if todo and send < self.sends:
                time.sleep(self.client.http.policy.backoff(send, self.client.http.rng))
        for row in todo:
            self._record(row, "failed", "resolve", error=f"not created after {self.sends} sends (looked up each time)")

    def _resolve(self, alias: str, rows: list[dict[str, Any]], phase: str) -> list[dict[str, Any]]:
        """Look open rows up; the found are `created`. Returns the rows that may be sent again now."""
        found = self._lookup(alias).find([r["external_id"] for r in rows], self._first_attempt(rows))
        again = []
        for row in rows:
            record = found.get(row["external_id"])
            if record is not None:
                self._created(row, record, phase)
            elif may_resend(
                self.entries.get(row["external_id"], {}).get("last_attempt_at"), self.options.resend_unknown_after
            ):
                again.append(row)
            else:
                self._record(row, "unknown", phase, error="not found yet; sent again only after resend_unknown_after")
        return again

    def _created(self, row: Mapping[str, Any], record: Mapping[str, Any], phase: str) -> None:
        company = record.get("rootfi_company_id") or self.companies[row["connection"]]
        platform_id = record.get("platform_id")
        rootfi_id = record.get("rootfi_id")
        self._record(
            row,
            "created",
            phase,
            record_id=record_key(company, platform_id) if platform_id is not None else None,
            remote_id=None if platform_id is None else str(platform_id),
            provider_id=None if rootfi_id is None else str(rootfi_id),
        )

    def _send_batch(self, alias: str, rows: list[dict[str, Any]], send: int) -> list[dict[str, Any]]:
        """POST one batch; returns the rows to send again (certainly not created)."""
        company_id = self.companies[alias]
        for row in rows:
            self._record(row, "pending", "intent", attempt=True)
            self.on_event("intent", row["external_id"])
        try:
            job = self.client.submit(RESOURCE, company_id, [payment_body(r, company_id) for r in rows])
        except OutcomeUnknown as exc:
            for row in rows:
                self._record(row, "unknown", "outcome", http_status=exc.status, error=exc.message)
            # whatever the answer, a job the server accepted runs in the background: give it time to end
            # before looking for its payments (a lookup too early would find nothing and send them twice)
            time.sleep(self.options.settle_seconds)
            sent_at = datetime.now(UTC)
            for row in rows:
                self.entries[row["external_id"]] = {"first_attempt_at": sent_at, "last_attempt_at": sent_at}
            return self._resolve(alias, rows, "resolve")
        except ApiError as exc:
            final = exc.status is not None and 400 <= exc.status < 500
            for row in rows:
                self._record(row, "rejected" if final else "failed", "outcome", http_status=exc.status,
                             error=exc.message)  # fmt: skip
            return []
        sync_id = str(job.get("sync_id") or job.get("upload_job_id") or "")
        for row in rows:
            self._record(row, "submitted", "submitted", http_status=200, remote_job=sync_id or None,
                         error=f"job {job.get('upload_job_id')} {job.get('status')}")  # fmt: skip
            self.on_event("submitted", row["external_id"])
        return self._follow(alias, sync_id, rows, answer=job)

    def _follow(
        self, alias: str, sync_id: str, rows: list[dict[str, Any]], answer: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        """Wait for a job to end and record each row's outcome; returns the rows to send again."""
        job = answer
        deadline = time.monotonic() + self.options.job_wait_seconds
        while job is None or job.get("status") not in JOB_ENDED:
            if time.monotonic() >= deadline:
                log.info("job %s still %s: followed up by the next push", sync_id, job and job.get("status"))
                return []
            if job is not None:
                time.sleep(self.options.poll_seconds)
            try:
                job = self.client.job_status(sync_id)
            except ApiError as exc:
                if exc.status == 404:  # the job is unknown to the server: the payments themselves tell
                    return self._resolve(alias, rows, "resolve")
                error = f"the job's state could not be read ({exc}); the next push follows it"
                for row in rows:  # still in the job: followed by the next run, never resent
                    self._record(row, "submitted", "follow", remote_job=sync_id or None, error=error)
                return []
        by_document, failures = _job_results(job)
        unmatched = [row for row in rows if row["external_id"] not in by_document]
        found = {}
        if unmatched:  # the payments themselves say which of these were created
            found = self._lookup(alias).find([r["external_id"] for r in unmatched], self._first_attempt(rows))
        again = []
        for row in rows:
            record = by_document.get(row["external_id"]) or found.get(row["external_id"])
            if record is not None:
                self._created(row, record, "outcome")
            elif job["status"] == "FAILED":
                reason = failures.get(row["external_id"]) or _one_reason(failures) or job.get("error") or ""
                self._record(row, "failed", "outcome", error=f"job {sync_id} FAILED: {reason}")
                again.append(row)
            else:
                reason = failures.get(row["external_id"]) or _one_reason(failures)
                if reason is None:
                    reason = f"failed inside job {sync_id} ({job.get('failed', 'some')} failed; Rootfi's reasons: " + (
                        "; ".join(sorted(set(failures.values()))) or "none given") + ")"  # fmt: skip
                self._record(row, "rejected", "outcome", error=reason)
        self.on_event("recorded", rows[0]["external_id"])
        return again

    def _first_attempt(self, rows: Sequence[Mapping[str, Any]]) -> datetime:
        """The earliest send of these rows (now if none is known): a lookup reads changes from there on."""
        sent = [self.entries.get(r["external_id"], {}).get("first_attempt_at") for r in rows]
        return min((t for t in sent if t is not None), default=datetime.now(UTC))


def _job_results(job: Mapping[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """A job's per-record results by `document_number`: the created records, and the reasons of the records
    it failed. Never by position: nothing says a job answers in the order it was sent. A failed result
    names its record only when it carries a `document_number` (at its top, or in an echo of the input);
    those that do not are collected under "" (their reason then stands for every unmatched row only when
    there is one reason)."""
    created: dict[str, dict[str, Any]] = {}
    failures: dict[str, str] = {}
    results = job.get("data")
    for result in results if isinstance(results, list) else []:
        if not isinstance(result, dict):
            continue
        response = result.get("response")
        if result.get("status") == "success" and isinstance(response, dict) and response.get("document_number"):
            created[str(response["document_number"])] = response
        elif result.get("status") != "success":
            echoed = next((v for v in (result.get("request"), result.get("data")) if isinstance(v, dict)), {})
            document = result.get("document_number") or echoed.get("document_number") or ""
            reason = str(result.get("error") or "failed in the job")
            if document:
                failures[str(document)] = reason
            else:
                failures.setdefault("", reason)
                if failures[""] != reason:
                    failures[""] = _MIXED
    return created, failures


_MIXED = "\0mixed"  # several reasons for records the job does not name


def _one_reason(failures: Mapping[str, str]) -> str | None:
    """The reason of the job's unnamed failures, when there is exactly one reason among them."""
    reason = failures.get("")
    return None if reason in (None, _MIXED) else reason
