"""Where the jobs read and write, resolved once from dlt's config (environment variables work)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

import dlt
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

from pipelines.models.dbt_runner import MODELS_SCHEMA_SUFFIX
from sources.common.currencies import CurrencyError, minor_unit_exponent
from sources.common.errors import ConfigurationError

__all__ = ["JOB_SETTINGS", "ConfigurationError", "bad_setting", "check_identifier", "dataset_name", "duckdb_file"]

# Not `accounting`: DuckDB 2.0 names the catalog of `accounting.duckdb` "accounting", and a schema of
# the same name makes every `accounting.<table>` reference ambiguous (a Binder Error, even for dlt).
DEFAULT_DATASET = "accounting_raw"
DEFAULT_DUCKDB_FILE = "accounting.duckdb"
DEFAULT_DUCKDB_MEMORY_LIMIT = "256MB"  # DuckDB's own default, 80% of the machine, let a load grow to ~1.9 GB
DEFAULT_BUSY_SECONDS = 30.0
DEFAULT_DESTINATION = "duckdb"
DEFAULT_LOAD_SCHEDULE = "0 */6 * * *"  # Dagster's loads, UTC
DEFAULT_STUCK_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class JobSetting:
    """One setting of the jobs (not of a provider), as `--help` and the docs list it."""

    variable: str
    help: str
    default: str


# Every setting the jobs read, in one list: `load --help` and the docs' settings table are generated from it
# (the providers' settings come from their specs, `sources/common/settings.py`).
JOB_SETTINGS = (
    JobSetting(
        "ACCOUNTING_ETL__DESTINATION",
        "any dlt destination name (duckdb, postgres, motherduck, ...)",
        DEFAULT_DESTINATION,
    ),
    JobSetting(
        "DESTINATION__DUCKDB__CREDENTIALS", "the DuckDB file", f"{DEFAULT_DUCKDB_FILE} in the working directory"
    ),
    JobSetting(
        "ACCOUNTING_ETL__DATASET_NAME",
        "dataset (schema) the tables go to: lowercase letters, digits and _, at most 63 characters; the models "
        "go to <dataset>_reconciliation",
        DEFAULT_DATASET,
    ),
    JobSetting(
        "ACCOUNTING_ETL__ANALYST_MODELS",
        "a folder of your own dbt models (an absolute path), built with the project's",
        "transforms/analyst_models/",
    ),
    JobSetting(
        "ACCOUNTING_ETL__DUCKDB_MEMORY_LIMIT",
        "the most memory DuckDB keeps while loading and building the models (it spills the rest to disk)",
        DEFAULT_DUCKDB_MEMORY_LIMIT,
    ),
    JobSetting(
        "ACCOUNTING_ETL__WAREHOUSE_BUSY_SECONDS",
        "how long a job waits for a process holding the DuckDB file open for writing outside the jobs (exit 4)",
        f"{DEFAULT_BUSY_SECONDS:g}",
    ),
    JobSetting(
        "ACCOUNTING_ETL__PUSH_STUCK_AFTER",
        "how long a pending or submitted push row may last before `status` lists it as needing a person",
        f"{DEFAULT_STUCK_AFTER_SECONDS / 3600:g}h",
    ),
    JobSetting(
        "ACCOUNTING_ETL__REPORTING_CURRENCY",
        "the ISO 4217 code the models and the report total every currency in, at the rates of <dataset>.fx_rates "
        "(--reporting-currency wins)",
        "none: nothing converted",
    ),
    JobSetting(
        "ACCOUNTING_ETL__CONNECTIONS_PER_PARTITION", "Dagster: how many connections one partition loads together", "1"
    ),
    JobSetting("ACCOUNTING_ETL__LOAD_SCHEDULE", "Dagster: the loads' cron schedule (UTC)", DEFAULT_LOAD_SCHEDULE),
)


# What every warehouse takes unquoted and dlt's naming leaves as it is: the jobs splice these names into SQL
# (`<dataset>.push_log`), so a name outside this is refused before anything runs, never met half-way.
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_identifier(name: str, what: str) -> str:
    """`name` when it is a plain lowercase SQL identifier, else `ConfigurationError` saying what would work."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ConfigurationError(
            f"the {what} {name!r} cannot be used: it must be lowercase letters, digits and underscores, "
            "starting with a letter or an underscore, at most 63 characters (e.g. accounting_raw)"
        )
    return name


