"""What the dbt models cost a load: `dbt build` (models, seed and every test) as the jobs run it, against the
same models' SQL run straight in DuckDB, on one warehouse loaded from the Panora sandbox.

Every figure is a command as a user runs it, in a process of its own (so dbt's import is counted):
  load --no-transform     the load alone (the baseline)
  transform, first        `accounting-etl transform` on a warehouse dbt has never seen: import, full parse,
                          build, tests
  transform, again        the same with dbt's partial parse (what every later build of that warehouse pays)
  load, nothing changed   a load that wrote nothing: the models are left as they are, dbt never starts
  models' SQL only        the compiled SELECTs of the models (what dbt ran), each as CREATE TABLE, in DuckDB
                          directly: the work itself, without dbt

    .venv/bin/python bench/bench_models.py                  # 374 records (the demo's size) and 36k
    .venv/bin/python bench/bench_models.py --scales 1 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CLI = str(Path(sys.executable).parent / "accounting-etl")
MODELS = "accounting_raw_reconciliation"


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run([CLI, *command], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return seconds


def compiled_models(dlt_data: Path) -> list[Path]:
    """The models' SQL as dbt compiled it (its work folder under dlt's data folder)."""
    return sorted(dlt_data.glob("accounting_dbt/*/target/compiled/accounting/models/**/*.sql"))


def sql_only(database: Path, files: list[Path]) -> float:
    """Each compiled model as CREATE TABLE in a scratch schema, in dbt's order (the dependency order)."""
    order = json.loads(next(database.parent.glob("dlt-data/accounting_dbt/*/target/run_results.json")).read_text())
    names = [r["unique_id"].split(".")[-1] for r in order["results"] if r["unique_id"].startswith("model.")]
    by_name = {f.stem: f for f in files}
    with duckdb.connect(str(database)) as con:
        con.execute("SET memory_limit = '256MB'")
        started = time.perf_counter()
        for name in names:
            con.execute(f"CREATE OR REPLACE TABLE {MODELS}.{name}_bench AS {by_name[name].read_text()}")
        seconds = time.perf_counter() - started
        for name in names:
            con.execute(f"DROP TABLE {MODELS}.{name}_bench")
    return seconds


def measure(scale: float, repeat: int) -> dict[str, float]:
    from sandbox.http import scaled
    from sandbox.panora import DEFAULT_CONNECTIONS, PanoraSandbox, Settings, Store, seed_connections

    store = Store(seed_connections(specs=scaled(DEFAULT_CONNECTIONS, scale)))
    records = sum(store.count(alias, kind) for alias in store.tokens() for kind in ("payments", "invoices"))
    figures: dict[str, list[float]] = {}
    with PanoraSandbox(store, Settings(rate_limit=None)) as sandbox:
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as folder:
                root = Path(folder)
                env = {
                    **{k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))},
                    "SOURCES__PANORA__API_KEY": sandbox.api_key,
                    "SOURCES__PANORA__CONNECTIONS": json.dumps(store.tokens()),
                    "SOURCES__PANORA__BASE_URL": sandbox.url,
                    "SOURCES__PANORA__RATE_LIMIT": "1000000000",  # the sandbox's limit is off
                    "SOURCES__RATE_BUDGET": str(root / "rate-budget.sqlite"),
                    "SOURCES__PANORA__PAGE_SIZE": "1000",
                    "DESTINATION__DUCKDB__CREDENTIALS": str(root / "bench.duckdb"),
                    "DLT_DATA_DIR": str(root / "dlt-data"),
                }
                runs = {
                    "load --no-transform": timed(["load", "--no-transform"], env),
                    "transform, first": timed(["transform"], env),
                    "transform, again": timed(["transform"], env),
                    "load, nothing changed": timed(["load"], env),
                }
                runs["models' SQL only"] = sql_only(root / "bench.duckdb", compiled_models(root / "dlt-data"))
                for name, seconds in runs.items():
                    figures.setdefault(name, []).append(seconds)
    result = {name: statistics.median(values) for name, values in figures.items()}
    result["records"] = records
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1,100", help="sandbox scales, comma-separated (1 = the demo's data)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the median is shown")
    args = parser.parse_args()
    for scale in (float(s) for s in args.scales.split(",")):
        result = measure(scale, args.repeat)
        print(f"\nPanora sandbox at scale {scale:g}: {result.pop('records'):,.0f} payments and invoices "
              f"(median of {args.repeat}, seconds of the whole command)")  # fmt: skip
        for name, seconds in result.items():
            print(f"  {name:<24} {seconds:7.2f}")
        overhead = result["transform, again"] - result["models' SQL only"]
        print(f"  dbt's cost beyond the SQL, per build with partial parse: {overhead:.2f} s "
              f"(import, parse check, {MODELS} tests, artifacts)")  # fmt: skip


if __name__ == "__main__":
    main()
