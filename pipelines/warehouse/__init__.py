"""Warehouse access for the jobs: which warehouse (`identity`: what it is, where its locks and scratch state
live), the one writer rule (`duckdb_file` for a DuckDB file, advisory locks for PostgreSQL), how the commands
open it (`access`), how load packages are written for it (`destination`, `duckdb_merge`) and the locks
(`locks`). `writing` is the way for your own writes: `from pipelines.warehouse import writing`."""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "writing":  # imported when asked for: the jobs import this package's modules, not this name
        from pipelines.warehouse.access import writing

        return writing
    raise AttributeError(name)