def dataset_name(override: str | None = None) -> str:
    """ACCOUNTING_ETL__DATASET_NAME, else `accounting_raw`; refused unless a plain identifier."""
    name = override or dlt.config.get("accounting_etl.dataset_name") or DEFAULT_DATASET
    return check_identifier(str(name), "dataset name (ACCOUNTING_ETL__DATASET_NAME, --dataset)")


def models_schema(dataset: str | None = None) -> str:
    """Where the models of a dataset are: `<dataset>_reconciliation` (dbt's naming of the project's custom
    schema under a target schema), so two datasets on one server keep models of their own."""
    return check_identifier(
        dataset_name(dataset) + MODELS_SCHEMA_SUFFIX, "models schema (dataset name + _reconciliation)"
    )


def reporting_currency(override: str | None = None) -> str | None:
    """--reporting-currency, else ACCOUNTING_ETL__REPORTING_CURRENCY, else None (nothing converted); upper
    case, and refused unless an ISO 4217 code with a minor unit (totals are rounded to it)."""
    code = override or dlt.config.get("accounting_etl.reporting_currency")
    if code is None or not str(code).strip():
        return None
    try:
        minor_unit_exponent(str(code))
    except CurrencyError as exc:
        raise ConfigurationError(
            f"the reporting currency (ACCOUNTING_ETL__REPORTING_CURRENCY, --reporting-currency) cannot be used: {exc}"
        ) from None
    return str(code).strip().upper()


def duckdb_file(override: str | None = None) -> str:
    """DESTINATION__DUCKDB__CREDENTIALS, else `accounting.duckdb` in the working directory."""
    return override or dlt.config.get("destination.duckdb.credentials") or DEFAULT_DUCKDB_FILE


_SECRET_WORDS = ("key", "token", "secret", "password", "credentials", "connections", "accounts")


def bad_setting(exc: BaseException) -> str | None:
    """What is wrong with a setting that dlt could not read as its type (a JSON typo in
    SOURCES__PANORA__CONNECTIONS, a page size that is no number), naming its environment variable; None when
    `exc` (or what caused it) is no such error. A secret's value is never repeated."""
    seen: set[int] = set()
    found: BaseException | None = exc
    while found is not None and not isinstance(found, ConfigValueCannotBeCoercedException) and id(found) not in seen:
        seen.add(id(found))
        found = found.__cause__ or found.__context__
    if not isinstance(found, ConfigValueCannotBeCoercedException):
        return None
    name = str(found.field_name)
    if "." in name:
        variable = name.upper().replace(".", "__")
    else:  # a source's argument: the variable set for it
        candidates = sorted(k for k in os.environ if k.upper().endswith(f"__{name.upper()}"))
        variable = candidates[0] if candidates else name.upper()
    hint = getattr(found.hint, "__name__", str(found.hint))
    wanted = {"dict": "a JSON object", "list": "a JSON list", "int": "a whole number", "float": "a number",
              "bool": "true or false"}.get(hint, hint)  # fmt: skip
    value: Any = found.field_value
    why = ""
    if isinstance(value, str) and wanted.startswith("a JSON"):
        try:
            json.loads(value)
        except ValueError as error:
            why = f" ({error})"  # where the JSON breaks, not what it holds
    shown = "" if any(w in variable.lower() for w in _SECRET_WORDS) else f" {str(value)[:60]!r}"
    return f"the setting {variable}{shown} is not {wanted}{why}"
