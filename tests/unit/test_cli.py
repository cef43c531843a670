"""The `accounting-etl` command line as a user meets it, in-process: every subcommand's help, settings errors
before anything loads, what `load` hands on (the commands run in processes of their own:
`tests/integration/test_cli.py`)."""

from __future__ import annotations

import argparse
from datetime import date

import pytest

from pipelines.cli import COMMANDS, build_parser, main


def subcommands() -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    """Every subcommand the command line defines, with its parser and its line in the top-level help: read
    from `build_parser()`, not listed here."""
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices), {choice.dest: choice.help for choice in action._choices_actions}


SUBCOMMANDS, SUMMARIES = subcommands()


def _unwrapped(text: str) -> str:
    return "".join(text.split())  # argparse wraps lines (at spaces and hyphens)


def test_every_subcommand_the_parser_defines_is_one_main_runs():
    assert SUBCOMMANDS and set(SUBCOMMANDS) == set(COMMANDS)


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_every_subcommand_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: accounting-etl {command}" in text
    description, summary = SUBCOMMANDS[command].description, SUMMARIES.get(command)
    assert description and summary, f"`{command}` has no description or no line in the top-level help"
    assert _unwrapped(description) in _unwrapped(text)
    assert _unwrapped(summary) in _unwrapped(build_parser().format_help())
    if command == "load":
        for setting in ("SOURCES__PANORA__API_KEY", "SOURCES__PANORA__CONNECTIONS", "DESTINATION__DUCKDB__CREDENTIALS"):
            assert setting in text


def test_missing_settings_exit_2_with_what_to_set(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", "sk_test_x")
    assert main(["load"]) == 2
    assert "SOURCES__PANORA__CONNECTIONS" in capsys.readouterr().err


def test_unknown_resource_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", "sk_test_x")
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", '{"a": "token-a"}')
    assert main(["load", "--resources", "payments,bills"]) == 2
    assert "bills" in capsys.readouterr().err


def test_a_duckdb_file_named_like_the_dataset_is_refused_before_loading(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__PANORA__API_KEY", "sk_test_x")
    monkeypatch.setenv("SOURCES__PANORA__CONNECTIONS", '{"a": "token-a"}')
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "ledger.duckdb"))
    assert main(["load", "--dataset", "ledger"]) == 2
    assert "share a name" in capsys.readouterr().err
    assert not (tmp_path / "ledger.duckdb").exists()


def test_load_hands_its_as_of_date_to_the_models(monkeypatch):
    """`load --as-of` reaches the load's models build (the load itself is `run_loads`, tested elsewhere)."""
    from pipelines import load

    given: dict = {}
    monkeypatch.setattr(load, "run_loads", lambda *args, **kwargs: given.update(kwargs) or [])
    assert main(["load", "--as-of", "2030-06-30", "--no-transform"]) == 0
    assert given["as_of"] == date(2030, 6, 30) and given["transform"] is False
    assert main(["load"]) == 0 and given["as_of"] is None  # the day the load starts, decided by the load
