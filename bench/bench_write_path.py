"""What the reader-safe write path costs a load: every writer of a DuckDB warehouse copies the file, writes the
copy and renames it over the file (`pipelines/warehouse/duckdb_file.py`). Measured beside the load's own time,
in the same run, at 120k and 1.2M records (the sizes of `bench_scale.py`, on its sandbox):

  load     `accounting-etl load` into an empty warehouse (nothing to copy yet: the copy is of an empty file)
  re-sync  the same command again over unchanged data: it writes only its run summary, so the copy of the
           whole file is most of what its write costs

For each: the command's wall time, the seconds its summary gives the copy (`warehouse copy`) and the swap
(`warehouse swap`: checkpoint, fsync, rename), the file's size, and the two as a share of the command. A bare
`shutil.copyfile` of the same file is timed beside them, for what the disk itself takes.

The baseline, in the same run: the same commands by the code before the write path (`--baseline`, a commit
checked out into a temporary worktree, run with its own modules first on the path), which wrote the file in
place. The two alternate, so that the machine's drift falls on both.

    .venv/bin/python bench/bench_write_path.py                 # 120k and 1.2M (~15 min on 2 cores)
    .venv/bin/python bench/bench_write_path.py --scale 0.1     # a tenth of each
    .venv/bin/python bench/bench_write_path.py --repeat 3      # the median of 3 of each
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
from collections.abc import Iterator
from contextlib import contextmanager
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


def load(bench: Bench, alias: str, warehouse: Path, name: str, code: Path | None = None) -> dict[str, float]:
    """One `accounting-etl load`, by this checkout or (`code`) by another checkout's modules."""
    folder = bench.folder(f"{name}-{alias}")
    command = [CLI, "load", "--as-of", bench.as_of]
    env = bench.load_env(alias, warehouse)
    if code is not None:
        command = [sys.executable, "-m", "pipelines", "load", "--as-of", bench.as_of,
                   "--pipelines-dir", str(warehouse / "pipelines")]  # fmt: skip
        env["PYTHONPATH"] = str(code)
    seconds, _, _, output = measure(command, env, folder)
    steps = steps_of(output)
    size = (warehouse / "accounting.duckdb").stat().st_size
    print(f"  {name} {alias}{' (baseline)' if code else ''}: {seconds:.1f}s; steps: {steps}", flush=True)
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


@contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """The project at `revision`, checked out beside (a git worktree), removed after."""
    root = Path(__file__).resolve().parents[1]
    folder = Path(tempfile.mkdtemp(prefix="bench-baseline-")) / "code"
    subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(folder), revision], check=True,
                   capture_output=True)  # fmt: skip
    try:
        yield folder
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(folder)], capture_output=True)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every size")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the median is reported")
    parser.add_argument("--baseline", default="beebb43", help="the commit to compare with (before the write path)")
    args = parser.parse_args()
    sizes = {"small": 100_000 + 20_000, "big": 1_000_000 + 200_000}
    print("seeding the sandbox (bench_scale.py's) ...", flush=True)
    command = [sys.executable, str(Path(__file__).parent / "bench_scale.py"), "--worker", "sandbox",
               "--scale", str(args.scale)]  # fmt: skip
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rows: list[tuple[str, int, dict[str, float], dict[str, float], float]] = []
    try:
        where = json.loads(server.stdout.readline())  # type: ignore[union-attr]
        sandbox = Sandbox(where["url"], where["api_key"])
        with tempfile.TemporaryDirectory() as tmp, worktree(args.baseline) as baseline:
            bench = Bench(sandbox, where["tokens"], Path(tmp))
            for alias in ("small", "big"):
                bench.fetch_and_parse(alias)  # unmeasured: the sandbox renders each record once, then caches
                runs: dict[tuple[str, bool], list[dict[str, float]]] = {}
                for _ in range(args.repeat):
                    for code in (None, baseline):  # alternated
                        warehouse = bench.folder(f"warehouse-{alias}")
                        for name in ("load", "re-sync"):
                            runs.setdefault((name, code is None), []).append(load(bench, alias, warehouse, name, code))
                disk = bare_copy(warehouse / "accounting.duckdb")
                for name in ("load", "re-sync"):
                    rows.append((f"{name} {alias}", int(sizes[alias] * args.scale), median_run(runs[(name, True)]),
                                 median_run(runs[(name, False)]), disk))  # fmt: skip
    finally:
        server.stdin.close()  # type: ignore[union-attr]
        server.wait()
    times = f"median of {args.repeat}" if args.repeat > 1 else "one run each"
    print(f"\nthe write path's cost ({os.cpu_count()} cores; {times}; baseline {args.baseline}, writing in place)")
    print(f"{'run':<16}{'records':>11}{'load s':>9}{'baseline s':>12}{'ratio':>7}{'file MB':>9}{'copy s':>8}"
          f"{'swap s':>8}{'share':>8}{'bare copy s':>13}")  # fmt: skip
    for name, records, r, base, disk in rows:
        share = (r["copy"] + r["swap"]) / r["seconds"]
        ratio = r["seconds"] / base["seconds"]
        print(f"{name:<16}{records:>11,}{r['seconds']:>9.1f}{base['seconds']:>12.1f}{ratio:>7.2f}"
              f"{r['mb']:>9.0f}{r['copy']:>8.2f}{r['swap']:>8.2f}{share:>8.1%}{disk:>13.2f}")  # fmt: skip
    print(
        "ratio: this code's time / the baseline's; share: copy and swap as a part of this code's command; bare "
        "copy: copyfile + fsync of the final file"
    )


if __name__ == "__main__":
    main()
