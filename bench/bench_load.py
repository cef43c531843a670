"""End-to-end load throughput: Panora sandbox (rate limit off) -> DuckDB, child tables included.

Runs side by side, in one go, on one sandbox:
  accounting-etl     this project's pipeline (`run_load`)
  rest_api/defaults  dlt's generic rest_api source as a user would configure it for this API (dlt defaults:
                     JSON normalizer, DuckDB's default `insert_values` loader)
  rest_api/parquet   the same with `loader_file_format="parquet"`

Each variant runs in its own process; wall time includes its start-up, peak memory is that process's
maximum resident set (the sandbox runs in this process and is not counted). The figure compared is
records/s: source records (payments + invoices) per second from the first request to data in DuckDB.

    .venv/bin/python bench/bench_load.py                      # 100k payments, 50k invoices (~15 min)
    .venv/bin/python bench/bench_load.py --payments 10000 --invoices 5000   # a quick look
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("accounting-etl", "rest_api/parquet", "rest_api/defaults")


def rest_api_worker(url: str, api_key: str, token: str, page_size: int, database: str, parquet: bool) -> None:
    """dlt's rest_api source, configured as a user would for Panora."""
    import dlt
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
    from dlt.sources.rest_api import rest_api_source

    class Base64CursorPaginator(JSONResponseCursorPaginator):
        """The one thing a user must add: Panora expects the cursor it sends back base64-encoded."""

        def update_state(self, response, data=None) -> None:
            super().update_state(response, data)
            if self._next_reference:
                self._next_reference = base64.b64encode(str(self._next_reference).encode()).decode()

    source = rest_api_source(
        {
            "client": {
                "base_url": url,
                "headers": {"x-api-key": api_key, "x-connection-token": token},
                "paginator": Base64CursorPaginator(cursor_path="next_cursor", cursor_param="cursor"),
            },
            "resource_defaults": {
                "primary_key": "id",
                "endpoint": {"params": {"limit": page_size}, "data_selector": "data"},
            },
            "resources": [
                {"name": "payments", "endpoint": {"path": "accounting/payments"}},
                {"name": "invoices", "endpoint": {"path": "accounting/invoices"}},
            ],
        }
    )
    pipeline = dlt.pipeline(
        "bench_rest_api",
        destination=dlt.destinations.duckdb(credentials=database),
        dataset_name="bench",
        pipelines_dir=str(Path(database).parent / "pipelines"),
    )
    kwargs = {"loader_file_format": "parquet"} if parquet else {}
    pipeline.run(source, **kwargs)


def ours_worker(url: str, api_key: str, token: str, page_size: int, database: str) -> None:
    import dlt

    from pipelines.load import run_load

    summary = run_load(
        "panora",
        resources=["payments", "invoices"],
        api_key=api_key,
        connections={"bench": token},
        base_url=url,
        page_size=page_size,
        destination=dlt.destinations.duckdb(credentials=database),
        dataset_name="bench",
        pipeline_name="bench_ours",
        pipelines_dir=str(Path(database).parent / "pipelines"),
        transform=False,  # the comparison is HTTP to DuckDB; rest_api builds no models either
    )
    assert summary.status == "ok", summary.render()


def worker(args: argparse.Namespace) -> None:
    # imports first: start-up is not throughput (the wall column still shows it)
    import dlt
    import dlt.sources.rest_api  # noqa: F401

    import pipelines.load  # noqa: F401

    started = time.perf_counter()
    if args.worker == "accounting-etl":
        ours_worker(args.url, args.api_key, args.token, args.page_size, args.database)
    else:
        rest_api_worker(
            args.url, args.api_key, args.token, args.page_size, args.database, parquet=args.worker.endswith("parquet")
        )
    print(json.dumps({"run_seconds": time.perf_counter() - started}))


def count_rows(database: str) -> dict[str, int]:
    import duckdb

    with duckdb.connect(database, read_only=True) as con:
        tables = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'bench' "
                "AND table_name NOT LIKE '\\_dlt%' ESCAPE '\\' AND table_name NOT LIKE 'load\\_run%' ESCAPE '\\'"
            ).fetchall()
        ]
        return {t: con.execute(f"SELECT count(*) FROM bench.{t}").fetchall()[0][0] for t in sorted(tables)}


