"""Live progress for a person at a terminal: per connection (load) or per provider (push), what is done so
far, the rate, and a total and ETA where the API gives one (Rootfi's `total_count`).

Drawn with rich (`rich.live.Live`) on standard error, and only when standard error is a terminal: under
cron, Dagster or CI the plain log lines stay exactly as they are, with no escape codes. While the display
is live, log lines go through the same rich console (`pipelines/logs.py`), so they print above it instead
of tearing it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pipelines.logs import console, is_terminal
from sources.common.http.client import RequestStats
from sources.common.scan import ScanLog


def _rate_and_eta(done: int, total: int | None, seconds: float) -> tuple[str, str]:
    rate = done / seconds if seconds > 0 else 0.0
    if not total or total <= done or rate <= 0:
        return f"{rate:,.0f}/s", "-"
    left = (total - done) / rate
    return f"{rate:,.0f}/s", f"{left:,.0f}s" if left < 120 else f"{left / 60:,.1f}m"


def load_table(provider: str, scans: ScanLog, stats: RequestStats, started: float) -> Any:
    """One row per connection: the table it is on, records and pages so far, the rate, total and ETA."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"loading {provider}", title_justify="left", expand=False)
    for column, justify in (("connection", "left"), ("table", "left"), ("records", "right"), ("pages", "right"),
                            ("rate", "right"), ("of", "right"), ("ETA", "right"), ("", "left")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    now = time.monotonic()
    by_connection: dict[str, list[Any]] = {}
    for result in list(scans.results):
        by_connection.setdefault(result.connection, []).append(result)
    for connection, results in by_connection.items():
        current = results[-1]  # the table its scans are on now (or ended with)
        total = scans.expected_total(current.resource, connection)
        elapsed = current.seconds or max(0.001, now - current.started)
        rate, eta = _rate_and_eta(current.records, total, elapsed)
        state = {"complete": "[green]done[/]", "failed": "[red]failed[/]"}.get(current.status, "")
        records, pages = sum(r.records for r in results), sum(r.pages for r in results)
        table.add_row(escape(connection), current.resource, f"{records:,}", f"{pages:,}", rate,
                      f"{total:,}" if total else "-", eta, state)  # fmt: skip
    counts = stats.as_dict()
    table.caption = (
        f"{int(counts['requests']):,} requests, {int(counts['retries']):,} retries, {int(counts['throttled']):,} "
        f"throttled, {now - started:,.0f}s"
    )
    return table


@dataclass
class PushCounts:
    """The rows one push sends, per provider, and the latest ledger status of each (the ledger reports
    every status it writes): a row is done once it is past its intent (`pending`)."""

    provider_of: dict[str, str] = field(default_factory=dict)  # external_id -> provider
    latest: dict[str, str] = field(default_factory=dict)  # external_id -> its latest status in this run

    def recorded(self, external_id: str, status: str) -> None:
        if external_id in self.provider_of:
            self.latest[external_id] = status


def push_table(counts: PushCounts, started: float) -> Any:
    from rich.table import Table

    table = Table(title="pushing", title_justify="left", expand=False)
    for column in ("provider", "done", "of", "rate", "ETA"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    seconds = max(0.001, time.monotonic() - started)
    latest = dict(counts.latest)
    for provider in sorted(set(counts.provider_of.values())):
        ids = [e for e, p in counts.provider_of.items() if p == provider]
        done = sum(1 for e in ids if latest.get(e, "pending") != "pending")
        rate, eta = _rate_and_eta(done, len(ids), seconds)
        table.add_row(provider, f"{done:,}", f"{len(ids):,}", rate, eta)
    by_status: dict[str, int] = {}
    for status in latest.values():
        by_status[status] = by_status.get(status, 0) + 1
    table.caption = ", ".join(f"{status} {n:,}" for status, n in sorted(by_status.items()))
    return table


@contextmanager
def live(render: Callable[[], Any]) -> Iterator[None]:
    """Keep `render()` drawn on the terminal while the block runs; nothing at all off a terminal."""
    if not is_terminal():
        yield
        return
    from rich.live import Live

    with Live(console=console(), get_renderable=render, refresh_per_second=4, transient=False,
              redirect_stdout=False, redirect_stderr=False):  # fmt: skip
        yield
