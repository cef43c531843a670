"""Two connections loading at the same time, each in its own process and dlt pipeline, into one warehouse:
one DuckDB file (no lock error: the writes take turns, the fetching overlaps) and one PostgreSQL dataset
(exact row counts)."""

from __future__ import annotations

import os
import uuid
from datetime import datetime

import duckdb
import pytest

from tests.support import DATASET, Warehouse, run_workers

WORKER = """
import json, sys
import dlt
from pipelines.load import connection_pipeline_name, run_load
args = json.loads(sys.argv[1])
destination = (dlt.destinations.duckdb(credentials=args["duckdb"]) if args.get("duckdb")
               else dlt.destinations.postgres(credentials=args["postgres"]))
summary = run_load(
    "panora", api_key=args["api_key"], connections=args["connections"], base_url=args["url"],
    only_connections=[args["alias"]], pipeline_name=connection_pipeline_name("panora", args["alias"]),
    pipelines_dir=args["pipelines_dir"], destination=destination, dataset_name=args["dataset"],
    source_options={"page_size": 10, "backoff_base": 0.01}, transform=False,
)
print(json.dumps({"status": summary.status, "started": summary.started_at.isoformat(),
                  "finished": summary.finished_at.isoformat(), "steps": summary.step_seconds}))
"""


def load_side_by_side(warehouse: Warehouse, aliases: list[str], **target: str) -> list[dict]:
    sandbox = warehouse.sandbox
    sandbox.settings.delay_seconds = 0.03  # long enough scans for the two loads to overlap
    arguments = [
        {
            "api_key": sandbox.api_key,
            "connections": sandbox.accounts(),
            "url": sandbox.url,
            "alias": alias,
            "pipelines_dir": str(warehouse.pipelines_dir),
            **target,
        }
        for alias in aliases
    ]
    results = run_workers(WORKER, arguments, {**os.environ, "RUNTIME__LOG_LEVEL": "WARNING"})
    assert all(r["status"] == "ok" for r in results)
    first, second = ((datetime.fromisoformat(r["started"]), datetime.fromisoformat(r["finished"])) for r in results)
    assert first[0] < second[1] and second[0] < first[1], "the two loads did not run at the same time"
    return results


def test_two_connections_load_at_once_into_one_duckdb_file(warehouse: Warehouse) -> None:
    aliases = ["acme-eu", "acme-us"]
    load_side_by_side(warehouse, aliases, duckdb=str(warehouse.path), dataset=DATASET)
    store = warehouse.sandbox.store
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        for alias in aliases:
            for table in ("payments", "invoices"):
                count = con.execute(f"SELECT count(*) FROM {DATASET}.{table} WHERE connection = ?", [alias]).fetchone()
                assert count[0] == store.count(alias, table), (alias, table)
            lines = con.execute(
                f"SELECT count(*) FROM {DATASET}.invoices__line_items WHERE connection = ?", [alias]
            ).fetchone()[0]
            assert lines == sum(len(i.get("line_items") or []) for i in store.all(alias, "invoices"))


@pytest.mark.skipif(
    not os.environ.get("ACCOUNTING_TEST_POSTGRES"), reason="no PostgreSQL server given: set ACCOUNTING_TEST_POSTGRES"
)
def test_two_connections_load_at_once_into_one_postgres_dataset(warehouse: Warehouse) -> None:
    import psycopg2

    url = os.environ["ACCOUNTING_TEST_POSTGRES"]
    dataset = f"acct_{uuid.uuid4().hex[:8]}"
    aliases = ["acme-eu", "globex-jp"]
    try:
        load_side_by_side(warehouse, aliases, postgres=url, dataset=dataset)
        store = warehouse.sandbox.store
        with psycopg2.connect(url) as con, con.cursor() as cursor:
            for alias in aliases:
                for table in ("payments", "invoices"):
                    cursor.execute(f"SELECT count(*) FROM {dataset}.{table} WHERE connection = %s", (alias,))
                    assert cursor.fetchone()[0] == store.count(alias, table), (alias, table)
            cursor.execute(f"SELECT count(*) FROM {dataset}.payments")
            assert cursor.fetchone()[0] == sum(store.count(a, "payments") for a in aliases)
    finally:
        with psycopg2.connect(url) as con, con.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {dataset} CASCADE")
            cursor.execute(f"DROP SCHEMA IF EXISTS {dataset}_staging CASCADE")
