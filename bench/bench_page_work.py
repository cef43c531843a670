"""What a page's per-record work costs the process that runs the scan, and what moving it into worker
processes would give: the question behind the load-rate target of big accounts (README, "Big accounts").

The work is what a scan does to a page that needs no state of the scan: decode the body (orjson), hash each
record's content, build the page's arrow tables. The same real pages of 1,000 payments, taken once from the
Panora sandbox, go through it:
  in-process   one after the other, as the scan does today (it holds the interpreter lock throughout)
  pool of N    raw bytes sent to N worker processes, arrow tables and hashes sent back (pickled)
For each: wall milliseconds a page, and the CPU milliseconds a page of the main process (what would still
hold its interpreter lock). The median of `--repeat` passes, and the ratio to in-process, in one run.

    .venv/bin/python bench/bench_page_work.py               # 40 pages, 3 passes
    .venv/bin/python bench/bench_page_work.py --pages 100 --repeat 5
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections
from sources.common.reading.undeclared import ColumnKinds
from sources.common.stored.changes import record_hash
from sources.common.tables.arrow_path import ArrowPageBuilder, builder_for
from sources.panora.objects import OBJECTS

PAGE_SIZE = 1000
SPEC = OBJECTS["payments"]
_builder: ArrowPageBuilder | None = None


def sandbox_pages(pages: int) -> list[bytes]:
    """The bodies of every page of payments of one connection holding `pages` pages of them, as sent."""
    specs = (ConnectionSpec("bench", "xero", ("USD", "EUR", "JPY"), invoices=10, payments=pages * PAGE_SIZE),)
    store = Store(seed_connections(seed=11, specs=specs))
    bodies: list[bytes] = []
    with PanoraSandbox(store, Settings(rate_limit=None)) as sandbox:
        headers = {"x-api-key": sandbox.api_key, "x-connection-token": store.tokens()["bench"]}
        with httpx.Client(base_url=sandbox.url, headers=headers, timeout=120) as client:
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            while True:
                bodies.append(client.get("/accounting/payments", params=params).content)
                cursor = orjson.loads(bodies[-1])["next_cursor"]
                if not cursor:
                    return bodies
                params["cursor"] = base64.b64encode(cursor.encode()).decode()


def page_work(body: bytes) -> tuple[dict[str, Any], list[str]]:
    """Decode, hash and build one page: its arrow tables by name, and its records' content hashes."""
    global _builder
    _builder = _builder or builder_for(SPEC)
    assert _builder is not None, "payments have a columnar builder"
    records = orjson.loads(body)["data"]
    hashes = [record_hash(record, SPEC.volatile, SPEC.nested_lists) for record in records]
    built = _builder.try_build(records, hashes, "bench", ColumnKinds())
    assert built is not None, "the sandbox's payments build"
    return {name: table for name, (table, _) in built.items()}, hashes


def timed(run: Any) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    bodies = sandbox_pages(args.pages)
    print(f"{len(bodies)} pages of up to {PAGE_SIZE} payments, {sum(map(len, bodies)) / 1e6:.1f} MB as sent")
    page_work(bodies[0])  # the builder made, as a scan makes it once
    runs: dict[str, list[tuple[float, float]]] = {}
    for _ in range(args.repeat):
        runs.setdefault("in-process", []).append(timed(lambda: [page_work(b) for b in bodies]))
        for workers in (1, 2):
            with ProcessPoolExecutor(workers) as pool:
                list(pool.map(page_work, bodies[:workers]))  # the workers started, their imports done
                runs.setdefault(f"pool of {workers}", []).append(
                    timed(lambda pool=pool: list(pool.map(page_work, bodies)))
                )
    base = statistics.median(wall for wall, _ in runs["in-process"])
    print(f"{'':12s} {'wall ms/page':>13s} {'main CPU ms/page':>17s} {'vs in-process':>14s}")
    for name, measured in runs.items():
        wall = statistics.median(w for w, _ in measured)
        cpu = statistics.median(c for _, c in measured)
        per_page = 1000 / len(bodies)
        print(f"{name:12s} {wall * per_page:13.1f} {cpu * per_page:17.1f} {base / wall:13.2f}x")


if __name__ == "__main__":
    main()
