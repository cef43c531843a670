"""Big accounts: memory and speed of `accounting-etl load` as a user runs it, against what the same pages cost
merely fetched and parsed, and against dlt's generic `rest_api` source, all in one run on one sandbox.

One Panora sandbox (rate limit off) holds three connections:
  small   100,000 payments +  20,000 invoices  (120k records)
  big   1,000,000 payments + 200,000 invoices  (1.2M records)
  mid      40,000 payments +  20,000 invoices  (60k records, for the rest_api comparison)

The sandbox runs in a process of its own, and every variant in another (`os.wait4` gives a process's peak
resident memory, which on Linux includes what the process was before `exec`: so this process stays small,
and a variant is never counted with the sandbox's records):
  fetch-and-parse     httpx + orjson over every page of payments and invoices, one after the other; nothing
                      else (the floor any loader stands on)
  load                `accounting-etl load` on an empty warehouse: start-up, extract, load, models, run summary
  load --no-transform the same without the dbt models (at 60k records: the work rest_api does too)
  re-sync             the same command again over the unchanged data; it must write nothing
  rest_api/defaults   dlt's rest_api source configured for Panora as a user would, dlt's defaults
  rest_api/parquet    the same with `loader_file_format="parquet"`

The client is told the sandbox's limit is off (`SOURCES__PANORA__RATE_LIMIT`), with a budget file of its
own. Times are wall seconds of the whole command; `--repeat N` runs each variant N times and reports the
median time and the largest peak.

    .venv/bin/python bench/bench_scale.py                  # all of it (~15 min on 2 cores)
    .venv/bin/python bench/bench_scale.py --scale 0.1      # every size a tenth, a quick look
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
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).parent / "accounting-etl")
PAGE_SIZE = 1000


@dataclass
class Run:
    seconds: float
    peak_mb: float
    cpu: float = 0.0  # the process's user and system CPU seconds
    steps: dict[str, float] = field(default_factory=dict)
    written: int | None = None


# -- workers (run as `bench_scale.py --worker ...` in a process of their own) ---------------------------------
def sandbox_worker(sizes: dict[str, tuple[int, int]]) -> None:
    """Seed and serve the sandbox; say where on standard output; serve until standard input closes."""
    from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections

    specs = tuple(
        ConnectionSpec(alias, "xero", ("USD", "EUR", "JPY"), invoices=invoices, payments=payments)
        for alias, (payments, invoices) in sizes.items()
    )
    store = Store(seed_connections(seed=11, specs=specs))
    with PanoraSandbox(store, Settings(rate_limit=None)) as sandbox:
        print(json.dumps({"url": sandbox.url, "api_key": sandbox.api_key, "tokens": store.tokens()}), flush=True)
        sys.stdin.read()


@dataclass
class Sandbox:
    url: str
    api_key: str


def fetch_and_parse_worker(url: str, api_key: str, token: str) -> None:
    import httpx
    import orjson

    records = 0
    headers = {"x-api-key": api_key, "x-connection-token": token}
    with httpx.Client(base_url=url, headers=headers, timeout=120) as client:
        for kind in ("payments", "invoices"):
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            while True:
                body = orjson.loads(client.get(f"/accounting/{kind}", params=params).content)
                records += len(body["data"])
                if not body["next_cursor"]:
                    break
                params["cursor"] = base64.b64encode(body["next_cursor"].encode()).decode()
    print(json.dumps({"records": records}))


def rest_api_worker(url: str, api_key: str, token: str, database: str, parquet: bool) -> None:
    """dlt's rest_api source, configured as a user would for Panora."""
    import dlt
    from dlt.sources.helpers.rest_client.paginators import JSONResponseCursorPaginator
    from dlt.sources.rest_api import rest_api_source

    class Base64CursorPaginator(JSONResponseCursorPaginator):
        """The one thing a user must add: Panora expects the cursor it sends back base64-encoded."""

        def update_state(self, response: Any, data: Any = None) -> None:
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
                "endpoint": {"params": {"limit": PAGE_SIZE}, "data_selector": "data"},
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
    pipeline.run(source, **({"loader_file_format": "parquet"} if parquet else {}))


# -- the runs --------------------------------------------------------------------------------------------------
def measure(command: list[str], env: dict[str, str], folder: Path) -> tuple[float, float, float, str]:
    """Wall seconds, peak resident MB, CPU seconds and standard output of one command; exits on failure."""
    started = time.perf_counter()
    with open(folder / "out.txt", "w") as out, open(folder / "err.txt", "w") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=folder)
        _, status, usage = os.wait4(process.pid, 0)  # reaps the child and gives its own peak memory
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        errors = (folder / "err.txt").read_text()[-3000:]
        raise SystemExit(f"{' '.join(command[:3])} failed (exit {os.waitstatus_to_exitcode(status)}):\n{errors}")
    cpu = usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024, cpu, (folder / "out.txt").read_text()


