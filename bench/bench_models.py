"""What the dbt models cost a load: `dbt build` (models, seed and every test) as `accounting-etl load` runs
it, against the same models' SQL run straight in DuckDB, on one warehouse loaded from the Panora sandbox.

Each load is the command as a user runs it, in a process of its own; its models step (`transform_seconds` of
`load_runs`: dbt's import, parse and build, the fingerprint, the row counts) is read from the warehouse:
  load --no-transform     the whole command without the models (for scale)
  load, first build       the first load of a warehouse: dbt has never parsed the project for it
  load, a record changed  one payment changed upstream: the models are built again, dbt's parse reused
  load, nothing changed   nothing written: the models are left as they are, dbt never starts
  models' SQL only        the compiled SELECTs of the models (what dbt ran), each as CREATE TABLE, in DuckDB
                          directly: the work itself, without dbt and without its tests

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


def models_step(database: Path) -> float:
    """The models step of the latest load (seconds), as the load recorded it."""
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(
            "SELECT coalesce(transform_seconds, 0) FROM accounting_raw.load_runs ORDER BY started_at DESC LIMIT 1"
        ).fetchone()[0]


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
                database = root / "bench.duckdb"
                alone = {**env, "DESTINATION__DUCKDB__CREDENTIALS": str(root / "alone.duckdb")}
                runs = {"load --no-transform (command)": timed(["load", "--no-transform"], alone)}
                runs["load (command)"] = timed(["load"], env)
                runs["models step: first build"] = models_step(database)
                payment = store.all("acme-eu", "payments")[0]
                store.update("acme-eu", "payments", payment["id"], total_amount=payment["total_amount"] + 1)
                timed(["load"], env)
                runs["models step: a record changed"] = models_step(database)
                timed(["load"], env)
                runs["models step: nothing changed"] = models_step(database)
                runs["models' SQL only"] = sql_only(database, compiled_models(root / "dlt-data"))
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
              f"(median of {args.repeat}, seconds)")  # fmt: skip
        for name, seconds in result.items():
            print(f"  {name:<32} {seconds:7.2f}")
        whole = result["load (command)"] - result["load --no-transform (command)"]
        beyond = result["models step: a record changed"] - result["models' SQL only"]
        print(f"  a first load that builds the models: +{whole:.2f} s for the whole command")
        print(f"  dbt beyond the models' SQL, per later build: {beyond:.2f} s (parse check, tests, artifacts)")


if __name__ == "__main__":
    main()
