"""One source of truth for settings (`sources/common/settings.py`): every provider's source takes exactly its
spec's settings with the spec's defaults, and the help, the docs' table and the missing-setting error are
generated from the specs."""

from __future__ import annotations

import dataclasses

import pytest

from pipelines.cli import load_settings_help
from pipelines.registry import providers
from pipelines.settings import JOB_SETTINGS
from sources.common.errors import ConfigurationError
from sources.common.settings import SHARED, SourceSettings, unresolved_arguments


@pytest.mark.parametrize("provider", providers(), ids=lambda p: p.name)
def test_each_providers_source_takes_its_specs_settings_with_the_specs_defaults(provider):
    source = provider.make_source.__globals__[f"{provider.name}_source"]
    assert unresolved_arguments(source, provider.settings_spec) == []
    assert issubclass(provider.settings_spec, SourceSettings)
    keys = [s.key for s in provider.settings]
    shared = {f.name for f in dataclasses.fields(SourceSettings) if "help" in f.metadata}
    assert shared and shared <= set(keys)  # the shared ones, every one
    assert {"api_key", provider.accounts_setting} <= set(keys)
    assert all(s.help for s in provider.settings)


def test_a_source_whose_default_drifts_from_its_spec_is_caught():
    def source(base_url: str = "https://elsewhere", page_size: int = 10) -> None: ...

    @dataclasses.dataclass
    class Spec:
        base_url: str = dataclasses.field(default="https://api", metadata={"help": "root", "required": False})
        timeout: float = dataclasses.field(default=1.0, metadata={"help": "t", "required": False})

    assert unresolved_arguments(source, Spec) == [
        "base_url: the source's default 'https://elsewhere', the spec's 'https://api'",
        "page_size: not in the spec",
        "timeout: not an argument of the source",
    ]


def test_load_help_lists_every_declared_setting():
    text = load_settings_help()
    for provider in providers():
        for s in provider.settings:
            assert provider.setting(s.key) in text
    for s in JOB_SETTINGS:
        assert s.variable in text
    assert all(f"SOURCES__{s.key.upper()}" in text for s in SHARED)


def test_a_missing_setting_names_its_variable_and_what_it_is(monkeypatch):
    provider = providers()[0]
    for name in (f"SOURCES__{provider.name.upper()}__API_KEY", f"{provider.name.upper()}__API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError) as error:
        provider.api_key()
    assert provider.setting("api_key") in str(error.value)
    assert next(s.help for s in provider.settings if s.key == "api_key") in str(error.value)
