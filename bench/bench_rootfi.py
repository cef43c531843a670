"""Rootfi: what an incremental load saves against a full scan, on the Rootfi sandbox (rate limit off).

One sandbox, one DuckDB file, all in one run:
  1. a first (full) load of every company;
  2. `--changed` percent of the invoices and payments are changed upstream (and a few deleted);
  3. an incremental load, then a `--full-refresh` load of the same state, repeated `--repeat` times with a
     new round of changes before each pair, so both see the same amount of change.

Printed per variant: median wall time, rows the sandbox served, requests, and records written. The
comparison that matters is incremental vs full refresh in the same run.

    .venv/bin/python bench/bench_rootfi.py                       # 20k invoices, ~23k payments
    .venv/bin/python bench/bench_rootfi.py --scale 50 --changed 5
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=300.0, help="multiply the sandbox's seeded record counts")
    parser.add_argument("--changed", type=float, default=1.0, help="percent of records changed between loads")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import dlt

    from pipelines.load import run_load
    from pipelines.logs import setup_logging
    from sandbox.rootfi import start_sandbox

    setup_logging(False)
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp, start_sandbox(rate_limit=None, scale=args.scale) as sandbox:
        store = sandbox.store
        database = str(Path(tmp) / "bench.duckdb")

        def load(full_refresh: bool) -> dict[str, float]:
            sandbox.reset_stats()
            started = time.perf_counter()
            summary = run_load(
                "rootfi",
                api_key=sandbox.api_key,
                connections=store.company_ids(),
                base_url=sandbox.url,
                destination=dlt.destinations.duckdb(credentials=database),
                pipelines_dir=str(Path(tmp) / "pipelines"),
                full_refresh=full_refresh,
                transform=False,
                source_options={"overlap_seconds": 0},
            )
            assert summary.status == "ok", summary.render()
            return {
                "seconds": time.perf_counter() - started,
                "served": sum(sandbox.served.values()),
                "requests": summary.requests.get("requests", 0),
                "written": sum(s.written for s in summary.scans),
            }

        def change() -> int:
            changed = 0
            for alias in store.aliases:
                for kind in ("invoices", "invoice_payments"):
                    records = store.all(alias, kind)
                    for record in rng.sample(records, max(1, round(len(records) * args.changed / 100))):
                        store.update(alias, kind, record["platform_id"], memo=f"changed {rng.random():.6f}")
                        changed += 1
            return changed

        total = sum(len(store.all(a, k)) for a in store.aliases for k in store.records)
        first = load(full_refresh=False)
        print(f"first load: {total:,} records in {first['seconds']:.1f}s ({first['requests']:.0f} requests)")
        runs: dict[str, list[dict[str, float]]] = {"incremental": [], "full refresh": []}
        for _ in range(args.repeat):
            changed = change()
            runs["incremental"].append(load(full_refresh=False))
            change()  # the same amount of change for the full refresh
            runs["full refresh"].append(load(full_refresh=True))
        print(f"each round changes {changed:,} records ({args.changed}%); median of {args.repeat} rounds:")
        print(f"{'variant':<14} {'seconds':>8} {'runs':>20} {'rows served':>12} {'requests':>9} {'written':>8}")
        medians = {}
        for name, results in runs.items():
            seconds = [r["seconds"] for r in results]
            medians[name] = statistics.median(seconds)
            print(
                f"{name:<14} {medians[name]:>8.2f} {' / '.join(f'{s:.2f}' for s in seconds):>20} "
                f"{statistics.median(r['served'] for r in results):>12,.0f} "
                f"{statistics.median(r['requests'] for r in results):>9,.0f} "
                f"{statistics.median(r['written'] for r in results):>8,.0f}"
            )
        print(f"incremental is {medians['full refresh'] / medians['incremental']:.1f}x faster than a full refresh")


if __name__ == "__main__":
    main()