def last_run(database: Path) -> dict[str, Any]:
    import duckdb

    with duckdb.connect(str(database), read_only=True) as con:
        cursor = con.execute(
            "SELECT rows_loaded, extract_seconds, normalize_seconds, load_seconds, transform_seconds "
            "FROM accounting_raw.load_runs ORDER BY started_at DESC LIMIT 1"
        )
        names = [d[0] for d in cursor.description]
        return dict(zip(names, cursor.fetchone(), strict=True))


class Bench:
    def __init__(self, sandbox: Sandbox, tokens: dict[str, str], workdir: Path) -> None:
        self.sandbox = sandbox
        self.tokens = tokens
        self.workdir = workdir
        self.count = 0
        # every load's models age to one date: a re-sync after midnight would otherwise build them again
        self.as_of = datetime.now(UTC).date().isoformat()

    def folder(self, name: str) -> Path:
        self.count += 1
        path = self.workdir / f"{self.count:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def fetch_and_parse(self, alias: str) -> Run:
        folder = self.folder(f"fetch-{alias}")
        command = [sys.executable, __file__, "--worker", "fetch", *self._endpoint(alias)]
        seconds, peak, cpu, _ = measure(command, dict(os.environ), folder)
        return Run(seconds, peak, cpu)

    def load_env(self, alias: str, warehouse: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
        env.update(
            {
                "SOURCES__PANORA__API_KEY": self.sandbox.api_key,
                "SOURCES__PANORA__CONNECTIONS": json.dumps({alias: self.tokens[alias]}),
                "SOURCES__PANORA__BASE_URL": self.sandbox.url,
                "SOURCES__PANORA__PAGE_SIZE": str(PAGE_SIZE),
                "SOURCES__PANORA__RATE_LIMIT": "1000000000",  # the sandbox's limit is off
                "SOURCES__RATE_BUDGET": str(warehouse / "rate-budget.sqlite"),
                "DESTINATION__DUCKDB__CREDENTIALS": str(warehouse / "accounting.duckdb"),
                "DLT_DATA_DIR": str(warehouse / "dlt"),
                "RUNTIME__LOG_LEVEL": "WARNING",
            }
        )
        return env

    def load(self, alias: str, warehouse: Path, name: str, models: bool = True) -> Run:
        folder = self.folder(f"{name}-{alias}")
        command = [CLI, "load", "--pipelines-dir", str(warehouse / "pipelines"), "--as-of", self.as_of]
        command += [] if models else ["--no-transform"]
        seconds, peak, cpu, _ = measure(command, self.load_env(alias, warehouse), folder)
        row = last_run(warehouse / "accounting.duckdb")
        steps = {k.removesuffix("_seconds"): float(v or 0) for k, v in row.items() if k.endswith("_seconds")}
        return Run(seconds, peak, cpu, steps, int(row["rows_loaded"]))

    def rest_api(self, alias: str, parquet: bool) -> Run:
        folder = self.folder(f"rest_api-{'parquet' if parquet else 'defaults'}-{alias}")
        command = [sys.executable, __file__, "--worker", "rest_api", *self._endpoint(alias)]
        command += ["--database", str(folder / "warehouse.duckdb")] + (["--parquet"] if parquet else [])
        env = {**os.environ, "DLT_DATA_DIR": str(folder / "dlt"), "RUNTIME__LOG_LEVEL": "WARNING"}
        seconds, peak, cpu, _ = measure(command, env, folder)
        return Run(seconds, peak, cpu)

    def _endpoint(self, alias: str) -> list[str]:
        return ["--url", self.sandbox.url, "--api-key", self.sandbox.api_key, "--token", self.tokens[alias]]


def median_of(runs: list[Run]) -> Run:
    """The median run by time, with the largest peak of all."""
    ordered = sorted(runs, key=lambda r: r.seconds)
    median = ordered[len(ordered) // 2]
    median.peak_mb = max(r.peak_mb for r in runs)
    return median


def repeated(times: int, make: Any) -> Run:
    return median_of([make() for _ in range(times)])


def first_and_resync(bench: Bench, alias: str, repeat: int) -> tuple[Run, Run]:
    """A load into an empty warehouse, then the re-sync of the same data, `repeat` times."""
    firsts, resyncs = [], []
    for _ in range(repeat):
        warehouse = bench.folder(f"warehouse-{alias}")
        firsts.append(bench.load(alias, warehouse, "load"))
        resyncs.append(bench.load(alias, warehouse, "re-sync"))
    return median_of(firsts), median_of(resyncs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size (0.1: a quick look)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the median time is reported")
    parser.add_argument("--skip-rest-api", action="store_true", help="leave out the rest_api runs (slow)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    for hidden in ("--url", "--api-key", "--token", "--database"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--parquet", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "fetch":
        fetch_and_parse_worker(args.url, args.api_key, args.token)
        return
    sizes = {
        "small": (int(100_000 * args.scale), int(20_000 * args.scale)),
        "big": (int(1_000_000 * args.scale), int(200_000 * args.scale)),
        "mid": (int(40_000 * args.scale), int(20_000 * args.scale)),
    }
    if args.worker == "rest_api":
        rest_api_worker(args.url, args.api_key, args.token, args.database, args.parquet)
        return
    if args.worker == "sandbox":
        sandbox_worker(sizes)
        return

    print(f"seeding {', '.join(f'{a}: {p + i:,} records' for a, (p, i) in sizes.items())} ...", flush=True)
    command = [sys.executable, __file__, "--worker", "sandbox", "--scale", str(args.scale)]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    records = {alias: p + i for alias, (p, i) in sizes.items()}
    results: dict[str, Run] = {}
    try:
        where = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        sandbox = Sandbox(where["url"], where["api_key"])
        with tempfile.TemporaryDirectory() as tmp:
            run_all(Bench(sandbox, where["tokens"], Path(tmp)), results, args)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait()
    report(results, records, args)


def run_all(bench: Bench, results: dict[str, Run], args: argparse.Namespace) -> None:
    def step(name: str, run: Run) -> None:
        results[name] = run
        print(f"{name}: {run.seconds:.1f}s, peak {run.peak_mb:.0f} MB", flush=True)

    for alias in ("small", "big"):
        bench.fetch_and_parse(alias)  # once unmeasured: the sandbox renders each record once, then caches
        step(f"fetch-and-parse {alias}", repeated(args.repeat, lambda a=alias: bench.fetch_and_parse(a)))
        first, resync = first_and_resync(bench, alias, args.repeat)
        step(f"load {alias}", first)
        step(f"re-sync {alias}", resync)
    bench.fetch_and_parse("mid")
    step("load mid", first_and_resync(bench, "mid", args.repeat)[0])
    # what rest_api does too (extract, load), without the dbt models it has no counterpart for
    step("load --no-transform mid", repeated(args.repeat, lambda: bench.load("mid", bench.folder("wh"), "load", False)))
    if not args.skip_rest_api:
        step("rest_api/parquet mid", repeated(args.repeat, lambda: bench.rest_api("mid", True)))
        step("rest_api/defaults mid", repeated(args.repeat, lambda: bench.rest_api("mid", False)))


def report(results: dict[str, Run], records: dict[str, int], args: argparse.Namespace) -> None:
    print(
        f"\nPanora sandbox, rate limit off, page size {PAGE_SIZE}, {os.cpu_count()} cores; "
        f"{'median of ' + str(args.repeat) + ' runs' if args.repeat > 1 else 'one run'} per variant; "
        "seconds are the whole command's wall time"
    )
    print(f"{'variant':<26}{'records':>11}{'s':>8}{'records/s':>11}{'peak MB':>9}{'CPU s':>8}   steps (s)")
    for name, run in results.items():
        alias = name.split()[-1]
        steps = ", ".join(f"{k} {v:.1f}" for k, v in run.steps.items() if v)
        written = f"; rows written {run.written:,}" if run.written is not None else ""
        print(
            f"{name:<26}{records[alias]:>11,}{run.seconds:>8.1f}{records[alias] / run.seconds:>11,.0f}"
            f"{run.peak_mb:>9.0f}{run.cpu:>8.1f}   {steps}{written}"
        )

    def ratio(label: str, value: float, target: str) -> None:
        print(f"  {label:<62}{value:>7.2f}   target {target}")

    print("\nratios")
    r = results
    ratio("peak, load big / load small", r["load big"].peak_mb / r["load small"].peak_mb, "<= 1.3")
    ratio("peak, re-sync big / re-sync small", r["re-sync big"].peak_mb / r["re-sync small"].peak_mb, "<= 1.3")
    ratio("peak MB, load big", r["load big"].peak_mb, "< 1000")
    ratio("peak MB, re-sync big", r["re-sync big"].peak_mb, "< 1000")
    fetch_rate = records["big"] / r["fetch-and-parse big"].seconds
    ratio("load big, records/s / fetch-and-parse's", records["big"] / r["load big"].seconds / fetch_rate, ">= 0.40")
    fetch_seconds = r["fetch-and-parse big"].seconds
    ratio("re-sync big, time / fetch-and-parse's", r["re-sync big"].seconds / fetch_seconds, "<= 1.5")
    ratio("rows written by the re-sync of big", float(r["re-sync big"].written or 0), "0")
    if "rest_api/defaults mid" in r:
        ours = r["load mid"].seconds
        ratio("load mid: rest_api/defaults time / ours", r["rest_api/defaults mid"].seconds / ours, ">= 15")
        ratio("load mid: rest_api/parquet time / ours", r["rest_api/parquet mid"].seconds / ours, "-")
        bare = r["load --no-transform mid"].seconds
        ratio("load mid without models: rest_api/defaults time / ours", r["rest_api/defaults mid"].seconds / bare, "-")
        ratio("load mid without models: rest_api/parquet time / ours", r["rest_api/parquet mid"].seconds / bare, "-")


if __name__ == "__main__":
    main()
