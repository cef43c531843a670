"""What the tests share besides fixtures (`conftest.py` holds those): the warehouse a test loads into, the
environment of a command-line run, the fast retry policy, push helpers, killing a process at a chosen point,
and scripted HTTP answers. No test module imports another."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import dlt
import duckdb
import httpx
import pytest

from pipelines.load import run_load
from pipelines.push import ProviderAccess, PushSettings, PushSummary, SendRules, run_push
from pipelines.settings import DEFAULT_DATASET
from pipelines.summary import LoadSummary
from sandbox.panora import PanoraSandbox
from sandbox.rootfi import RootfiSandbox
from sources.common.http.budget import RateBudget, SqliteHitLog
from sources.common.http.client import RetryPolicy

DATASET = DEFAULT_DATASET
ROOT = Path(__file__).resolve().parents[1]  # the repository (tests/unit and tests/integration are one deeper)

# The one retry policy of fast tests: the schedule's shape is the real one, only shorter. Push tests cut the
# timeout further (their faults hold a request for a second), see PUSH_RETRIES.
FAST_POLICY = RetryPolicy(max_attempts=4, backoff_base=0.01, timeout=5.0)
FAST_RETRIES = {k: v for k, v in asdict(FAST_POLICY).items() if k in ("max_attempts", "backoff_base", "timeout")}
PUSH_RETRIES = replace(FAST_POLICY, max_attempts=3, timeout=0.5)

M = "accounting_raw_reconciliation"  # the models of the default dataset
# The window a paced client is told when a sandbox limits per 1 s window: half a second longer. A request is
# logged as it leaves and arrives a little later; the client's own margin (5% of the window, at most 1 s, and
# 0.05 s) is 1.05 s of a real 60 s window but 0.1 s of a 1 s one, less than a busy 2-core machine can delay a
# request. Unpaced,
# the sandbox would still answer 429 to most of these loads' requests.
PACED_WINDOW_SECONDS = 1.5


def isolated_environment(tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """What every test runs with: dlt's data in `tmp_path` (never the home folder), quiet dlt, a rate budget of
    its own; and the variables to remove (the user's settings of the sources, destinations and jobs)."""
    settings = {
        "DLT_DATA_DIR": str(tmp_path / "dlt-data"),
        "RUNTIME__LOG_LEVEL": "WARNING",
        **isolated_budget(tmp_path),
    }
    removed = [key for key in os.environ if key.startswith(("SOURCES__", "DESTINATION__", "ACCOUNTING_ETL__"))]
    return settings, removed


def isolated_budget(tmp_path: Path) -> dict[str, str]:
    """Settings that give each test a rate budget of its own (a sandbox's port may serve another test later),
    and, since the sandboxes' limits are off unless a test turns them on, a limit no test reaches before a
    limited sandbox's `X-RateLimit-Limit` teaches the real one."""
    return {
        "SOURCES__RATE_BUDGET": str(tmp_path / "rate-budget.sqlite"),
        "SOURCES__PANORA__RATE_LIMIT": "1000000",
        "SOURCES__ROOTFI__RATE_LIMIT": "1000000",
    }


def run_cli(env: dict[str, str], pipelines_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`accounting-etl load ARGS` in a process of its own, as cron runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines", "load", "--pipelines-dir", str(pipelines_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def cli_env(
    sandbox, database: Path, tmp_path: Path, rootfi: RootfiSandbox | None = None, merge: Any = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__"))}
    if merge is not None:
        env.update(
            {
                "SOURCES__MERGE__API_KEY": merge.api_key,
                "SOURCES__MERGE__ACCOUNTS": json.dumps(merge.accounts()),
                "SOURCES__MERGE__BASE_URL": merge.url,
                "SOURCES__MERGE__PAGE_SIZE": "15",
                "SOURCES__MERGE__BACKOFF_BASE": "0.01",
            }
        )
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
            **isolated_budget(tmp_path),
        }
    )
    return env


