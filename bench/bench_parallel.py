"""Many connections, loaded by 1, 2 and 4 parallel workers into DuckDB and into PostgreSQL.

The Panora sandbox (rate limit off) holds `--connections` accounts of `--payments` payments each. A worker
is a process that takes the next connection and loads its payments in that connection's own dlt pipeline,
as the Dagster partitions do; the writes take turns (`pipelines/warehouse/identity.py`), the fetching overlaps.
Each variant loads into a fresh DuckDB file or a fresh PostgreSQL dataset; all variants run in one go,
`--repeat` times each, and the medians are compared with 1 worker in the same run.

    .venv/bin/python bench/bench_parallel.py                    # 50 x 2,000 payments, DuckDB only
    ACCOUNTING_TEST_POSTGRES=postgresql://user:pass@127.0.0.1:5432/db .venv/bin/python bench/bench_parallel.py
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_one(args: dict[str, Any]) -> tuple[str, int, float]:
    """A worker's task: one connection's payments (runs in a worker process)."""
    import logging

    import dlt

    from pipelines.load import connection_pipeline_name, run_load

    logging.getLogger("accounting_etl").setLevel(logging.WARNING)
    if args["target"] == "duckdb":
        destination = dlt.destinations.duckdb(credentials=args["database"])
    else:
        destination = dlt.destinations.postgres(credentials=args["database"])
    started = time.perf_counter()
    summary = run_load(
        "panora",
        resources=["payments"],
        api_key=args["api_key"],
        connections=args["connections"],
        only_connections=[args["alias"]],
        base_url=args["url"],
        destination=destination,
        dataset_name=args["dataset"],
        pipeline_name=connection_pipeline_name("panora", args["alias"]),
        pipelines_dir=args["pipelines_dir"],
        transform=False,
    )
    assert summary.status == "ok", summary.render()
    return args["alias"], sum(s.records for s in summary.scans), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections

    postgres = os.environ.get("ACCOUNTING_TEST_POSTGRES")
    targets = ["duckdb", *(["postgres"] if postgres else [])]
    specs = tuple(
        ConnectionSpec(f"acct-{i:02d}", "quickbooks", ("USD", "EUR"), invoices=5, payments=args.payments)
        for i in range(args.connections)
    )
    started = time.perf_counter()
    store = Store(seed_connections(specs=specs))
    print(
        f"sandbox: {args.connections} connections x {args.payments:,} payments ({time.perf_counter() - started:.0f}s)"
    )
    workers = [int(w) for w in args.workers.split(",")]
    results: dict[tuple[str, int], list[float]] = {}
    context = multiprocessing.get_context("spawn")
    with PanoraSandbox(store, Settings(rate_limit=None)) as sandbox, tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeat):
            for target in targets:
                for count in workers:
                    run = uuid.uuid4().hex[:8]
                    dataset = f"bench_{run}"
                    database = str(Path(tmp) / f"{run}.duckdb") if target == "duckdb" else postgres
                    tasks = [
                        {
                            "target": target,
                            "database": database,
                            "dataset": dataset,
                            "api_key": sandbox.api_key,
                            "connections": store.tokens(),
                            "url": sandbox.url,
                            "alias": alias,
                            "pipelines_dir": str(Path(tmp) / run),
                        }
                        for alias in store.tokens()
                    ]
                    began = time.perf_counter()
                    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
                        done = list(pool.map(load_one, tasks))
                    seconds = time.perf_counter() - began
                    records = sum(r[1] for r in done)
                    assert records == args.connections * args.payments, records
                    results.setdefault((target, count), []).append(seconds)
                    print(f"  {target:<8} {count} worker(s): {seconds:6.1f}s, {records / seconds:8,.0f} records/s")
                    if target == "postgres":
                        _drop(postgres, dataset)
    records = args.connections * args.payments
    print(f"\n{records:,} payments over {args.connections} connections; median of {args.repeat} run(s):")
    print(f"{'target':<9} {'workers':>7} {'seconds':>8} {'records/s':>10} {'vs 1 worker':>12}")
    for target in targets:
        base = statistics.median(results[(target, workers[0])])
        for count in workers:
            median = statistics.median(results[(target, count)])
            print(f"{target:<9} {count:>7} {median:>8.1f} {records / median:>10,.0f} {base / median:>11.2f}x")


def _drop(url: str, dataset: str) -> None:
    import psycopg2

    with psycopg2.connect(url) as con, con.cursor() as cursor:
        cursor.execute(f"DROP SCHEMA IF EXISTS {dataset} CASCADE")
        cursor.execute(f"DROP SCHEMA IF EXISTS {dataset}_staging CASCADE")


if __name__ == "__main__":
    main()