def run_variant(variant: str, sandbox, token: str, page_size: int, workdir: Path) -> dict:
    folder = workdir / variant.replace("/", "_")
    folder.mkdir(parents=True)
    database = str(folder / "warehouse.duckdb")
    env = {**os.environ, "DLT_DATA_DIR": str(folder / "dlt"), "RUNTIME__LOG_LEVEL": "WARNING"}
    command = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--url",
        sandbox.url,
        "--api-key",
        sandbox.api_key,
        "--token",
        token,
        "--page-size",
        str(page_size),
        "--database",
        database,
    ]
    started = time.perf_counter()
    with open(folder / "out.txt", "w") as out, open(folder / "err.txt", "w") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)  # reaps the child and gives its own peak memory
    wall = time.perf_counter() - started
    output = (folder / "out.txt").read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        errors = (folder / "err.txt").read_text()
        raise SystemExit(f"{variant} failed (exit {os.waitstatus_to_exitcode(status)}):\n{errors[-3000:]}")
    run_seconds = json.loads(output.strip().splitlines()[-1])["run_seconds"]
    return {
        "variant": variant,
        "wall_seconds": wall,
        "run_seconds": run_seconds,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "rows": count_rows(database),
    }


def warm(sandbox, token: str, page_size: int) -> None:
    """One plain scan first, so every variant meets a sandbox that has rendered each record once."""
    import httpx

    headers = {"x-api-key": sandbox.api_key, "x-connection-token": token}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=60) as client:
        for kind in ("payments", "invoices"):
            params: dict = {"limit": page_size}
            while True:
                body = client.get(f"/accounting/{kind}", params=params).json()
                if not body["next_cursor"]:
                    break
                params["cursor"] = base64.b64encode(body["next_cursor"].encode()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=100_000)
    parser.add_argument("--invoices", type=int, default=50_000)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the median is reported")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    for hidden in ("--url", "--api-key", "--token", "--database"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections

    spec = ConnectionSpec("bench", "xero", ("USD", "EUR", "JPY"), invoices=args.invoices, payments=args.payments)
    print(f"seeding {args.payments:,} payments and {args.invoices:,} invoices ...", flush=True)
    store = Store(seed_connections(seed=11, specs=(spec,)))
    token = store.tokens()["bench"]
    records = args.payments + args.invoices
    results = []
    with PanoraSandbox(store, Settings(rate_limit=None)) as sandbox, tempfile.TemporaryDirectory() as tmp:
        warm(sandbox, token, args.page_size)
        for variant in args.variants.split(","):
            runs = []
            for attempt in range(args.repeat):
                print(f"running {variant} ({attempt + 1}/{args.repeat}) ...", flush=True)
                run = run_variant(variant, sandbox, token, args.page_size, Path(tmp) / str(attempt))
                runs.append(run)
                print(f"  {run['run_seconds']:.1f}s, peak {run['peak_rss_mb']:.0f} MB", flush=True)
            runs.sort(key=lambda r: r["run_seconds"])
            result = dict(runs[len(runs) // 2])  # the median run
            result["all_seconds"] = [round(r["run_seconds"], 1) for r in runs]
            result["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
            results.append(result)

    print(
        f"\n{records:,} source records ({args.payments:,} payments + {args.invoices:,} invoices), "
        f"page size {args.page_size}, sandbox rate limit off, {os.cpu_count()} cores"
    )
    print(f"median of {args.repeat} runs per variant (run s: first request to data in DuckDB; wall s: with start-up)")
    print(f"{'variant':<20}{'run s':>9}{'wall s':>9}{'records/s':>12}{'rows/s':>11}{'peak MB':>9}{'vs defaults':>13}")
    baseline = next((r for r in results if r["variant"] == "rest_api/defaults"), None)
    for r in results:
        rate = records / r["run_seconds"]
        rows = sum(r["rows"].values())
        ratio = f"{baseline['run_seconds'] / r['run_seconds']:.1f}x" if baseline else "-"
        print(
            f"{r['variant']:<20}{r['run_seconds']:>9.1f}{r['wall_seconds']:>9.1f}{rate:>12,.0f}"
            f"{rows / r['run_seconds']:>11,.0f}{r['peak_rss_mb']:>9.0f}{ratio:>13}"
        )
    for r in results:
        print(f"  {r['variant']}: runs {r['all_seconds']} s; rows {r['rows']}")


if __name__ == "__main__":
    main()
