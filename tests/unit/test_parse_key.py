"""One parse of the dbt project serves every value of the variables its models read only when compiled
(`dbt_runner.COMPILE_TIME_VARIABLES`), and only those."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.models.dbt_runner import (
    ANALYST_MODELS_ENV,
    COMPILE_TIME_VARIABLES,
    PROJECT_DIR,
    DbtTarget,
    _parse_key,
    project_files,
)

TARGET = DbtTarget.duckdb("/nowhere/warehouse.duckdb", "accounting_raw")
VARIABLES = {"as_of": "2026-10-31", "raw_schema": "accounting_raw", "reporting_currency": ""}
VAR_CALL = re.compile(r"""var\(\s*['"](\w+)['"]""")


def test_the_compile_time_variables_are_read_only_in_compiled_sql_never_where_dbt_parses() -> None:
    seen = set()
    for path in project_files():
        text = path.read_text()
        for match in VAR_CALL.finditer(text):
            if match.group(1) not in COMPILE_TIME_VARIABLES:
                continue
            seen.add(match.group(1))
            where = f"{path.relative_to(PROJECT_DIR)}: var('{match.group(1)}')"
            assert path.suffix == ".sql", f"{where} is in a file dbt parses"
            assert "config(" not in text[: match.start()].rsplit(")", 1)[-1], f"{where} is in a config"
    assert seen == COMPILE_TIME_VARIABLES  # each is read somewhere: none is declared for nothing


def test_an_as_of_date_or_a_currency_keeps_the_parse_and_a_raw_schema_does_not() -> None:
    key = _parse_key(TARGET, VARIABLES)
    assert _parse_key(TARGET, {**VARIABLES, "as_of": "2026-11-30", "reporting_currency": "EUR"}) == key
    assert _parse_key(TARGET, {**VARIABLES, "known_at": "2026-11-30T23:59:59+00:00"}) == key
    assert _parse_key(TARGET, {**VARIABLES, "raw_schema": "other_raw"}) != key


def test_analysts_models_that_read_a_variable_make_every_variable_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ANALYST_MODELS_ENV, str(tmp_path))
    (tmp_path / "mine.sql").write_text("select 1 as one")
    key = _parse_key(TARGET, VARIABLES)
    assert _parse_key(TARGET, {**VARIABLES, "as_of": "2026-11-30"}) == key
    (tmp_path / "mine.sql").write_text("{{ config(enabled=var('as_of') > '2026') }} select 1 as one")
    key = _parse_key(TARGET, VARIABLES)
    assert _parse_key(TARGET, {**VARIABLES, "as_of": "2026-11-30"}) != key
