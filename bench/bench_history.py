"""What history costs: `accounting-etl load` of 1.2M records with every version kept (as it runs) against the
same load with history switched off, in one run on one sandbox.

One Panora sandbox (rate limit off) holds one connection of 1,000,000 payments and 200,000 invoices. Each
variant runs in a process of its own, as `bench_scale.py` runs them (wall time, peak resident memory, CPU):
  load        a first load into an empty warehouse, models built
  re-sync     the same command again over the unchanged data (it writes nothing, so no version either)
and the warehouse file's size after the first load. "Without history" is the same command with the versioned
tables emptied before it starts (`--worker load-without-history`), a switch only this benchmark has. The
variants alternate (without, with, without, with, ...), so a slower minute of the shared machine falls on both.

    .venv/bin/python bench/bench_history.py              # about 8 minutes on 2 cores
    .venv/bin/python bench/bench_history.py --repeat 3   # medians of 3
    .venv/bin/python bench/bench_history.py --scale 0.1  # a quick look
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import bench_scale  # noqa: E402  (the sibling benchmark's sandbox, runs and measurements)
from bench_scale import CLI, Bench, Run, Sandbox, measure, median_of  # noqa: E402


def load_without_history(argv: list[str]) -> int:
    """`accounting-etl <argv>` with no table versioned (this process only)."""
    from pipelines.cli import main
    from sources.common.tables.history import VERSIONED_TABLES

    VERSIONED_TABLES.clear()
    return main(argv)


class HistoryBench(Bench):
    def load_variant(self, alias: str, warehouse: Path, name: str, history: bool) -> Run:
        folder = self.folder(f"{name}-{'with' if history else 'without'}-{alias}")
        args = ["load", "--pipelines-dir", str(warehouse / "pipelines"), "--as-of", self.as_of]
        command = [CLI, *args] if history else [sys.executable, __file__, "--worker", "load-without-history", *args]
        seconds, peak, cpu, _ = measure(command, self.load_env(alias, warehouse), folder)
        row = bench_scale.last_run(warehouse / "accounting.duckdb")
        steps = {k.removesuffix("_seconds"): float(v or 0) for k, v in row.items() if k.endswith("_seconds")}
        return Run(seconds, peak, cpu, steps, int(row["rows_loaded"]))


def file_mb(warehouse: Path) -> float:
    import duckdb

    with duckdb.connect(str(warehouse / "accounting.duckdb")) as con:
        con.execute("CHECKPOINT")
    return (warehouse / "accounting.duckdb").stat().st_size / 1e6


def history_rows(warehouse: Path) -> int:
    import duckdb

    with duckdb.connect(str(warehouse / "accounting.duckdb"), read_only=True) as con:
        sql = "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE '%_history'"
        names = [r[0] for r in con.execute(sql).fetchall()]
        return sum(con.execute(f"SELECT count(*) FROM accounting_raw.{n}").fetchone()[0] for n in names)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1:3] == ["--worker", "load-without-history"]:
        raise SystemExit(load_without_history(sys.argv[3:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies the size (0.1: a quick look)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the median time is reported")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = {"big": (int(1_000_000 * args.scale), int(200_000 * args.scale))}
    if args.worker == "sandbox":
        bench_scale.sandbox_worker(sizes)
        return
    records = sum(sizes["big"])
    print(f"seeding {records:,} records ...", flush=True)
    command = [sys.executable, __file__, "--worker", "sandbox", "--scale", str(args.scale)]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    runs: dict[str, list[Run]] = {}
    sizes_mb: dict[bool, list[float]] = {True: [], False: []}
    versions = 0
    try:
        where = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as tmp:
            bench = HistoryBench(Sandbox(where["url"], where["api_key"]), where["tokens"], Path(tmp))
            bench.fetch_and_parse("big")  # once unmeasured: the sandbox renders each record once, then caches
            for _ in range(args.repeat):
                for history in (False, True):
                    label = "with" if history else "without"
                    warehouse = bench.folder(f"warehouse-{label}")
                    first = bench.load_variant("big", warehouse, "load", history)
                    resync = bench.load_variant("big", warehouse, "re-sync", history)
                    runs.setdefault(f"load, {label} history", []).append(first)
                    runs.setdefault(f"re-sync, {label} history", []).append(resync)
                    sizes_mb[history].append(file_mb(warehouse))
                    if history:
                        versions = history_rows(warehouse)
                    print(f"{label} history: load {first.seconds:.1f}s, re-sync {resync.seconds:.1f}s, "
                          f"file {sizes_mb[history][-1]:.0f} MB", flush=True)  # fmt: skip
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait()
    report({name: median_of(r) for name, r in runs.items()}, sizes_mb, records, versions, args.repeat)


def report(
    results: dict[str, Run], sizes_mb: dict[bool, list[float]], records: int, versions: int, repeat: int
) -> None:
    print(f"\n{records:,} records, {'median of ' + str(repeat) + ' runs' if repeat > 1 else 'one run'} per variant")
    print(f"{'variant':<26}{'s':>8}{'peak MB':>9}{'CPU s':>8}   steps (s)")
    for name, run in results.items():
        steps = ", ".join(f"{k} {v:.1f}" for k, v in run.steps.items() if v)
        print(f"{name:<26}{run.seconds:>8.1f}{run.peak_mb:>9.0f}{run.cpu:>8.1f}   {steps}")
    size = {h: sorted(v)[len(v) // 2] for h, v in sizes_mb.items()}
    print(f"\nwarehouse file after the first load: {size[False]:.0f} MB without history, {size[True]:.0f} MB with "
          f"({versions:,} version rows)")  # fmt: skip
    r = results
    print("\nratios (with history / without)")
    for label, a, b in (
        ("first load, time", r["load, with history"].seconds, r["load, without history"].seconds),
        ("first load, peak memory", r["load, with history"].peak_mb, r["load, without history"].peak_mb),
        ("re-sync, time", r["re-sync, with history"].seconds, r["re-sync, without history"].seconds),
        ("warehouse file", size[True], size[False]),
    ):
        print(f"  {label:<30}{a / b:>6.2f}")


if __name__ == "__main__":
    main()
