"""What the reader-safe write path costs a load: every writer of a DuckDB warehouse copies the file, writes the
copy and renames it over the file (`pipelines/warehouse/duckdb_file.py`). Measured beside the load's own time,
in the same run, at 120k and 1.2M records (the sizes of `bench_scale.py`, on its sandbox):

  load     `accounting-etl load` into an empty warehouse (nothing to copy yet: the copy is of an empty file)
  re-sync  the same command again over unchanged data: it writes only its run summary, so the copy of the
           whole file is most of what its write costs

For each: the command's wall time, the seconds its summary gives the copy (`warehouse copy`) and the swap
(`warehouse swap`: checkpoint, fsync, rename), the file's size, and the two as a share of the command. A bare
`shutil.copyfile` of the same file is timed beside them, for what the disk itself takes.

    .venv/bin/python bench/bench_write_path.py              # 120k and 1.2M (~10 min on 2 cores)
    .venv/bin/python bench/bench_write_path.py --scale 0.1  # a tenth of each
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_scale import CLI, Bench, Sandbox, measure

STEP = re.compile(r"^\s+steps: (.*)$", re.MULTILINE)


def steps_of(output: str) -> dict[str, float]:
    """The `steps:` line of a load's printed summary, as step -> seconds."""
    found = STEP.search(output)
    if not found:
        return {}
    out = {}
    for part in found.group(1).split(", "):
        name, _, seconds = part.rpartition(" ")
        out[name] = float(seconds.removesuffix("s"))
    return out


def load(bench: Bench, alias: str, warehouse: Path, name: str) -> dict[str, float]:
    folder = bench.folder(f"{name}-{alias}")
    command = [CLI, "load", "--as-of", bench.as_of]
    seconds, _, _, output = measure(command, bench.load_env(alias, warehouse), folder)
    steps = steps_of(output)
    size = (warehouse / "accounting.duckdb").stat().st_size
    return {"seconds": seconds, "copy": steps.get("warehouse copy", 0.0), "swap": steps.get("warehouse swap", 0.0),
            "load step": steps.get("load", 0.0), "mb": size / 1e6}  # fmt: skip


def bare_copy(path: Path, repeat: int = 3) -> float:
    """The median seconds of `shutil.copyfile` of the file, fsynced, as the write path does its copy."""
    times = []
    for _ in range(repeat):
        target = path.with_name("bare-copy.duckdb")
        started = time.perf_counter()
        shutil.copyfile(path, target)
        fd = os.open(target, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        times.append(time.perf_counter() - started)
        target.unlink()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size")
    args = parser.parse_args()
    sizes = {"small": 100_000 + 20_000, "big": 1_000_000 + 200_000}
    print("seeding the sandbox (bench_scale.py's) ...", flush=True)
    command = [sys.executable, str(Path(__file__).parent / "bench_scale.py"), "--worker", "sandbox",
               "--scale", str(args.scale)]  # fmt: skip
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rows: list[tuple[str, int, dict[str, float], float]] = []
    try:
        where = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        sandbox = Sandbox(where["url"], where["api_key"])
        with tempfile.TemporaryDirectory() as tmp:
            bench = Bench(sandbox, where["tokens"], Path(tmp))
            for alias in ("small", "big"):
                warehouse = bench.folder(f"warehouse-{alias}")
                for name in ("load", "re-sync"):
                    result = load(bench, alias, warehouse, name)
                    disk = bare_copy(warehouse / "accounting.duckdb")
                    rows.append((f"{name} {alias}", int(sizes[alias] * args.scale), result, disk))
                    print(f"{name} {alias}: {result}", flush=True)
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait()
    print(f"\nthe write path's cost ({os.cpu_count()} cores; seconds of one run each)")
    print(f"{'run':<16}{'records':>11}{'load s':>9}{'file MB':>9}{'copy s':>8}{'swap s':>8}{'share':>8}"
          f"{'bare copy s':>13}")  # fmt: skip
    for name, records, r, disk in rows:
        share = (r["copy"] + r["swap"]) / r["seconds"]
        print(f"{name:<16}{records:>11,}{r['seconds']:>9.1f}{r['mb']:>9.0f}{r['copy']:>8.2f}{r['swap']:>8.2f}"
              f"{share:>8.1%}{disk:>13.2f}")  # fmt: skip
    print("share: copy and swap as a part of the whole command; bare copy: copyfile + fsync of the final file")


if __name__ == "__main__":
    main()
