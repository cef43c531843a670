"""Runs this folder's dbt project in-process, with dbt's Python runner (`dbtRunner`), against a warehouse
described by a `DbtTarget`: no profile for the user to write, and no subprocess that imports dbt again.

The profile is written for each run into a private temporary folder and holds no secret: a password is
read by dbt from the environment variable `DBT_ENV_SECRET_ACCOUNTING_PASSWORD`, set for the run only (dbt
masks the values of `DBT_ENV_SECRET_*` variables in its logs and errors). dbt's artifacts and its log go to a
work folder per warehouse (`work_dir`), never into the installed package: the next run there reuses the
parse (dbt's partial parsing), which saves about 1.5 s a run.

dbt keeps process-wide state (its flags, the adapter registry, the event manager), so one run at a time
per process: `run_dbt` holds a lock. dbt also writes its artifacts in the work folder in place, not
atomically, so a second process on the same folder (two Dagster code servers starting, a load beside
`dagster dev`, test workers) could read a half-written `manifest.json` (seen: one cut at byte 341,622). So a
run holds the folder's file lock too, and hands back the artifacts the caller names, read before the lock
is let go (`DbtRun.artifacts`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transforms
from pipelines.warehouse.locks import file_lock

PROJECT_DIR = Path(transforms.__file__).parent  # the dbt project: transforms/ holds nothing else
ANALYST_MODELS_ENV = "ACCOUNTING_ETL__ANALYST_MODELS"  # read by dbt_project.yml's model-paths
PROJECT_FILES = ("*.sql", "*.yml", "*.csv", "*.md")
LEFT_BY_DBT = {"target", "logs", "dbt_packages"}
PROFILE_NAME = "accounting"  # `profile:` in dbt_project.yml
PASSWORD_ENV = "DBT_ENV_SECRET_ACCOUNTING_PASSWORD"
MODELS_SCHEMA_SUFFIX = "_reconciliation"  # `+schema: reconciliation` under dbt's default schema naming

_ONE_RUN_AT_A_TIME = threading.Lock()


class DbtError(RuntimeError):
    """dbt could not run at all (a project or profile that does not parse, a warehouse it cannot reach)."""


@dataclass(frozen=True)
class DbtTarget:
    """A warehouse as a dbt profile target: the adapter (`duckdb` or `postgres`), the schema the models
    read (dlt's dataset; the models go to `<schema>_reconciliation`), the profile's other fields, and the
    password, which never goes into the profile file."""

    adapter: str
    schema: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    threads: int = 1

    @classmethod
    def duckdb(cls, path: str, schema: str, settings: Mapping[str, str] | None = None) -> DbtTarget:
        """A DuckDB file; `settings` are DuckDB settings for dbt's connection (memory_limit, ...)."""
        fields: dict[str, Any] = {"path": str(Path(path).resolve())}
        if settings:
            fields["settings"] = dict(settings)
        return cls("duckdb", schema, fields)

    @classmethod
    def postgres(
        cls, host: str, port: int, user: str, dbname: str, schema: str, password: str | None = None
    ) -> DbtTarget:
        # several threads: PostgreSQL builds independent models side by side
        return cls("postgres", schema, {"host": host, "port": int(port), "user": user, "dbname": dbname}, password, 4)

    @property
    def database_name(self) -> str:
        """The database the models' relations are named in: a DuckDB file's stem (its catalog), PostgreSQL's
        database."""
        return Path(self.fields["path"]).stem if self.adapter == "duckdb" else str(self.fields["dbname"])

    @property
    def models_schema(self) -> str:
        return self.schema + MODELS_SCHEMA_SUFFIX

    def profile(self) -> dict[str, Any]:
        output: dict[str, Any] = {"type": self.adapter, "schema": self.schema, "threads": self.threads, **self.fields}
        if self.adapter == "postgres":
            output["password"] = "{{ env_var('" + PASSWORD_ENV + "', '') }}"
        return {PROFILE_NAME: {"target": "warehouse", "outputs": {"warehouse": output}}}

    def identity(self) -> str:
        """Names the warehouse and schema, never a secret: the key of its work folder."""
        return json.dumps([self.adapter, self.schema, dict(self.fields)], sort_keys=True, default=str)


@dataclass
class NodeResult:
    name: str
    kind: str  # model, seed, test
    status: str  # success, error, skipped, pass, fail, warn
    message: str = ""
    failures: int | None = None  # a test's failing rows

    @property
    def failed(self) -> bool:
        return self.status in ("error", "fail", "runtime error")

    def describe(self) -> str:
        what = f"{self.kind} {self.name}"
        if self.kind == "test" and self.failures:
            return f"{what} failed: {self.failures} row(s) break it"
        return f"{what} {self.status}: {' '.join(self.message.split())[:400]}"


@dataclass
class DbtRun:
    success: bool
    nodes: list[NodeResult]
    log_file: Path | None = None
    artifacts: dict[str, bytes] = field(default_factory=dict)  # name in dbt's target folder -> content

    @property
    def failures(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.failed]

    @property
    def skipped(self) -> list[NodeResult]:
        return [n for n in self.nodes if n.status == "skipped"]


@contextmanager
def _password_in_environment(password: str | None) -> Iterator[None]:
    before = os.environ.get(PASSWORD_ENV)
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = before


def _node_result(result: Any) -> NodeResult:
    node = result.node
    return NodeResult(
        name=getattr(node, "name", str(node)),
        kind=str(getattr(node, "resource_type", "node")),
        status=str(result.status),
        message=str(result.message or ""),
        failures=getattr(result, "failures", None),
    )


def _release_connections() -> None:
    """Close what dbt left open: its adapters keep their connections for the next command of a dbt process,
    and an open DuckDB file locks every other process out of it (measured: without this, another process
    cannot open the file after a build)."""
    from dbt.adapters.factory import reset_adapters

    reset_adapters()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # no dbt-duckdb
        return
    # drops the environment that holds the file; it closes the file as it goes (reset_adapters alone does not)
    DuckDBConnectionManager.close_all_connections()


# dbt parses the project before every command: about a second for a warehouse it has not seen, a quarter of
# one with its partial parse. A process that builds more than once (the tests, a notebook, a long-lived
# worker) parses once per kind of target and hands dbt the manifest (`dbtRunner(manifest=...)`): what dbt
# parses depends on the project's files, the variables and the names the models are built under (adapter,
# database, schema), not on where the file or the server is.
_MANIFESTS: dict[str, Any] = {}


def analyst_models_dir() -> Path | None:
    """The analysts' own models (ACCOUNTING_ETL__ANALYST_MODELS), built with the project's; None: the
    project's `analyst_models/` folder."""
    value = os.environ.get(ANALYST_MODELS_ENV)
    return Path(value).resolve() if value else None


def project_files() -> list[Path]:
    """Every file of the project that can change what dbt makes of it, the analysts' models included (not what
    a hand-run dbt leaves in the project: target/, logs/)."""
    found = []
    for root in [PROJECT_DIR, *filter(None, [analyst_models_dir()])]:
        for pattern in PROJECT_FILES:
            found += [p for p in root.rglob(pattern) if not set(p.relative_to(root).parts[:-1]) & LEFT_BY_DBT]
    return sorted(set(found))


def project_digest(digest: Any, files: Sequence[Path] | None = None) -> None:
    """Feed every project file (name and content) to a hashlib digest; `files`: `project_files()`, listed."""
    for path in project_files() if files is None else files:
        digest.update(str(path).encode() + b"\0" + path.read_bytes() + b"\0")


# The project's variables that only its models' SQL reads as it is compiled (macros/dates.sql,
# macros/reporting_currency.sql), never what dbt parses (a config, a ref, a source, a yml): a manifest parsed
# under one value of them serves every value, so a process that builds one as-of date after another (the
# tests, a notebook, a Dagster worker) parses once, not once a date (a build under new values took 11.8 s
# with its parse, 8.6 s without, on the demo's Panora data here). `raw_schema` is not among them: sources.yml
# names it. The analysts' models could read any variable in a config, so where one mentions a variable,
# every variable counts. `tests/unit/test_parse_key.py` holds the project to this.
COMPILE_TIME_VARIABLES = frozenset({"as_of", "known_at", "closed_through", "closed_at", "reporting_currency"})


def _parse_variables(variables: Mapping[str, Any] | None, files: Sequence[Path]) -> dict[str, Any]:
    """The variables that can change what dbt parses, for the project's `files`."""
    variables = dict(variables or {})
    if any(_is_analysts(p) and "var(" in p.read_text(errors="replace") for p in files):
        return variables
    return {name: value for name, value in variables.items() if name not in COMPILE_TIME_VARIABLES}


def _is_analysts(path: Path) -> bool:
    folder = analyst_models_dir() or PROJECT_DIR / "analyst_models"
    return path.is_relative_to(folder)


def _parse_key(target: DbtTarget, variables: Mapping[str, Any] | None) -> str:
    digest = hashlib.blake2b(digest_size=16)
    files = project_files()
    parsed_by = json.dumps(_parse_variables(variables, files), sort_keys=True)
    names = [target.adapter, target.database_name, target.schema, parsed_by]
    for part in names:
        digest.update(part.encode() + b"\0")
    project_digest(digest, files)
    return digest.hexdigest()


def _parsed_manifest(target: DbtTarget, variables: Mapping[str, Any] | None, common: list[str]) -> Any:
    """The project's manifest for this kind of target, parsed once per process (None when it does not parse:
    the command then parses and says why)."""
    from dbt.cli.main import dbtRunner

    key = _parse_key(target, variables)
    if key not in _MANIFESTS:
        parsed = dbtRunner().invoke(["parse", *common])
        if not parsed.success or parsed.result is None:
            return None
        _MANIFESTS[key] = parsed.result
    return _MANIFESTS[key]


@contextmanager
def _invocation(target: DbtTarget, work_dir: Path, variables: Mapping[str, Any] | None) -> Iterator[list[str]]:
    """dbt's arguments every command of this project takes against `target`, with its profile written and its
    password in the environment, holding both locks (one run at a time in this process, and in the work folder
    across processes); dbt's connections are closed after."""
    import yaml  # dbt's own dependency

    work_dir.mkdir(parents=True, exist_ok=True)
    common = [
        "--project-dir", str(PROJECT_DIR),
        "--target-path", str(work_dir / "target"),
        "--log-path", str(work_dir / "logs"),
        "--vars", json.dumps(dict(variables or {}), sort_keys=True, default=str),
        "--no-use-colors",
        "--no-send-anonymous-usage-stats",  # no traffic but to the warehouse
        "--no-version-check",
        "--quiet",
    ]  # fmt: skip
    with (
        _ONE_RUN_AT_A_TIME,
        file_lock(work_dir / "dbt.lock", "a dbt run", wait=True),
        tempfile.TemporaryDirectory(prefix="accounting-dbt-") as profiles_dir,
    ):
        (Path(profiles_dir) / "profiles.yml").write_text(yaml.safe_dump(target.profile()))
        common += ["--profiles-dir", profiles_dir]
        with _password_in_environment(target.password):
            try:
                yield common
            finally:
                _release_connections()


def parse_ahead(target: DbtTarget, work_dir: Path, variables: Mapping[str, Any] | None = None) -> bool:
    """Import dbt and parse the project for this kind of target now, so that a later `build` with the same
    variables starts building at once: about 4 s for a warehouse dbt has not seen (1.5 s of import, the rest
    parsing), for a caller with time to spare (a thread while the warehouse loads). Opens no connection.
    False when the project does not parse (the build then says why)."""
    with _invocation(target, work_dir, variables) as common:
        return _parsed_manifest(target, variables, common) is not None


def run_dbt(
    command: Sequence[str],
    target: DbtTarget,
    work_dir: Path,
    variables: Mapping[str, Any] | None = None,
    options: Sequence[str] = (),
    artifacts: Sequence[str] = (),
) -> DbtRun:
    """Run one dbt command (`["build"]`, `["docs", "generate"]`, ...) on this project against `target`, and
    read the named `artifacts` it left (`manifest.json`, ...) before another process can overwrite them.
    Raises `DbtError` when dbt cannot run at all; a model or test that fails is in the returned nodes."""
    from dbt.cli.main import dbtRunner

    with _invocation(target, work_dir, variables) as common:
        manifest = _parsed_manifest(target, variables, common) if command[0] == "build" else None
        outcome = dbtRunner(manifest=manifest).invoke([*command, *common, *options])
        read = {name: (work_dir / "target" / name).read_bytes() for name in artifacts if outcome.success}
    log_file = work_dir / "logs" / "dbt.log"
    result = outcome.result
    nodes = [_node_result(r) for r in getattr(result, "results", None) or []]
    if outcome.exception is not None:
        raise DbtError(f"dbt {' '.join(command)} could not run: {outcome.exception} (dbt's log: {log_file})")
    return DbtRun(success=bool(outcome.success), nodes=nodes, log_file=log_file, artifacts=read)
