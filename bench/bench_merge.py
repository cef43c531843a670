"""dlt's load step into DuckDB with dlt's own merge against the merge the jobs use
(`pipelines/warehouse/duckdb_merge.py`, staged rows de-duplicated by key), in one run.

The same package goes to both: `--rows` payment-shaped rows (22 columns, among them the provider's raw record
as JSON text, as the sources store it) merged on `id`, first into an empty table (a first load), then
`--changed` of them again with new content (a later load). Only `pipeline.load()` is timed: copying the parquet
into staging, the merge, the commit. DuckDB works within 256MB, as the jobs' loads do. Medians of `--repeat`
runs, each into a fresh file, alternating the variants.

    .venv/bin/python bench/bench_merge.py                    # 1,000,000 rows, 3 runs each
    .venv/bin/python bench/bench_merge.py --rows 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dlt
import numpy as np
import pyarrow as pa
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.warehouse.duckdb_merge import duckdb_key_first_dedup

VARIANTS: dict[str, Callable[..., object]] = {
    "dlt's merge": dlt.destinations.duckdb,
    "key-first dedup": duckdb_key_first_dedup,
}


def payments(rows: int, first: int = 0, version: int = 0) -> pa.Table:
    """`rows` payment-shaped rows with ids first..first+rows; `version` changes their content."""
    rng = np.random.default_rng(first + version)
    numbers = np.arange(first, first + rows)
    ids = pa.array([f"{n:08d}-7c1e-4d2a-9f3b-{n:012x}" for n in numbers])
    amounts = rng.integers(100, 10_000_000, rows)
    raw = pa.array(
        [
            f'{{"id":"{n}","amount":{a},"status":"PAID","memo":"payment {n} v{version}","lines":[{{"n":1}}]}}'
            + " " * 200
            for n, a in zip(numbers.tolist(), amounts.tolist(), strict=True)
        ]
    )
    text = lambda s: pa.array(np.full(rows, s))  # noqa: E731
    return pa.table(
        {
            "id": ids,
            "connection": text("acme"),
            "provider": text("panora"),
            "remote_id": ids,
            "invoice_id": ids,
            "transaction_date": pa.array(np.datetime64("2026-01-01") + numbers % 365),
            "contact_id": ids,
            "account_id": text("acc-1"),
            "currency": text("EUR"),
            "exchange_rate": pa.array(np.ones(rows)),
            "total_amount": pa.array(amounts / 100),
            "type": text("ACCREC"),
            "company_info_id": text("co-1"),
            "accounting_period_id": text("p-1"),
            "remote_updated_at": pa.array(np.full(rows, np.datetime64("2026-06-01T00:00:00", "us"))),
            "created_at": pa.array(np.full(rows, np.datetime64("2026-06-01T00:00:00", "us"))),
            "modified_at": pa.array(np.full(rows, np.datetime64("2026-06-01T00:00:00", "us"))),
            "remote_data": raw,
            "field_mappings": text("{}"),
            "_record_hash": pa.array([f"{(n * 2654435761 + version) & (2**64 - 1):032x}" for n in numbers.tolist()]),
            "deleted_at": pa.nulls(rows, pa.timestamp("us")),
            "version": pa.array(np.full(rows, version)),
        }
    )


def timed_load(folder: Path, variant: str, table: pa.Table) -> float:
    """Extract and normalize `table` (untimed), then the seconds of dlt's load step."""
    credentials = DuckDbCredentials(str(folder / "w.duckdb"), global_config={"memory_limit": "256MB"})
    pipeline = dlt.pipeline(
        "bench_merge",
        destination=VARIANTS[variant](credentials=credentials),
        dataset_name="raw",
        pipelines_dir=str(folder / "pipelines"),
    )
    pipeline.extract(
        table, table_name="payments", write_disposition="merge", primary_key="id", loader_file_format="parquet"
    )
    pipeline.normalize()
    started = time.perf_counter()
    pipeline.load()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.1, help="share of the rows loaded again, changed")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"  # dlt warns that arrow's nullability differs from the key's
    first, later = payments(args.rows), payments(int(args.rows * args.changed), version=1)
    print(f"{args.rows:,} rows ({first.nbytes / 1e6:.0f} MB in arrow), then {later.num_rows:,} of them changed")
    seconds: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for variant in VARIANTS:
            with tempfile.TemporaryDirectory(prefix="bench_merge_") as folder:
                seconds.setdefault((variant, "first load"), []).append(timed_load(Path(folder), variant, first))
                seconds.setdefault((variant, "later load"), []).append(timed_load(Path(folder), variant, later))
    print(f"{'variant':18s} {'load step':11s} {'median s':>9s} {'runs (s)':>24s} {'vs dlt':>7s}")
    for (variant, step), runs in seconds.items():
        base = statistics.median(seconds[("dlt's merge", step)])
        median = statistics.median(runs)
        listed = ", ".join(f"{s:.1f}" for s in runs)
        print(f"{variant:18s} {step:11s} {median:9.2f} {listed:>24s} {base / median:6.2f}x")


if __name__ == "__main__":
    main()
