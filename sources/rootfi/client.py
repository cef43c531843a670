"""How the Rootfi API is spoken to: the `api_key` header, the opaque `next` cursor, the filters of an
incremental scan, and the write jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sources.common.errors import ApiError, OutcomeUnknown
from sources.common.http.client import ProviderClient
from sources.common.http.pagination import follow_cursor
from sources.rootfi.settings import API_KEY_HEADER, ENDPOINTS, RATE_LIMIT, RATE_WINDOW_SECONDS, SYNC_STATUS


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def updated_at(record: Any) -> datetime | None:
    """A record's `rootfi_updated_at`, or None when it has none that reads as a date-time (the normalizer
    names such a record's bad field)."""
    stamp = record.get("rootfi_updated_at") if isinstance(record, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        return None


class RootfiClient(ProviderClient):
    """One API key, many companies: every list request names its company (`rootfi_company_id[eq]`)."""

    title = "Rootfi"
    api_key_header = API_KEY_HEADER
    secret_headers = (API_KEY_HEADER,)
    rate_limit = RATE_LIMIT
    rate_window_seconds = RATE_WINDOW_SECONDS

    def budget_key(self, route: str) -> str:
        """Rootfi counts per API key, whatever the route."""
        return f"rootfi {self.host} key {self.api_key_digest}"

    def pages(
        self,
        resource: str,
        company_id: str,
        page_size: int,
        updated_since: datetime | None = None,
        on_total: Callable[[int], None] | None = None,
        drop_repeats: bool = True,
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of a list endpoint for one company, oldest change first, deleted records included
        (as rows with `rootfi_deleted_at`); with `updated_since`, only records changed at or after it.
        `on_total` hears the API's `total_count` of the first page (for progress). Rows are de-duplicated
        on `rootfi_id` across the scan (`row_key`), unless `drop_repeats` is False (a caller that drops them
        itself)."""
        params: dict[str, Any] = {
            "limit": page_size,
            "rootfi_company_id[eq]": company_id,
            "include_deleted_records": "true",
            "sort[rootfi_updated_at]": "ASC",
        }
        if resource == "invoices":
            params["expand"] = "line_items"
        if updated_since is not None:
            params["rootfi_updated_at[gte]"] = iso_utc(updated_since)
        path = ENDPOINTS[resource]

        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            body = self.http.get_json(path, params=params if cursor is None else {**params, "next": cursor})
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                raise ApiError("GET", path, 200, "the answer is not a list envelope {data, next}")
            next_cursor = body.get("next")
            if next_cursor is not None and not isinstance(next_cursor, str):
                raise ApiError("GET", path, 200, "the answer's `next` cursor is not text")
            total = body.get("total_count")
            if cursor is None and on_total is not None and type(total) is int and total >= 0:
                on_total(total)
            return body["data"], next_cursor or None

        return follow_cursor(fetch, row_key, resource, drop_repeats=drop_repeats)

    def submit(self, resource: str, company_id: str, records: list[dict[str, Any]]) -> dict[str, Any]:
        """POST records as one write job; returns the job (`status`, `upload_job_id`, `sync_id`, `data`).
        Raises `OutcomeUnknown` when it cannot tell whether the job was created."""
        path = ENDPOINTS[resource]
        body = self.http.request_json(
            "POST", path, json_body={"company_id": _company(company_id), "data": records}, idempotent=False
        )
        job = _job(body)
        if job is None:  # a 2xx that is no job: the job may well exist, so this is no failure
            raise OutcomeUnknown("POST", path, 200, "the answer is not a job {data: {status, ...}}")
        return job

    def job_status(self, sync_id: str) -> dict[str, Any]:
        """A job's state and counts (`status`, `success`, `failed`, `pending`)."""
        path = SYNC_STATUS.format(sync_id=sync_id)
        job = _job(self.http.get_json(path))
        if job is None:
            raise ApiError("GET", path, 200, "the answer is not a job {data: {status, ...}}")
        return job


def _job(body: Any) -> dict[str, Any] | None:
    job = body.get("data") if isinstance(body, dict) else None
    return job if isinstance(job, dict) and isinstance(job.get("status"), str) else None


def _company(company_id: str) -> Any:
    """Company ids are configured as text; the API takes the number it gave out."""
    return int(company_id) if str(company_id).isdigit() else company_id


def row_key(row: Any) -> str | None:
    """A row's `rootfi_id` as text, for de-duplication; None when it has none."""
    value = row.get("rootfi_id") if isinstance(row, dict) else None
    return None if value is None or isinstance(value, bool) else str(value)
