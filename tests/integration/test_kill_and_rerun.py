"""The command-line job as a cron would run it: killed at any point (mid-scan, after the extract, mid-load,
while the models build) and rerun, it leaves the tables and models exactly as a clean run. That it leaks no
credential: `test_secret_leaks.py`."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest

from tests.support import DATA_TABLES, M, Warehouse, cli_env, kill_when, run_cli

PIPELINE = "accounting_panora"  # the CLI's default pipeline name


def package_dirs(pipelines_dir: Path, stage: str, pipeline: str = PIPELINE) -> list[Path]:
    return list((pipelines_dir / pipeline).glob(f"{stage}/*"))


def completed_jobs(pipelines_dir: Path, pipeline: str = PIPELINE) -> list[Path]:
    return list((pipelines_dir / pipeline).glob("load/normalized/*/completed_jobs/*"))


KILL_POINTS: dict[str, Callable] = {
    # while pages are still being fetched
    "mid_scan": lambda server, pdir, pipeline: server.stats.snapshot()["total_requests"] >= 6,
    # extraction finished, package not yet normalized or loaded
    "after_extract": lambda server, pdir, pipeline: bool(package_dirs(pdir, "normalize/extracted", pipeline)),
    # some tables of the package loaded, others not
    "mid_load": lambda server, pdir, pipeline: bool(completed_jobs(pdir, pipeline)),
}


# Mid-scan is where the providers differ (their pages, cursors and scan state): each provider is killed there.
# After the extract and mid-load, the run is in dlt's package machinery, the same for every provider: after
# the extract is taken once, mid-load (a package half in the tables, the likelier harm) by two providers.
KILL_CASES = [("mid_scan", "panora"), ("mid_scan", "rootfi"), ("mid_scan", "merge"), ("after_extract", "rootfi"),
              ("mid_load", "merge"), ("mid_load", "panora")]  # fmt: skip


@pytest.mark.parametrize(("point", "provider"), KILL_CASES)
def test_kill_at_any_point_then_rerun_equals_a_clean_run(
    tmp_path, sandbox, rootfi, merge, point, provider, loaded_warehouses
):
    server = {"panora": sandbox, "rootfi": rootfi, "merge": merge}[provider]
    server.settings.delay_seconds = 0.02  # a scan of many pages takes long enough to be interrupted
    clean = Warehouse(tmp_path / "clean", sandbox)  # a clean run of the same seeded data, made once a session
    clean.path.parent.mkdir()
    loaded_warehouses.copy_into(clean, provider)
    only = ["--provider", provider, "--no-transform"]  # the data only: the models have a kill test of their own

    condition = KILL_POINTS[point]
    for attempt in range(3):  # a run can finish before the kill point on a fast machine: set up again
        killed = Warehouse(tmp_path / f"killed-{attempt}", sandbox)
        killed.path.parent.mkdir()
        env = cli_env(sandbox, killed.path, tmp_path, rootfi, merge)
        server.reset_stats()
        reached = lambda folder=killed.pipelines_dir: condition(server, folder, f"accounting_{provider}")  # noqa: E731
        code = kill_when(["load", "--pipelines-dir", str(killed.pipelines_dir), *only], env, reached, timeout=120)
        if code == -signal.SIGKILL:
            break
    assert code == -signal.SIGKILL, f"three runs ended before the {point} kill point"

    rerun = run_cli(env, killed.pipelines_dir, *only)
    assert rerun.returncode == 0, rerun.stderr
    got, want = killed.snapshot(DATA_TABLES), clean.snapshot(DATA_TABLES)
    for table in DATA_TABLES:
        assert len(got[table]) == len(want[table]), (
            f"{table}: {len(got[table])} rows, a clean run has {len(want[table])}"
        )
        assert got[table] == want[table], table


# when a load saw a version, and what is made of it: two correct runs load at different moments
WHEN_SEEN = {"valid_from", "valid_to", "version_seen_at", "load_id", "version_key", "history_began", "seen_at",
             "latest_seen", "change_key"}  # fmt: skip


def model_tables(warehouse: Warehouse) -> dict[str, list[tuple]]:
    """Every model's rows, but for model_run (when and by which invocation) and when loads saw the versions."""
    with duckdb.connect(str(warehouse.path), read_only=True) as con:
        tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = ? ORDER BY 1"
        names = [r[0] for r in con.execute(tables, [M]).fetchall() if "model_run" not in r[0]]
        out = {}
        for name in names:
            columns = [r[0] for r in con.execute(f"DESCRIBE {M}.{name}").fetchall() if r[0] not in WHEN_SEEN]
            select = ", ".join(f'"{c}"' for c in columns)
            out[name] = con.execute(f"SELECT {select} FROM {M}.{name} ORDER BY ALL").fetchall()
        return out


def test_killed_while_the_models_build_a_rerun_builds_them_as_a_clean_run(tmp_path, sandbox, loaded_warehouses):
    clean = Warehouse(tmp_path / "clean", sandbox)  # a clean run of the same seeded data, made once a session
    clean.path.parent.mkdir()
    loaded_warehouses.copy_into(clean, "panora")

    killed = Warehouse(tmp_path / "killed", sandbox)
    killed.path.parent.mkdir()
    env = cli_env(sandbox, killed.path, killed.path.parent)
    logs = killed.path.parent / "dlt-data"

    def building() -> bool:  # some models are built, others not yet
        return any(log.read_text().count("OK created sql table model") >= 4 for log in logs.rglob("dbt.log"))

    code = kill_when(["load", "--pipelines-dir", str(killed.pipelines_dir)], env, building, timeout=120)
    assert code == -signal.SIGKILL, "the load ended before its models were half built"
    with duckdb.connect(str(killed.path), read_only=True) as con:
        assert con.execute(f"SELECT count(*) FROM information_schema.tables WHERE table_schema = '{M}' "
                           "AND table_name = 'accounting__model_run'").fetchone() == (0,)  # fmt: skip

    rerun = run_cli(env, killed.pipelines_dir)  # nothing new to load: the models are built all the same
    assert rerun.returncode == 0, rerun.stderr
    as_of = killed.scalar(f"SELECT as_of FROM {M}.accounting__model_run")
    if as_of != clean.scalar(f"SELECT as_of FROM {M}.accounting__model_run"):
        # the clean run was built before midnight (UTC), the rerun after: the clean one is read at the same date
        command = [sys.executable, "-m", "pipelines", "transform", "--database", str(clean.path), "--as-of", str(as_of)]
        built = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert built.returncode == 0, built.stderr
    assert model_tables(killed) == model_tables(clean)