class Reads:
    """A value, a count of a raw table's rows, from a `query` of rows."""

    def query(self, sql: str, *params: Any) -> list[tuple]:
        raise NotImplementedError

    def scalar(self, sql: str, *params: Any) -> Any:
        return self.query(sql, *params)[0][0]

    def count(self, table: str, where: str = "TRUE", *params: Any) -> int:
        return self.scalar(f"SELECT count(*) FROM {DATASET}.{table} WHERE {where}", *params)


class Reader(Reads):
    """`Warehouse`'s reads on a connection held open (`Warehouse.reading`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def query(self, sql: str, *params: Any) -> list[tuple]:
        return self.con.execute(sql, list(params)).fetchall()


class Warehouse(Reads):
    """A DuckDB file and a pipeline folder for one test, with a way to load into them and read them."""

    def __init__(self, root: Path, sandbox: PanoraSandbox, rootfi: RootfiSandbox | None = None) -> None:
        self.path = root / "warehouse.duckdb"
        self.pipelines_dir = root / "pipelines"
        self.sandbox = sandbox
        self.rootfi = rootfi

    def load_from(self, provider: str, server: Any, **kwargs: Any) -> LoadSummary:
        """Load `provider` from its sandbox `server` into this warehouse, with fast retries; `kwargs` override
        `run_load`'s arguments (`source_options` are merged). No dbt build unless `transform=True`: a build
        takes seconds, and only the tests of the models and of what reads them need one."""
        params: dict[str, Any] = {
            "api_key": server.api_key,
            "connections": server.accounts(),
            "base_url": server.url,
            "destination": dlt.destinations.duckdb(credentials=str(self.path)),
            "pipeline_name": f"test_{provider}",
            "pipelines_dir": str(self.pipelines_dir),
            "transform": False,
            **kwargs,
            "source_options": {**FAST_RETRIES, **kwargs.get("source_options", {})},
        }
        return run_load(provider, **params)

    def load(self, **kwargs: Any) -> LoadSummary:
        return self.load_from("panora", self.sandbox, **kwargs)

    def load_rootfi(self, **kwargs: Any) -> LoadSummary:
        assert self.rootfi is not None, "this test has no Rootfi sandbox"
        options = {"page_size": 15, **kwargs.pop("source_options", {})}
        return self.load_from("rootfi", self.rootfi, source_options=options, **kwargs)

    def query(self, sql: str, *params: Any) -> list[tuple]:
        with self.reading() as reader:
            return reader.query(sql, *params)

    @contextmanager
    def reading(self) -> Iterator[Reader]:
        """One read-only connection for many reads: opening one costs DuckDB some 30 ms, which a check of every
        row, one `query` each, pays hundreds of times. Nothing may write the file while it is open."""
        with duckdb.connect(str(self.path), read_only=True) as con:
            yield Reader(con)

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
                    if not r[0].startswith("_dlt") and r[0] not in ("rejected_at", "_seen_at")
                ]
                if not columns:  # not there (a provider whose payments have no line items has no history of them)
                    out[table] = []
                    continue
                select = ", ".join(f'"{c}"' for c in sorted(columns))
                out[table] = con.execute(f"SELECT {select} FROM {DATASET}.{table} ORDER BY ALL").fetchall()
        return out


DATA_TABLES = [
    "payments",
    "payments__line_items",
    "payments__tracking_categories",
    "invoices",
    "invoices__line_items",
    "invoices__tracking_categories",
    "invoices__line_items__tracking_categories",
    "tracking_categories",
    "contacts",
    "invoices_history",
    "payments_history",
    "payments__line_items_history",
]


# -- push --------------------------------------------------------------------------------------------------
class Crash(BaseException):
    """Stands for the process dying at a chosen step (its ledger writes are committed, nothing else runs): a
    BaseException, like the SystemExit or KeyboardInterrupt that end a process, so no handler of errors meets it."""


QUICK_JOBS = SendRules(sends_per_record=3, job_wait_seconds=5.0, poll_seconds=0.05, settle_seconds=0.5,
                       resend_unknown_after=0)  # fmt: skip


def push(warehouse: Warehouse, providers: Sequence[str] = ("panora",), **options: Any) -> PushSummary:
    """Push from the test's warehouse to its sandboxes (the named providers), with fast retries and rules for
    servers that write atomically (a lookup that finds nothing is proof); `options` override PushSettings."""
    access = {}
    if "panora" in providers:
        access["panora"] = ProviderAccess(
            warehouse.sandbox.api_key, warehouse.sandbox.accounts(), warehouse.sandbox.url
        )
    if "rootfi" in providers:
        assert warehouse.rootfi is not None, "this test has no Rootfi sandbox"
        access["rootfi"] = ProviderAccess(warehouse.rootfi.api_key, warehouse.rootfi.accounts(), warehouse.rootfi.url)
    rules = {"settle_seconds": 1.5, "resend_unknown_after": 0} if providers == ("panora",) else asdict(QUICK_JOBS)
    rules.update({k: options.pop(k) for k in list(options) if k in SendRules.__dataclass_fields__})
    # a Rootfi POST waits for its job (0.15 s here): 0.5 s would leave a busy machine little room
    policy = replace(PUSH_RETRIES, timeout=3.0) if "rootfi" in providers else PUSH_RETRIES
    settings = PushSettings(database=str(warehouse.path), policy=policy, batch_size=3, lookup_page_size=200,
                            providers=access, rules=SendRules(**rules))  # fmt: skip
    return run_push(replace(settings, **options))


def push_rootfi(warehouse: Warehouse, **options: Any) -> PushSummary:
    return push(warehouse, ("rootfi",), **options)


class LoadedWarehouses:
    """Warehouses loaded from freshly seeded sandboxes, with their dbt models built, made once per test session
    and copied into each test that starts from one (the DuckDB file and dlt's pipeline folder): a load and a
    dbt build take seconds, and every test's sandbox holds the same records, ids and tokens (one seed).

    Kinds: `panora` (Panora loaded, models built), `rootfi` (Rootfi loaded, models built), `both` (Panora,
    then Rootfi, models built once at the end), `merge` (Merge loaded, page size 15, no models)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[str, Path] = {}

    def database(self, kind: str) -> Path:
        """The DuckDB file itself, for a test that only reads it."""
        return (self.made.get(kind) or self._make(kind)) / "warehouse.duckdb"

    def copy_into(self, warehouse: Warehouse, kind: str) -> Warehouse:
        source = self.made.get(kind) or self._make(kind)
        shutil.copyfile(source / "warehouse.duckdb", warehouse.path)
        shutil.copytree(source / "pipelines", warehouse.pipelines_dir)
        return warehouse

    def _make(self, kind: str) -> Path:
        from sandbox.merge import MergeSandbox
        from sandbox.merge import Settings as MergeSettings
        from sandbox.panora import Settings, Store, seed_connections
        from sandbox.rootfi import Settings as RootfiSettings

        folder = self.root / kind
        folder.mkdir()
        settings, removed = isolated_environment(folder)
        with (
            pytest.MonkeyPatch.context() as env,
            PanoraSandbox(Store(seed_connections()), Settings(rate_limit=None)) as sandbox,
            RootfiSandbox(settings=RootfiSettings(rate_limit=None)) as rootfi,
            MergeSandbox(settings=MergeSettings(rate_limit=None)) as merge,
        ):
            for key in removed:
                env.delenv(key)
            for key, value in settings.items():
                env.setenv(key, value)
            warehouse = Warehouse(folder, sandbox, rootfi)
            if kind in ("panora", "both"):
                summary = warehouse.load(transform=kind == "panora")
            if kind in ("rootfi", "both"):
                summary = warehouse.load_rootfi(transform=True)
            if kind == "merge":
                summary = warehouse.load_from("merge", merge, source_options={"page_size": 15})
                assert summary.status == "ok", [s.error for s in summary.failed_scans]
                self.made[kind] = folder
                return folder
            assert summary.status == "ok" and summary.models and not summary.models_error, summary.models_error
        self.made[kind] = folder
        return folder


def queue(warehouse: Warehouse, rows: list[dict], table: str = "outbound_payments") -> None:
    with duckdb.connect(str(warehouse.path)) as con:
        for row in rows:
            con.execute(
                f"INSERT INTO {DATASET}.{table} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                list(row.values()),
            )


def open_invoices(warehouse: Warehouse, n: int) -> list[tuple[str, str, str, int]]:
    """(connection, invoice_id, currency, open minor units) of Panora invoices with room for a payment."""
    return warehouse.query(
        f"SELECT connection, invoice_id, currency, open_minor FROM {M}.accounting__invoice_settlement "
        "WHERE provider = 'panora' AND status IN ('unpaid', 'partially_paid') AND open_minor >= 100 "
        "ORDER BY connection, invoice_id LIMIT ?",
        n,
    )


def created_in_api(sandbox: PanoraSandbox, external_id: str, kind: str = "payments") -> int:
    """How many records of `kind` the Panora sandbox holds under this external id (pushed ones carry it)."""
    return sum(
        1
        for alias in sandbox.accounts()
        for record in sandbox.store.all(alias, kind)
        if (record.get("field_mappings") or {}).get("external_id") == external_id
    )


def work_copy(warehouse: Warehouse) -> Path:
    """The copy a writer of the warehouse works on (`pipelines/warehouse/duckdb_file.py`)."""
    return warehouse.path.parent / f".{warehouse.path.name}.etl" / "work" / warehouse.path.name


def ledger(warehouse: Warehouse) -> dict[str, tuple]:
    rows = warehouse.query(f"SELECT external_id, status, record_id, error FROM {DATASET}.push_log")
    return {r[0]: r[1:] for r in rows}


def stopped_ledger(warehouse: Warehouse) -> dict[str, tuple]:
    """The ledger in the copy a stopped push was writing: what the next writer of the warehouse takes over."""
    with duckdb.connect(str(work_copy(warehouse)), read_only=True) as con:
        rows = con.execute(f"SELECT external_id, status, record_id, error FROM {DATASET}.push_log").fetchall()
    return {r[0]: r[1:] for r in rows}


def posts(warehouse: Warehouse) -> int:
    """The POSTs the Rootfi sandbox received (each one write job)."""
    assert warehouse.rootfi is not None
    return warehouse.rootfi.stats.requests["POST /accounting/invoice_payments"]


# -- processes ---------------------------------------------------------------------------------------------
def kill_when(command: Sequence[str], env: dict[str, str], reached: Callable[[], bool], timeout: float = 60.0) -> int:
    """Run `python -m pipelines <command>` and SIGKILL it as soon as `reached()` holds; returns its exit code
    (`-signal.SIGKILL` when it was killed; anything else means it ended before the point)."""
    process = subprocess.Popen([sys.executable, "-m", "pipelines", *command], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + timeout
    try:
        while process.poll() is None and time.monotonic() < deadline:
            if reached():
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def run_workers(script: str, arguments: Sequence[dict[str, Any]], env: dict[str, str]) -> list[dict[str, Any]]:
    """Run `python -c script <json>` once per argument set, all at once; each must exit 0 and print a JSON
    object as its last line (returned in order)."""
    root = ROOT
    processes = []
    for args in arguments:
        command = [sys.executable, "-c", script, json.dumps(args)]
        pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
        processes.append(subprocess.Popen(command, cwd=root, env=env, text=True, **pipes))
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# -- scripted HTTP -----------------------------------------------------------------------------------------
def scripted(*answers: Any) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that plays answers in order (an exception instance is raised); records requests."""
    calls: list[httpx.Request] = []
    pending = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = pending.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.MockTransport(handler), calls


def ok(body: Any = None) -> httpx.Response:
    return httpx.Response(200, json=body if body is not None else {"data": []})


class FakeClock:
    """Time that moves only when something sleeps; `slept` lists the sleeps."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def fake_budget(clock: FakeClock, limit: int = 2**31, window: float = 60.0, log: Any = None) -> RateBudget:
    """A rate budget on `clock` (its own in-memory log unless given one), every key its route."""
    return RateBudget(
        log or SqliteHitLog(":memory:", clock=clock), lambda route: route, limit, window, sleep=clock.sleep
    )
