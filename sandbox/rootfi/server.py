"""A Rootfi-compatible HTTP server on 127.0.0.1 (as Rootfi's documentation and code describe it).

Reproduced: the `api_key` header; `GET /accounting/{invoices,invoice_payments,tracking_categories,contacts}` with
`limit`, an opaque base64 `next` cursor, `rootfi_company_id[eq]`, `rootfi_updated_at[gte]`,
`include_deleted_records=true`, `sort[rootfi_updated_at]=ASC` and `expand=line_items` (invoices carry
their lines only when expanded), in the envelope `{data, next, prev, total_count}`; writes through
`POST /accounting/invoice_payments` with `{"company_id", "data": [...]}`, answered with a job that goes
CREATED -> RUNNING -> SUCCESS/FAILED in the background, per-record results (`success` with the created
record, or `failed` with an error) and a `sync_id` to poll at `GET /core/syncs/{sync_id}` (counts of
success, failed and pending); the HTTP status never says how the records fared. With `run_async=true` the
answer comes at once; without, the server waits up to `sync_wait_seconds` for the job to end and answers
with its state then (a long job is still RUNNING in that answer). A rate limit of 100 requests a minute per API key.

Added for tests: faults (shared with the Panora sandbox, plus `job_failed`: the next job ends FAILED),
switchable job timings, counters of rows served and of records created per `document_number`, and the
query of every list request (`GET /_sandbox/requests`).
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sandbox.http import Fault, JsonHandler, SandboxState
from sandbox.rootfi.seed import SANDBOX_API_KEY, iso
from sandbox.rootfi.store import KINDS, Job, Store

API_KEY_HEADER = "api_key"


@dataclass
class Settings:
    rate_limit: int | None = 100  # requests per window per API key; None turns it off
    rate_window_seconds: float = 60.0
    default_limit: int = 100
    max_limit: int = 1000
    delay_seconds: float = 0.0
    job_start_seconds: float = 0.05  # CREATED -> RUNNING
    job_run_seconds: float = 0.1  # RUNNING -> SUCCESS/FAILED
    sync_wait_seconds: float = 2.0  # how long a POST without run_async waits for its job
    job_results_order: str = "sent"  # or "reversed": nothing obliges a job to answer in the order it was sent


class RootfiSandbox(SandboxState):
    """The Rootfi-compatible server and its state."""

    def __init__(
        self, store: Store | None = None, settings: Settings | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(settings or Settings(), _Handler, host, port)
        self.store = store or Store()
        self.api_key = SANDBOX_API_KEY
        self.list_requests: list[dict[str, str]] = []
        self.served: dict[str, int] = {kind: 0 for kind in KINDS}

    def accounts(self) -> dict[str, int]:
        """What a user configures as the pipeline's companies: alias -> company id."""
        return self.store.company_ids()

    def reset_stats(self) -> None:
        super().reset_stats()
        with self.lock:
            self.list_requests.clear()
            self.served = {kind: 0 for kind in KINDS}

    def start_job(self, job: Job, fail_whole_job: str | None) -> None:
        settings = self.settings

        def work() -> None:
            time.sleep(settings.job_start_seconds)
            job.status = "RUNNING"
            time.sleep(settings.job_run_seconds)
            self.store.run_job(job, fail_whole_job, reverse=settings.job_results_order == "reversed")
            with self.lock:
                self.stats.created["invoice_payments"] += sum(r["status"] == "success" for r in job.results)

        threading.Thread(target=work, name=f"rootfi-job-{job.upload_job_id}", daemon=True).start()


def encode_cursor(after: tuple[str, int]) -> str:
    return base64.b64encode(json.dumps({"u": after[0], "i": after[1]}).encode()).decode()


