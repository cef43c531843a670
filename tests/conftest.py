"""Fixtures: real Panora, Rootfi and Merge sandboxes on 127.0.0.1 per test, and a warehouse (a real DuckDB file) to
load into. What tests share besides fixtures is in `support.py`. The tests are in two folders, each test
marked by its folder: `unit/` (in-process and quick, no server or process; `pytest tests/unit` or
`pytest -m unit`) and `integration/` (what needs the sandboxes, processes, dbt, notebooks, PostgreSQL or
Chromium)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.merge import MergeSandbox
from sandbox.merge import Settings as MergeSettings
from sandbox.panora import PanoraSandbox, Settings, Store, seed_connections
from sandbox.rootfi import RootfiSandbox
from sandbox.rootfi import Settings as RootfiSettings
from tests.support import LoadedWarehouses, Warehouse, isolated_environment

_COLLECTION_DATA_DIR = "_accounting_collection_dlt_data"


def pytest_configure(config: pytest.Config) -> None:
    """What modules do as they are imported, before any fixture applies (the Dagster definitions parse the dbt
    project into dlt's data folder), goes to a temporary folder too, never the home folder or `/var/dlt`."""
    folder = tempfile.mkdtemp(prefix="accounting-tests-dlt-")
    setattr(config, _COLLECTION_DATA_DIR, folder)
    os.environ["DLT_DATA_DIR"] = folder


_KINDS = ("unit", "integration")  # the folders under tests/, and the markers of their tests (pyproject.toml)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by its folder: `tests/unit/` (in-process, quick) or `tests/integration/` (sandbox
    servers, processes, dbt, notebooks, PostgreSQL, Chromium), so `-m unit` is the same fast loop as
    `pytest tests/unit`."""
    root = Path(__file__).parent
    for item in items:
        try:
            kind = item.path.relative_to(root).parts[0]
        except ValueError:
            continue
        if kind in _KINDS:
            item.add_marker(getattr(pytest.mark, kind))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, _COLLECTION_DATA_DIR, None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(autouse=True)
def _isolated_dlt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the user's dlt config or leaves state in the home folder."""
    settings, removed = isolated_environment(tmp_path)
    for key in removed:
        monkeypatch.delenv(key)
    for key, value in settings.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(autouse=True)
def _signal_handlers_kept() -> Iterator[None]:
    """A test's in-process Dagster run maps SIGTERM to SIGINT's handler and leaves it so. Where SIGINT is
    ignored (plain `pytest` started in the background by a non-interactive shell; xdist's workers install
    Python's handler), SIGTERM then stays ignored in the process and in every process a later test starts,
    which outlives `terminate()`. Each test ends with the handlers it began with."""
    kept = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    yield
    for number, handler in kept.items():
        if handler is not None and signal.getsignal(number) != handler:
            signal.signal(number, handler)


@pytest.fixture(scope="session")
def loaded_warehouses(tmp_path_factory: pytest.TempPathFactory) -> LoadedWarehouses:
    """Loaded warehouses (with their models) to copy from: see `LoadedWarehouses`."""
    return LoadedWarehouses(tmp_path_factory.mktemp("loaded"))


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


@pytest.fixture
def merge() -> Iterator[MergeSandbox]:
    """The Merge sandbox with its seeded linked accounts, rate limit off (tests that need it turn it on)."""
    server = MergeSandbox(settings=MergeSettings(rate_limit=None))
    with server:
        yield server


@pytest.fixture
def warehouse(tmp_path: Path, sandbox: PanoraSandbox) -> Warehouse:
    return Warehouse(tmp_path, sandbox)


@pytest.fixture
def both(tmp_path: Path, sandbox: PanoraSandbox, rootfi: RootfiSandbox) -> Warehouse:
    """A warehouse fed by both providers' sandboxes."""
    return Warehouse(tmp_path, sandbox, rootfi)
