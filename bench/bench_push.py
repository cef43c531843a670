"""Push throughput against the sandbox (every answer delayed 50 ms, like a real API's latency).

1. Rate limit on (100 requests per 60 s, the real server's): requests per minute achieved as a share of the
   limit, and how many 429s the server had to send. 200 payments = two full windows.
2. Rate limit off: payments per second with concurrency vs one at a time.

    .venv/bin/python bench/bench_push.py            # about 2.5 minutes (the rate-limited part takes 2)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

M = "accounting_raw_reconciliation"  # the models of the default dataset


def prepare(tmp: Path, sandbox, payments: int, tag: str) -> Path:
    """A loaded warehouse with `payments` queued payments of 1 minor unit on open invoices."""
    import dlt
    import duckdb

    from pipelines.load import run_load

    database = tmp / f"{tag}.duckdb"
    sandbox.settings.rate_limit = None
    run_load("panora", api_key=sandbox.api_key, connections=sandbox.store.tokens(), base_url=sandbox.url,
             destination=dlt.destinations.duckdb(credentials=str(database)), pipeline_name=f"bench_{tag}",
             pipelines_dir=str(tmp / f"pipelines_{tag}"))  # fmt: skip
    with duckdb.connect(str(database)) as con:
        invoices = con.execute(
            f"SELECT connection, invoice_id, currency FROM {M}.accounting__invoice_settlement "
            "WHERE status IN ('unpaid', 'partially_paid') AND open_minor >= 100"
        ).fetchall()
        rows = [
            (f"{tag}-{i}", *invoices[i % len(invoices)], 1) for i in range(payments)
        ]  # 1 minor unit each: no invoice runs out of open balance
        con.executemany(
            "INSERT INTO accounting_raw.outbound_payments "
            "(external_id, connection, invoice_id, currency, total_amount) VALUES (?, ?, ?, ?, ?)",
            rows,
        )
    return database


def push(sandbox, database: Path, concurrency: int):
    from pipelines.push import ProviderAccess, PushSettings, run_push

    started = time.perf_counter()
    access = {"panora": ProviderAccess(sandbox.api_key, sandbox.accounts(), sandbox.url)}
    summary = run_push(PushSettings(database=str(database), concurrency=concurrency, providers=access))
    return summary, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limited", type=int, default=200, help="payments for the rate-limited run")
    parser.add_argument("--unlimited", type=int, default=200, help="payments for the unlimited runs")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    import logging

    from pipelines.logs import setup_logging
    from sandbox.panora import PanoraSandbox, Settings, Store, seed_connections

    setup_logging()
    logging.getLogger("accounting_etl").setLevel(logging.WARNING)
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        PanoraSandbox(Store(seed_connections()), Settings(rate_limit=None)) as sandbox,
    ):
        tmp = Path(tmp_name)
        os.environ["SOURCES__RATE_BUDGET"] = str(tmp / "budget-limited.sqlite")  # not the machine's shared file
        limited_db = prepare(tmp, sandbox, args.limited, "limited")
        sequential_db = prepare(tmp, sandbox, args.unlimited, "sequential")
        concurrent_db = prepare(tmp, sandbox, args.unlimited, "concurrent")
        sandbox.settings.delay_seconds = 0.05

        sandbox.settings.rate_limit = 100
        sandbox.settings.rate_window_seconds = 60.0
        sandbox.reset_stats()
        print(f"rate limit on: pushing {args.limited} payments, concurrency 4 ...", flush=True)
        summary, seconds = push(sandbox, limited_db, concurrency=4)
        stats = sandbox.stats.snapshot()
        posts = stats["requests"].get("POST /accounting/payments", 0)
        per_minute = stats["total_requests"] / (seconds / 60)
        print(f"  {summary.outcomes}; {stats['total_requests']} requests ({posts} POSTs) in {seconds:.1f}s: "
              f"{per_minute:.1f} requests/minute, "
              f"429s sent by the server: {stats['throttled']}")  # fmt: skip
        windows = -(-stats["total_requests"] // 100)  # rate-limit windows the run needed at full use
        print(
            f"  budget used: {stats['total_requests']} requests in {windows} window(s) of 100 = "
            f"{stats['total_requests'] / (windows * 100):.0%} of the limit; over the elapsed time "
            f"{per_minute / 100:.0%} (the last window is cut short); 429s: {stats['throttled']}"
        )

        sandbox.settings.rate_limit = None
        # the client paces to the documented limit, and to the limit it learnt above, kept in the budget
        # file: the unlimited half says the server has no limit to speak of, in a budget of its own
        os.environ["SOURCES__RATE_BUDGET"] = str(tmp / "budget-unlimited.sqlite")
        os.environ["SOURCES__PANORA__RATE_LIMIT"] = "1000000000"
        sandbox.reset_stats()
        print(f"rate limit off: {args.unlimited} payments one at a time vs concurrency {args.concurrency} ...")
        one, one_s = push(sandbox, sequential_db, concurrency=1)
        many, many_s = push(sandbox, concurrent_db, concurrency=args.concurrency)
        print(f"  one at a time:  {one.outcomes} in {one_s:.1f}s = {args.unlimited / one_s:.1f} payments/s")
        print(f"  concurrency {args.concurrency}: {many.outcomes} in {many_s:.1f}s = {args.unlimited / many_s:.1f} "
              f"payments/s ({one_s / many_s:.1f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
