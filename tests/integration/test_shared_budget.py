"""Several worker processes drawing on one API's rate budget, against a sandbox that limits as the real server
does (per route and client, a sliding log in which refused requests count): exact tables, and no storm of
429s, whether the budget is the per-machine file or a PostgreSQL database the workers share and nothing else."""

from __future__ import annotations

import os

import duckdb
import pytest

from tests.support import DATASET, PACED_WINDOW_SECONDS, Warehouse, run_workers

LIMIT, WINDOW = 8, 1.0  # per route and client: tight, so that three workers would meet it at once
WORKER = """
import json, sys
import dlt
from pipelines.load import connection_pipeline_name, run_load
args = json.loads(sys.argv[1])
summary = run_load(
    "panora", api_key=args["api_key"], connections=args["connections"], base_url=args["url"],
    only_connections=[args["alias"]], pipeline_name=connection_pipeline_name("panora", args["alias"]),
    pipelines_dir=args["pipelines_dir"], destination=dlt.destinations.duckdb(credentials=args["duckdb"]),
    source_options={"page_size": 10, "backoff_base": 0.01}, transform=False,
)
print(json.dumps({"status": summary.status, "requests": summary.requests}))
"""


def load_in_processes(warehouse: Warehouse, budget: dict[str, str], aliases: list[str]) -> list[dict]:
    """One process per connection, each with its own pipeline folder and DuckDB file, sharing only `budget`
    (the settings that say where the rate budget is kept) and the documented limit."""
    sandbox = warehouse.sandbox
    sandbox.settings.rate_limit = LIMIT
    sandbox.settings.rate_window_seconds = WINDOW
    env = {
        **os.environ,
        "RUNTIME__LOG_LEVEL": "WARNING",
        "SOURCES__PANORA__RATE_LIMIT": str(LIMIT),
        "SOURCES__PANORA__RATE_WINDOW_SECONDS": str(PACED_WINDOW_SECONDS),
        **budget,
    }
    arguments = [
        {
            "api_key": sandbox.api_key,
            "connections": sandbox.accounts(),
            "url": sandbox.url,
            "alias": alias,
            "pipelines_dir": str(warehouse.pipelines_dir / alias),
            "duckdb": str(warehouse.path.parent / f"{alias}.duckdb"),
        }
        for alias in aliases
    ]
    results = run_workers(WORKER, arguments, env)
    assert all(r["status"] == "ok" for r in results)
    for alias in aliases:
        with duckdb.connect(str(warehouse.path.parent / f"{alias}.duckdb"), read_only=True) as con:
            for table, kind in (
                ("payments", "payments"),
                ("invoices", "invoices"),
                ("tracking_categories", "trackingcategories"),
            ):
                count = con.execute(f"SELECT count(*) FROM {DATASET}.{table}").fetchone()[0]
                assert count == sandbox.store.count(alias, kind), (alias, table)
    return results


def assert_no_429_storm(warehouse: Warehouse, results: list[dict]) -> None:
    requests = sum(r["requests"]["requests"] for r in results)
    throttled = warehouse.sandbox.stats.throttled
    assert requests > 3 * LIMIT  # several windows' budget
    assert throttled <= max(1, requests // 100), f"{throttled} of {requests} requests answered 429"


def test_three_processes_share_the_machines_budget_without_a_storm_of_429s(warehouse: Warehouse) -> None:
    budget = {"SOURCES__RATE_BUDGET": os.environ["SOURCES__RATE_BUDGET"]}  # this test's per-machine file
    results = load_in_processes(warehouse, budget, ["acme-eu", "acme-us", "globex-jp"])
    assert_no_429_storm(warehouse, results)


@pytest.mark.skipif(
    not os.environ.get("ACCOUNTING_TEST_POSTGRES"), reason="no PostgreSQL server given: set ACCOUNTING_TEST_POSTGRES"
)
def test_two_processes_that_share_only_a_postgres_budget_stay_under_the_limit(warehouse: Warehouse) -> None:
    import psycopg2

    url = os.environ["ACCOUNTING_TEST_POSTGRES"]
    results = load_in_processes(warehouse, {"SOURCES__RATE_BUDGET": url}, ["acme-eu", "acme-us"])
    assert_no_429_storm(warehouse, results)
    with psycopg2.connect(url) as con, con.cursor() as cursor:
        host = warehouse.sandbox.url.removeprefix("http://")
        cursor.execute("SELECT key, hits FROM accounting_etl.rate_budget_limits WHERE key LIKE %s", (f"% {host} %",))
        routes = ("payments", "invoices", "trackingcategories", "contacts")
        assert dict(cursor.fetchall()) == {f"panora {host} GET /accounting/{route}": LIMIT for route in routes}
