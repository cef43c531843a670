"""Python's cyclic garbage collector, tuned for a process that runs loads.

A load allocates millions of short-lived dicts and lists (the decoded JSON), which reference counting frees
on its own: they are not cycles. The cyclic collector still runs every 700 net allocations and, every so
often, walks every object the process holds (dlt's, pyarrow's, the imported modules): on a scan with no I/O
that was most of the time the collector cost, and freezing what exists before the load out of its walks,
with collections a thirtieth as frequent, takes nearly all of it back (`bench/bench_scale.py`'s CPU column).
Cycles that do arise (from exceptions, say) are still collected.

Freezing is process-wide, so this is the program's decision, not the library's: the command line applies it
(`pipelines/cli.py`, before a load); `run_load` called from a notebook or a Dagster worker leaves the
process as it found it. A worker that does nothing but loads may call `collect_less()` once at its start.
"""

from __future__ import annotations

import gc

FIRST_GENERATION_THRESHOLD = 20_000  # Python's default is 700


def collect_less() -> None:
    """Freeze what exists now out of the collector's walks and collect less often, for the rest of the
    process (call it after the heavy imports, so that they are among what is frozen)."""
    gc.freeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(max(thresholds[0], FIRST_GENERATION_THRESHOLD), *thresholds[1:])
