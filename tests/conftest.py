"""Shared fixtures: real Panora and Rootfi sandboxes on 127.0.0.1 per test, and loads into a real DuckDB file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from pipelines.load import run_load
from pipelines.settings import DEFAULT_DATASET
from pipelines.summary import LoadSummary
from sandbox.panora import PanoraSandbox, Settings, Store, seed_connections
from sandbox.rootfi import RootfiSandbox
from sandbox.rootfi import Settings as RootfiSettings

DATASET = DEFAULT_DATASET
# fast retries for tests: the schedule's shape is the same, only shorter
FAST_RETRIES = {"backoff_base": 0.01, "max_attempts": 4, "timeout": 5.0}


def cli_env(sandbox, database: Path, tmp_path: Path, rootfi: RootfiSandbox | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    if rootfi is not None:
        env.update(
            {
                "SOURCES__ROOTFI__API_KEY": rootfi.api_key,
                "SOURCES__ROOTFI__COMPANIES": json.dumps(rootfi.store.company_ids()),
                "SOURCES__ROOTFI__BASE_URL": rootfi.url,
                "SOURCES__ROOTFI__PAGE_SIZE": "15",
                "SOURCES__ROOTFI__BACKOFF_BASE": "0.01",
            }
        )
    env.update(
        {
            "SOURCES__PANORA__API_KEY": sandbox.api_key,
            "SOURCES__PANORA__CONNECTIONS": json.dumps(sandbox.store.tokens()),
            "SOURCES__PANORA__BASE_URL": sandbox.url,
            "SOURCES__PANORA__PAGE_SIZE": "15",
            "SOURCES__PANORA__BACKOFF_BASE": "0.01",
            "DESTINATION__DUCKDB__CREDENTIALS": str(database),
            "DLT_DATA_DIR": str(tmp_path / "dlt-data"),
        }
    )
    return env


@pytest.fixture(autouse=True)
def _isolated_dlt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's dlt config or leaves state in the home folder."""
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt-data"))
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "WARNING")
    for key in list(os.environ):
        if key.startswith(("SOURCES__", "DESTINATION__", "ACCOUNTING_ETL__")):
            monkeypatch.delenv(key)


@pytest.fixture
def sandbox() -> Iterator[PanoraSandbox]:
    """Seeded data, real-server quirks, rate limit off (tests that need it turn it on)."""
    server = PanoraSandbox(Store(seed_connections()), Settings(rate_limit=None))
    with server:
        yield server


@pytest.fixture
def rootfi() -> Iterator[RootfiSandbox]:
    """The Rootfi sandbox with its seeded companies, rate limit off, jobs that end within a second."""
    server = RootfiSandbox(settings=RootfiSettings(rate_limit=None))
    with server:
        yield server


class Warehouse:
    """A DuckDB file and a pipeline folder for one test, with a way to load into them and read them."""

    def __init__(self, root: Path, sandbox: PanoraSandbox, rootfi: RootfiSandbox | None = None) -> None:
        self.path = root / "warehouse.duckdb"
        self.pipelines_dir = root / "pipelines"
        self.sandbox = sandbox
        self.rootfi = rootfi

    def load_rootfi(self, **kwargs: Any) -> LoadSummary:
        assert self.rootfi is not None, "this test has no Rootfi sandbox"
        options = {**FAST_RETRIES, "page_size": 15, **kwargs.pop("source_options", {})}
        params: dict[str, Any] = {
            "api_key": self.rootfi.api_key,
            "connections": self.rootfi.store.company_ids(),
            "base_url": self.rootfi.url,
            "destination": dlt.destinations.duckdb(credentials=str(self.path)),
            "pipeline_name": "test_rootfi",
            "pipelines_dir": str(self.pipelines_dir),
            "source_options": options,
        }
        params.update(kwargs)
        return run_load("rootfi", **params)

    def load(self, **kwargs: Any) -> LoadSummary:
        options = {**FAST_RETRIES, **kwargs.pop("source_options", {})}
        params: dict[str, Any] = {
            "api_key": self.sandbox.api_key,
            "connections": self.sandbox.store.tokens(),
            "base_url": self.sandbox.url,
            "destination": dlt.destinations.duckdb(credentials=str(self.path)),
            "pipeline_name": "test_panora",
            "pipelines_dir": str(self.pipelines_dir),
            "source_options": options,
        }
        params.update(kwargs)
        return run_load(**params)

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql, list(params)).fetchall()

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]

    def count(self, table: str, where: str = "TRUE", *params: Any) -> int:
        return self.scalar(f"SELECT count(*) FROM {DATASET}.{table} WHERE {where}", *params)

    def tables(self) -> list[str]:
        rows = self.query("SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1", DATASET)
        return [r[0] for r in rows]

    def snapshot(self, tables: list[str]) -> dict[str, list[tuple]]:
        """Table contents without the columns that differ between two correct runs."""
        out = {}
        with duckdb.connect(str(self.path), read_only=True) as con:
            for table in tables:
                columns = [
                    r[0]
                    for r in con.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
                        [DATASET, table],
                    ).fetchall()
                    if not r[0].startswith("_dlt") and r[0] not in ("rejected_at",)
                ]
                select = ", ".join(f'"{c}"' for c in sorted(columns))
                out[table] = con.execute(f"SELECT {select} FROM {DATASET}.{table} ORDER BY ALL").fetchall()
        return out


@pytest.fixture
def warehouse(tmp_path: Path, sandbox: PanoraSandbox) -> Warehouse:
    return Warehouse(tmp_path, sandbox)


@pytest.fixture
def both(tmp_path: Path, sandbox: PanoraSandbox, rootfi: RootfiSandbox) -> Warehouse:
    """A warehouse fed by both providers' sandboxes."""
    return Warehouse(tmp_path, sandbox, rootfi)


DATA_TABLES = [
    "payments",
    "payments__line_items",
    "payments__tracking_categories",
    "invoices",
    "invoices__line_items",
    "invoices__tracking_categories",
    "invoices__line_items__tracking_categories",
    "tracking_categories",
]
