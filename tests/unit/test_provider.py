"""What a provider package offers (`sources/common/provider.py`): its settings as `SOURCES__<NAME>__<KEY>`, read
from an argument, else dlt's config and secrets, else the spec's default; a setting that is missing or wrong
is a `ConfigurationError` that names the variable to set. (That each source takes exactly its spec's
settings: `test_settings_spec.py`.)"""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from dlt.common.configuration import configspec

from pipelines.registry import providers
from sources.common.errors import ConfigurationError
from sources.common.provider import Provider
from sources.common.settings import SecretSentinel, SourceSettings, described, setting


@configspec
class DemoSettings(SourceSettings):
    api_key: Annotated[str, SecretSentinel] = setting(None, "Demo API key", required=True)
    ledgers: Annotated[dict[str, str], SecretSentinel] = setting(None, "alias -> ledger id", required=True)
    base_url: str = setting("https://api.demo.test", "API root")


def check_ledgers(ledgers: Any) -> dict[str, str]:
    if not all(isinstance(v, str) and v for v in ledgers.values()):
        raise ValueError("SOURCES__DEMO__LEDGERS: every alias needs a ledger id")
    return dict(ledgers)


DEMO = Provider(
    name="demo",
    title="Demo",
    resources=("payments",),
    accounts_setting="ledgers",
    settings_spec=DemoSettings,
    make_source=lambda api_key, accounts, **options: (api_key, accounts, options),
    check_accounts=check_ledgers,
)


def test_a_setting_is_named_by_its_environment_variable_and_own_settings_come_first():
    assert DEMO.setting("api_key") == "SOURCES__DEMO__API_KEY"
    assert DEMO.setting("max_attempts") == "SOURCES__DEMO__MAX_ATTEMPTS"
    keys = [s.key for s in DEMO.settings]
    assert keys[:2] == ["api_key", "ledgers"]
    assert set(keys[2:]) == {s.key for s in described(SourceSettings)}
    api_key = DEMO.settings[0]
    assert (api_key.help, api_key.secret, api_key.required, api_key.shown_default()) == (
        "Demo API key", True, True, "required"
    )  # fmt: skip


def test_a_missing_setting_names_the_variable_and_what_it_is():
    with pytest.raises(ConfigurationError) as raised:
        DEMO.api_key()
    assert str(raised.value) == "Demo setting missing: set SOURCES__DEMO__API_KEY (Demo API key)"
    with pytest.raises(ConfigurationError, match=r"set SOURCES__DEMO__LEDGERS \(alias -> ledger id\)"):
        DEMO.accounts()
    with pytest.raises(ConfigurationError, match="SOURCES__DEMO__LEDGERS"):
        DEMO.accounts({})  # given, but empty
    assert DEMO.is_configured() is False


def test_settings_come_from_the_argument_else_the_environment_else_the_default(monkeypatch):
    assert DEMO.base_url() == DEMO.default_base_url == "https://api.demo.test"
    monkeypatch.setenv("SOURCES__DEMO__API_KEY", "sk_demo_from_env")
    monkeypatch.setenv("SOURCES__DEMO__BASE_URL", "http://127.0.0.1:3000")
    monkeypatch.setenv("SOURCES__DEMO__LEDGERS", json.dumps({"eu": "L-1", "us": "L-2"}))
    assert DEMO.api_key() == "sk_demo_from_env" and DEMO.api_key("sk_given") == "sk_given"
    assert DEMO.base_url() == "http://127.0.0.1:3000" and DEMO.base_url("http://other") == "http://other"
    assert DEMO.accounts() == {"eu": "L-1", "us": "L-2"}
    assert DEMO.accounts({"x": "L-9"}) == {"x": "L-9"}
    assert DEMO.is_configured() is True


def test_accounts_are_checked_and_a_subset_is_only_of_configured_aliases():
    configured = {"eu": "L-1", "us": "L-2", "jp": "L-3"}
    assert DEMO.accounts(configured, only=["jp", "eu"]) == {"jp": "L-3", "eu": "L-1"}
    with pytest.raises(ConfigurationError) as raised:
        DEMO.accounts(configured, only=["eu", "uk"])
    assert "unknown Demo alias(es) ['uk']" in str(raised.value) and "['eu', 'jp', 'us']" in str(raised.value)
    with pytest.raises(ConfigurationError, match="every alias needs a ledger id"):
        DEMO.accounts({"eu": ""})  # the provider's own check, as a settings error


def test_the_shape_of_a_source_is_built_with_placeholder_settings():
    api_key, accounts, options = DEMO.spec_source()
    assert api_key == "configured at run time" and accounts == {"partition": "0"} and options == {}


@pytest.mark.parametrize("provider", providers(), ids=[p.name for p in providers()])
def test_every_providers_key_and_accounts_are_required_and_secret_as_it_says(provider):
    keys = {s.key: s for s in provider.settings}
    assert keys["api_key"].required and keys["api_key"].secret
    assert keys[provider.accounts_setting].required
    # connection tokens are credentials, company ids are not: read from the spec's types
    assert keys[provider.accounts_setting].secret == {"panora": True, "rootfi": False}.get(provider.name, True)
    assert provider.accounts_are_secret == keys[provider.accounts_setting].secret
    assert provider.default_base_url.startswith("https://")


@pytest.mark.parametrize("provider", providers(), ids=[p.name for p in providers()])
def test_every_provider_is_unconfigured_until_its_settings_are_set(provider, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no project's .dlt/ folder: the tests run without the user's settings
    assert provider.is_configured() is False
    with pytest.raises(ConfigurationError, match=provider.setting("api_key")):
        provider.api_key()
    with pytest.raises(ConfigurationError, match=provider.setting(provider.accounts_setting)):
        provider.accounts()