def decode_cursor(cursor: str) -> tuple[str, int] | None:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return str(data["u"]), int(data["i"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None


class _Handler(JsonHandler):
    server_version = "RootfiSandbox/1.0"
    truncated_payload: ClassVar[Any] = {"data": [{"rootfi_id": 1, "padding": "x" * 200}], "next": None}
    invalid_body = b'{"data": [{"rootfi_id": '

    @property
    def sandbox(self) -> RootfiSandbox:
        return self.server.sandbox  # type: ignore[attr-defined]

    def error_payload(self, status: int, message: str) -> Any:
        return {"status": status, "error": message}

    def route(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        sb = self.sandbox
        route_name = "/core/syncs/{id}" if path.startswith("/core/syncs/") else path
        sb.count(f"{method} {route_name}")
        headers = self.rate_limit(f"key {self.headers.get(API_KEY_HEADER)}")  # per API key
        if headers is None:
            return
        company = query.get("rootfi_company_id[eq]")
        alias = next((a for a, c in sb.store.aliases.items() if str(c) == company), None)
        fault = sb.take_fault(method, path, alias)
        if fault is not None and fault.kind != "job_failed" and not fault.after_write and self.fire(fault, headers):
            return
        if sb.settings.delay_seconds:
            time.sleep(sb.settings.delay_seconds)
        if self.headers.get(API_KEY_HEADER) != sb.api_key:
            self.send_error_json(401, "Invalid or missing api_key", headers)
            return
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 2 and parts[0] == "accounting" and parts[1] in KINDS:
            self._list(parts[1], query, headers)
        elif method == "POST" and path == "/accounting/invoice_payments":
            self._write(body, query, headers, fault)
        elif method == "GET" and len(parts) == 3 and parts[:2] == ["core", "syncs"]:
            job = sb.store.jobs.get(parts[2])
            if job is None:
                self.send_error_json(404, f"Sync {parts[2]} not found", headers)
            else:
                self.send_json(200, {"data": job.counts()}, headers)
        else:
            self.send_error_json(404, f"Cannot {method} {path}", headers)

    def _list(self, kind: str, query: dict[str, str], headers: dict[str, str]) -> None:
        sb = self.sandbox
        with sb.lock:
            sb.list_requests.append({"kind": kind, **query})
        try:
            limit = int(query.get("limit", sb.settings.default_limit))
            if not 1 <= limit <= sb.settings.max_limit:
                raise ValueError
            company = query.get("rootfi_company_id[eq]")
            company_id = int(company) if company else None
        except ValueError:
            self.send_error_json(400, "Invalid query parameters", headers)
            return
        after = None
        if query.get("next"):
            after = decode_cursor(query["next"])
            if after is None:
                self.send_error_json(400, "Invalid cursor", headers)
                return
        since = query.get("rootfi_updated_at[gte]")
        if since:
            since = _normalized_stamp(since)
            if since is None:
                self.send_error_json(400, "rootfi_updated_at[gte] must be an ISO 8601 date-time", headers)
                return
        include_deleted = query.get("include_deleted_records", "").lower() == "true"
        rows, more, total = sb.store.page(kind, company_id, since, include_deleted, after, limit)
        if kind == "invoices" and query.get("expand") != "line_items":
            for row in rows:
                row.pop("line_items", None)
        with sb.lock:
            sb.served[kind] += len(rows)
        next_cursor = encode_cursor((rows[-1]["rootfi_updated_at"], rows[-1]["rootfi_id"])) if more else None
        self.send_json(
            200, {"data": rows, "next": next_cursor, "prev": query.get("next"), "total_count": total}, headers
        )

    def _write(self, body: bytes, query: dict[str, str], headers: dict[str, str], fault: Fault | None) -> None:
        sb = self.sandbox
        try:  # amounts as the exact decimals they were written as
            payload = json.loads(body or b"null", parse_float=Decimal)
        except json.JSONDecodeError:
            self.send_error_json(400, "Body must be JSON", headers)
            return
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list) or not payload["data"]:
            self.send_error_json(400, "Body must be {company_id, data: [records]}", headers)
            return
        company_id = payload.get("company_id")
        if company_id not in sb.store.companies:
            self.send_error_json(400, f"Unknown company_id {company_id!r}", headers)
            return
        job = sb.store.new_job(company_id, payload["data"])
        failing = fault is not None and fault.kind == "job_failed"
        sb.start_job(job, "The accounting platform rejected the batch (sandbox fault)" if failing else None)
        if fault is not None and fault.after_write:
            # an answer lost once the write is done: the job has run (a job still running when its client looks
            # is `job_run_seconds`, set long), so what the client finds next does not hang on thread timing
            job.done.wait(sb.settings.sync_wait_seconds)
            if self.fire(fault, headers):
                return
        if query.get("run_async", "").lower() != "true":
            job.done.wait(sb.settings.sync_wait_seconds)
        self.send_json(200, {"data": job.document()}, headers)

    def own_admin(self, method: str, path: str) -> None:
        sb = self.sandbox
        if path == "/_sandbox/companies" and method == "GET":
            self.send_json(200, {"api_key": sb.api_key, "companies": sb.store.company_ids()})
        elif path == "/_sandbox/requests" and method == "GET":
            with sb.lock:
                self.send_json(200, {"requests": list(sb.list_requests), "served": dict(sb.served)})
        else:
            super().own_admin(method, path)


def _normalized_stamp(value: str) -> str | None:
    """An ISO 8601 date-time as the store writes them (UTC, milliseconds, `Z`), for string comparison."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return iso(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
