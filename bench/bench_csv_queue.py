"""Queueing payments from a bank's CSV: the staging-relation path against row-by-row statements, in one run.

The row-by-row path is what `push --from-csv` did before (a DELETE and an INSERT per row in one transaction); it
is rebuilt here so the two are timed on the same machine, the same rows and the same table. Figures are medians
of `--repeat` runs on DuckDB, and on PostgreSQL when `ACCOUNTING_TEST_POSTGRES` names a server.

    .venv/bin/python bench/bench_csv_queue.py                  # about a minute
    .venv/bin/python bench/bench_csv_queue.py --rows 15000 --large 1000000
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SCHEMA = "bench_csv_queue"


def write_csv(path: Path, rows: int) -> Path:
    with path.open("w") as out:
        out.write("external_id,connection,invoice_id,currency,total_amount,transaction_date\n")
        for n in range(rows):
            out.write(f"bank-{n},acme-eu,inv-{n % 997},EUR,{n % 5000 + 1},2026-11-20\n")
    return path


def row_by_row(con: Any, schema: str, table: str, rows: list[dict[str, Any]]) -> int:
    """The path before: one DELETE and one INSERT per row, in one transaction."""
    from pipelines.push.ledger import transaction

    names = [c for c in rows[0] if c != "queued_at"]
    marks = ", ".join("?" for _ in names)  # PostgresConnection reads `?` as DuckDB does
    with transaction(con):
        for row in rows:
            con.execute(f"DELETE FROM {schema}.{table} WHERE external_id = ?", [row["external_id"]])
            con.execute(f"INSERT INTO {schema}.{table} ({', '.join(names)}) VALUES ({marks})", [row[n] for n in names])
    return len(rows)


def timed(connect: Callable[[], Any], queue: Callable[..., int], rows: list[dict[str, Any]], repeat: int) -> float:
    from pipelines.push.ledger import ensure_tables

    took = []
    for _ in range(repeat):
        con = connect()
        try:
            ensure_tables(con, SCHEMA)
            con.execute(f"DELETE FROM {SCHEMA}.outbound_payments")
            started = time.perf_counter()
            assert queue(con, SCHEMA, "outbound_payments", [dict(r) for r in rows]) == len(rows)
            took.append(time.perf_counter() - started)
            count = con.execute(f"SELECT count(*) FROM {SCHEMA}.outbound_payments").fetchone()[0]
            assert count == len(rows), count
        finally:
            con.close()
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000, help="rows timed on both paths")
    parser.add_argument("--large", type=int, default=200_000, help="rows timed on the staging path only")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import duckdb

    from pipelines.push.csv_import import queue_rows, read_csv

    with tempfile.TemporaryDirectory() as tmp:
        small = read_csv(write_csv(Path(tmp) / "small.csv", args.rows)).rows
        started = time.perf_counter()
        large = read_csv(write_csv(Path(tmp) / "large.csv", args.large)).rows
        reading = time.perf_counter() - started
        print(f"read and checked {args.large:,} CSV rows in {reading:.2f} s")

        targets: list[tuple[str, Callable[[], Any]]] = [
            ("duckdb", lambda: duckdb.connect(str(Path(tmp) / "queue.duckdb")))
        ]
        if url := os.environ.get("ACCOUNTING_TEST_POSTGRES"):
            from pipelines.warehouse.identity import PostgresConnection

            targets.append(("postgres", lambda: PostgresConnection.connect(url)))
        for name, connect in targets:
            before = timed(connect, row_by_row, small, args.repeat)
            after = timed(connect, queue_rows, small, args.repeat)
            bulk = timed(connect, queue_rows, large, args.repeat)
            print(f"{name:9} {args.rows:,} rows: row by row {before:.2f} s, staged {after:.3f} s "
                  f"({before / after:.0f}x); {args.large:,} rows staged {bulk:.2f} s "
                  f"({args.large / bulk:,.0f} rows/s)")  # fmt: skip


if __name__ == "__main__":
    main()
