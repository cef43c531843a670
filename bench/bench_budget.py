"""Many connections, many workers, one rate budget: wall time against the floor the server's limit allows.

The Panora sandbox limits as the real server does (a sliding log per route and client, refused requests
counted), here at `--limit` requests per `--window` seconds per route. It holds `--connections` small accounts.
A worker is a process that takes the next group of `--group` connections and loads them in one `run_load`
(one dlt pipeline per group, as a partition of connections would); every worker draws on the per-machine
budget. For each number of workers and group size, in one run: wall time, requests, 429s, the floor (the
busiest route's requests at the allowed rate) and the share of the floor reached (floor / wall time).

    .venv/bin/python bench/bench_budget.py                      # 200 connections; 1, 2, 4 workers; groups of 1, 10, 50
    .venv/bin/python bench/bench_budget.py --workers 4 --groups 10 --connections 60
    .venv/bin/python bench/bench_budget.py --connections 2 --workers 1 --groups 2 --payments 400 --invoices 300 \
        --page-size 20 --limit 10 --window 10                      # one long load of two connections
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load_group(args: dict[str, Any]) -> int:
    """A worker's task: one group of connections in one load (runs in a worker process); returns requests."""
    import logging

    import dlt

    from pipelines.load import run_load

    logging.getLogger("accounting_etl").setLevel(logging.WARNING)
    summary = run_load(
        "panora",
        api_key=args["api_key"],
        connections=args["connections"],
        only_connections=args["aliases"],
        base_url=args["url"],
        destination=dlt.destinations.duckdb(credentials=args["database"]),
        pipeline_name=f"bench_group_{args['group']}",
        pipelines_dir=args["pipelines_dir"],
        source_options={
            "rate_limit": args["limit"],
            "rate_window_seconds": args["window"],
            "page_size": args["page_size"],
        },
        transform=False,
    )
    assert summary.status == "ok", summary.render()
    return int(summary.requests["requests"])


def run(sandbox: Any, tmp: Path, workers: int, group: int, args: argparse.Namespace) -> dict[str, Any]:
    sandbox.reset_stats()
    sandbox.limiter.clear()
    aliases = sorted(sandbox.accounts())
    tag = f"w{workers}_g{group}"
    os.environ["SOURCES__RATE_BUDGET"] = str(tmp / f"budget_{tag}.sqlite")  # a fresh per-machine budget
    tasks = [
        {
            "api_key": sandbox.api_key,
            "connections": sandbox.accounts(),
            "aliases": aliases[start : start + group],
            "group": start // group,
            "url": sandbox.url,
            "database": str(tmp / f"{tag}_{start // group % workers}.duckdb"),  # one file per worker slot
            "pipelines_dir": str(tmp / f"pipelines_{tag}"),
            "limit": args.limit,
            "window": args.window,
            "page_size": args.page_size,
        }
        for start in range(0, len(aliases), group)
    ]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        requests = sum(pool.map(load_group, tasks))
    seconds = time.perf_counter() - started
    by_route = sandbox.stats.snapshot()["requests"]
    floor = max(by_route.values()) * args.window / args.limit
    return {"workers": workers, "group": group, "seconds": seconds, "requests": requests,
            "throttled": sandbox.stats.throttled, "floor": floor}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--groups", default="1,10,50")
    parser.add_argument("--limit", type=int, default=50, help="requests per window per route")
    parser.add_argument("--window", type=float, default=2.0, help="seconds")
    parser.add_argument("--payments", type=int, default=4, help="payments per connection")
    parser.add_argument("--invoices", type=int, default=3, help="invoices per connection")
    parser.add_argument("--page-size", type=int, default=1000, help="rows per request")
    args = parser.parse_args()

    from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections

    specs = tuple(
        ConnectionSpec(f"c{n:03d}", "xero", ("EUR",), invoices=args.invoices, payments=args.payments)
        for n in range(args.connections)
    )
    settings = Settings(rate_limit=args.limit, rate_window_seconds=args.window)
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        PanoraSandbox(Store(seed_connections(seed=3, specs=specs)), settings) as sandbox,
    ):
        for workers in (int(w) for w in args.workers.split(",")):
            for group in (int(g) for g in args.groups.split(",")):
                print(f"{workers} worker(s), groups of {group} ...", flush=True)
                rows.append(run(sandbox, Path(tmp), workers, group, args))
    print(f"\n{args.connections} connections, {args.limit} requests per {args.window:g}s per route (sliding log)")
    head = ("workers", 7), ("group", 5), ("seconds", 8), ("floor", 6), ("of floor", 8), ("requests", 8), ("429s", 5)
    print(" ".join(f"{name:>{width}}" for name, width in head), f"{'429 %':>6}")
    for r in rows:
        share = r["floor"] / r["seconds"]
        print(f"{r['workers']:>7} {r['group']:>5} {r['seconds']:>8.1f} {r['floor']:>6.1f} {share:>8.0%} "
              f"{r['requests']:>8} {r['throttled']:>5} {r['throttled'] / max(1, r['requests']):>6.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
