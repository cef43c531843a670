"""The providers a load can pull from, and how each is configured (dlt config/secrets, so environment
variables such as `SOURCES__ROOTFI__API_KEY` work). The jobs look providers up here; the sources know
nothing of the jobs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dlt

from pipelines.settings import ConfigurationError
from sources.panora import RESOURCES as PANORA_RESOURCES
from sources.panora import panora_source
from sources.rootfi import RESOURCES as ROOTFI_RESOURCES
from sources.rootfi import check_companies, rootfi_source


@dataclass(frozen=True)
class Provider:
    name: str
    resources: tuple[str, ...]
    accounts_setting: str  # the setting that maps aliases to the provider's accounts
    accounts_example: str
    accounts_are_secret: bool  # connection tokens are credentials; company ids are not
    make_source: Callable[..., Any]  # (api_key, accounts, **options) -> dlt source

    def setting(self, name: str) -> str:
        return f"SOURCES__{self.name.upper()}__{name.upper()}"

    def api_key(self, override: str | None = None) -> str:
        api_key = override or dlt.secrets.get(f"sources.{self.name}.api_key")
        if not api_key:
            raise ConfigurationError(f"no {self.name} API key: set {self.setting('api_key')}")
        return str(api_key)

    def accounts(self, override: Mapping[str, Any] | None = None, only: Sequence[str] | None = None) -> dict[str, str]:
        """alias -> account (token or company id), from the argument or the settings, optionally a subset."""
        key = f"sources.{self.name}.{self.accounts_setting}"
        if override is None:
            override = (dlt.secrets if self.accounts_are_secret else dlt.config).get(key, dict)
        if not override:
            raise ConfigurationError(
                f"no {self.name} {self.accounts_setting} configured: set "
                f"{self.setting(self.accounts_setting)} to {self.accounts_example}"
            )
        accounts = {str(alias): str(value) for alias, value in dict(override).items()}
        if only:
            unknown = sorted(set(only) - set(accounts))
            if unknown:
                raise ConfigurationError(f"unknown {self.name} alias(es) {unknown}; configured: {sorted(accounts)}")
            accounts = {alias: accounts[alias] for alias in only}
        return accounts

    def is_configured(self) -> bool:
        try:
            self.api_key()
            self.accounts()
        except ConfigurationError:
            return False
        return True


def _panora(api_key: str, accounts: dict[str, str], full_refresh: bool = False, **options: Any) -> Any:
    return panora_source(api_key=api_key, connections=accounts, **options)  # every Panora scan is complete


def _rootfi(api_key: str, accounts: dict[str, str], full_refresh: bool = False, **options: Any) -> Any:
    return rootfi_source(api_key=api_key, companies=check_companies(accounts), full_refresh=full_refresh, **options)


PROVIDERS: dict[str, Provider] = {
    "panora": Provider(
        "panora", PANORA_RESOURCES, "connections", '{"<alias>": "<connection token>", ...}', True, _panora
    ),
    "rootfi": Provider("rootfi", ROOTFI_RESOURCES, "companies", '{"<alias>": <company id>, ...}', False, _rootfi),
}


def provider(name: str) -> Provider:
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ConfigurationError(f"unknown provider {name!r}; choose from {sorted(PROVIDERS)}") from None


def configured_providers() -> list[Provider]:
    return [p for p in PROVIDERS.values() if p.is_configured()]


def check_distinct_aliases(accounts: Mapping[str, Mapping[str, Any]]) -> None:
    """Rows are told apart by their alias (`connection`) across providers: one alias, one account."""
    owners: dict[str, str] = {}
    for name, aliases in accounts.items():
        for alias in aliases:
            if alias in owners:
                raise ConfigurationError(
                    f"the alias {alias!r} is configured for both {owners[alias]} and {name}: "
                    "aliases name one account across all providers"
                )
            owners[alias] = name
