"""Follow the calls a Panora load from the sandbox makes inside `sources/common`, and print how often the call
path crosses from one module, and from one stage (a folder of `sources/common`, or a module beside them), to
another, and which stage calls which.

Not a benchmark of speed: a measure of how the code is arranged, run on any checkout so that two layouts
compare by one method.

    .venv/bin/python bench/record_way.py            # this checkout
    .venv/bin/python bench/record_way.py /path/to/an/older/checkout
"""

from __future__ import annotations

import collections
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]).resolve()
sys.path.insert(0, str(ROOT))
COMMON = str(ROOT / "sources" / "common") + os.sep

# one entry each time a call enters a module of sources/common from another file: (thread, module, caller)
Entry = tuple[int, str, str | None]
entries: list[Entry] = []
entries_lock = threading.Lock()


def module_of(filename: str) -> str:
    return filename[len(COMMON) :].removesuffix(".py")


def profile(frame: FrameType, event: str, _arg: Any) -> None:
    filename = frame.f_code.co_filename
    if event != "call" or not filename.startswith(COMMON):
        return
    caller = frame.f_back.f_code.co_filename if frame.f_back else ""
    if caller != filename:
        with entries_lock:
            entries.append(
                (threading.get_ident(), module_of(filename), module_of(caller) if caller.startswith(COMMON) else None)
            )


def crossings(unit: Callable[[str], str]) -> tuple[int, int]:
    """Crossings between units inside sources/common, and how many of them go back to a unit left before."""
    paths: dict[int, list[str]] = collections.defaultdict(list)
    for thread, module, caller in entries:
        if caller is not None and unit(caller) != unit(module):
            paths[thread].append(unit(module))
    steps = returns = 0
    for path in paths.values():
        left: set[str] = set()
        for before, here in zip([None, *path], path, strict=False):
            steps += 1
            returns += here in left
            if before is not None:
                left.add(before)
    return steps, returns


def load_from_sandbox() -> int:
    import dlt

    from pipelines.load import run_load
    from pipelines.registry import entry
    from pipelines.sandbox import environment_lines

    chosen = entry("panora")
    server = chosen.sandbox.start_sandbox(0, None, 7, 0.05, 0.0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for line in environment_lines(chosen.provider, server):
        name, value = line.removeprefix("export ").split("=", 1)
        os.environ[name] = value.strip("'")
    work = tempfile.mkdtemp()
    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        summary = run_load(
            "panora", destination=dlt.destinations.duckdb(os.path.join(work, "trace.duckdb")), pipelines_dir=work,
            transform=False, dataset_name="way", pipeline_name="way",
        )  # fmt: skip
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        server.httpd.shutdown()
    return sum(summary.rows_per_table.values())


def main() -> None:
    rows = load_from_sandbox()
    print(f"{ROOT}: {rows} rows, {len({module for _, module, _ in entries})} modules of sources/common entered")
    for name, unit in (("module", lambda m: m), ("stage", lambda m: m.split("/")[0])):
        steps, returns = crossings(unit)
        print(f"  {name} crossings {steps}, of which back to a {name} left before {returns}")
    calls = collections.Counter(
        (caller.split("/")[0], module.split("/")[0])
        for _, module, caller in entries
        if caller is not None and caller.split("/")[0] != module.split("/")[0]
    )
    print("  stage -> stage calls:")
    for (caller, callee), count in calls.most_common():
        print(f"    {caller:>14} -> {callee:<14} {count}")


if __name__ == "__main__":
    main()
