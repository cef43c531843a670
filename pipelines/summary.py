"""The record of one load run: what it fetched, wrote, rejected and marked deleted, how many requests and
retries it took. Printed at the end of a run and stored in `load_runs`, `load_run_tables` and
`load_run_scans` so analysts can query the history of loads."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import dlt
from dlt.sources import DltResource

from sources.common.scan import ScanResult

TEXT_ERROR: dict[str, Any] = {"error": {"data_type": "text", "nullable": True}}
SCAN_COLUMNS: dict[str, Any] = {**TEXT_ERROR, "cause": {"data_type": "text", "nullable": True}}
# columns that can be NULL in a run, typed so that they exist from the first run on
RUN_COLUMNS: dict[str, Any] = {
    **TEXT_ERROR,
    "load_id": {"data_type": "text", "nullable": True},
    "finished_at": {"data_type": "timestamp", "nullable": True},
    "extract_seconds": {"data_type": "double", "nullable": True},
    "normalize_seconds": {"data_type": "double", "nullable": True},
    "load_seconds": {"data_type": "double", "nullable": True},
    "transform_seconds": {"data_type": "double", "nullable": True},
    "models_error": {"data_type": "text", "nullable": True},
}


@dataclass
class LoadSummary:
    run_id: str
    pipeline_name: str
    provider: str
    started_at: datetime
    finished_at: datetime | None = None
    status: str = "running"  # ok | partial (a scan failed) | failed (the load failed)
    load_ids: list[str] = field(default_factory=list)
    rows_per_table: dict[str, int] = field(default_factory=dict)
    requests: dict[str, float] = field(default_factory=dict)
    scans: list[ScanResult] = field(default_factory=list)
    step_seconds: dict[str, float] = field(default_factory=dict)  # extract / normalize / load / transform
    models: dict[str, int] = field(default_factory=dict)  # reconciliation model -> rows
    models_skipped: str | None = None  # not built, and rightly so (e.g. a resource not loaded yet)
    models_up_to_date: bool = False  # left as they were: nothing they read changed
    models_error: str | None = None  # the models failed to build
    models_schema: str | None = None  # where the models are (`<dataset>_reconciliation`)
    # every scan failed for one thing to fix: the line that says what (`problem_exit`: 2 a setting, 1 a server)
    problem: str | None = None
    problem_exit: int = 0
    error: str | None = None

    @property
    def duration_seconds(self) -> float:
        end = self.finished_at or self.started_at
        return round((end - self.started_at).total_seconds(), 3)

    @property
    def failed_scans(self) -> list[ScanResult]:
        return [s for s in self.scans if s.status != "complete"]

    def run_row(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline_name": self.pipeline_name,
            "provider": self.provider,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": self.duration_seconds,
            "status": self.status,
            "load_id": self.load_ids[-1] if self.load_ids else None,
            "connections": len({s.connection for s in self.scans}),
            "rows_loaded": sum(self.rows_per_table.values()),
            "records_seen": sum(s.records for s in self.scans),
            "records_rejected": sum(s.rejected for s in self.scans),
            "records_deleted": sum(s.deleted for s in self.scans),
            "requests": int(self.requests.get("requests", 0)),
            "retries": int(self.requests.get("retries", 0)),
            "throttled": int(self.requests.get("throttled", 0)),
            "paced_seconds": float(self.requests.get("paced_seconds", 0.0)),
            "bytes_received": int(self.requests.get("bytes_received", 0)),
            "extract_seconds": self.step_seconds.get("extract"),
            "normalize_seconds": self.step_seconds.get("normalize"),
            "load_seconds": self.step_seconds.get("load"),
            "transform_seconds": self.step_seconds.get("transform"),
            "models_built": len(self.models),
            "models_error": self.models_error,  # the models failed to build after a good load
            "error": self.error,
        }

    def resources(self) -> list[DltResource]:
        """The summary as three small append-only tables, loaded after the data."""
        tables = [{"run_id": self.run_id, "table_name": t, "rows": n} for t, n in sorted(self.rows_per_table.items())]
        scans = [
            {"run_id": self.run_id, **{k: v for k, v in asdict(s).items() if k not in ("rows", "position", "started")}}
            for s in self.scans
        ]
        return [
            dlt.resource([self.run_row()], name="load_runs", write_disposition="append", columns=RUN_COLUMNS),
            dlt.resource(tables, name="load_run_tables", write_disposition="append"),
            dlt.resource(scans, name="load_run_scans", write_disposition="append", columns=SCAN_COLUMNS),
        ]

    def render(self) -> str:
        """The few lines printed at the end of a run."""
        row = self.run_row()
        lines = [
            f"load {self.status}: {row['rows_loaded']:,} rows written from {row['records_seen']:,} records "
            f"over {row['connections']} connection(s) in {self.duration_seconds:.1f}s",
            f"  requests {row['requests']:,}, retries {row['retries']:,}, throttled {row['throttled']:,}, "
            f"paced {row['paced_seconds']:.1f}s, received {row['bytes_received'] / 1e6:.1f} MB",
            f"  rejected records {row['records_rejected']:,}, marked deleted {row['records_deleted']:,}",
        ]
        if self.step_seconds:
            lines.append("  steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.step_seconds.items()))
        if self.rows_per_table:
            width = max(len(t) for t in self.rows_per_table)
            lines.append("  rows per table:")
            lines.extend(f"    {t:<{width}}  {n:>9,}" for t, n in sorted(self.rows_per_table.items()))
        if self.models:
            done = "up to date, nothing they read changed" if self.models_up_to_date else "rebuilt"
            lines.append(f"  reconciliation models {done}: {len(self.models)} (schema {self.models_schema})")
        if self.models_skipped:
            lines.append(f"  reconciliation models not built: {self.models_skipped}")
        if self.models_error:
            lines.append(f"  ERROR {self.models_error}")
        for scan in self.failed_scans:
            lines.append(f"  FAILED {scan.resource} [{scan.connection}]: {scan.error}")
        if self.error:
            lines.append(f"  ERROR {self.error}")
        return "\n".join(lines)
