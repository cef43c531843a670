"""What a provider package offers: its name, its settings, its dlt source and its writer. Each provider package
(`sources/<name>/`) exports one `Provider` as `PROVIDER`; the jobs find it through the registry
(`pipelines/registry.py`). Nothing here knows of a job: the settings are read from dlt's config and secrets,
so `SOURCES__<NAME>__...` environment variables work wherever the source runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dlt

from sources.common.errors import ConfigurationError
from sources.common.settings import Described, SourceSettings, described
from sources.common.writer import Writer, WriterOptions


@dataclass(frozen=True)
class Provider:
    name: str  # lowercase: the settings' prefix, the `provider` column, the dlt source's name
    title: str  # as people write it, for messages
    resources: tuple[str, ...]  # the resources its source yields (payments, invoices, tracking_categories)
    accounts_setting: str  # the setting that maps aliases to the provider's accounts
    # its settings (`sources/<name>/settings.py`): what its source takes, what `--help` and the docs list
    settings_spec: type[SourceSettings]
    # (api_key, accounts, *, full_refresh, **source options) -> the dlt source over those accounts
    make_source: Callable[..., Any]
    check_accounts: Callable[[Any], dict[str, str]]  # the configured value -> alias -> account, or ValueError
    # what push may create through it ("payment", "invoice"), and the writer that does
    pushes: frozenset[str] = frozenset()
    make_writer: Callable[[str, str, WriterOptions], Writer] | None = None  # (api_key, base_url, options)
    # (kind, queued row) -> why this provider cannot take the row as it is, or None: its own words for a field
    # (Merge's payment `type`), said in the plan, dry runs included, instead of at the send
    row_problem: Callable[[str, Mapping[str, Any]], str | None] | None = None

    def setting(self, key: str) -> str:
        return f"SOURCES__{self.name.upper()}__{key.upper()}"

    @property
    def settings(self) -> tuple[Described, ...]:
        """Every setting of this provider, its own first, as its spec documents them."""
        return tuple(described(self.settings_spec))

    def _described(self, key: str) -> Described:
        return next(s for s in self.settings if s.key == key)

    @property
    def accounts_are_secret(self) -> bool:
        """Whether its accounts are credentials (connection tokens) or not (company ids), as its spec types them."""
        return self._described(self.accounts_setting).secret

    @property
    def default_base_url(self) -> str:
        return str(self._described("base_url").default)

    def missing(self, key: str) -> ConfigurationError:
        """The error for a required setting that is not set: the variable to set, and what it is."""
        return ConfigurationError(
            f"{self.title} setting missing: set {self.setting(key)} ({self._described(key).help})"
        )

    def api_key(self, override: str | None = None) -> str:
        api_key = override or dlt.secrets.get(f"sources.{self.name}.api_key")
        if not api_key:
            raise self.missing("api_key")
        return str(api_key)

    def base_url(self, override: str | None = None) -> str:
        return str(override or dlt.config.get(f"sources.{self.name}.base_url") or self.default_base_url)

    def accounts(self, override: Mapping[str, Any] | None = None, only: Sequence[str] | None = None) -> dict[str, str]:
        """alias -> account (token or company id), from the argument or the settings, optionally a subset."""
        key = f"sources.{self.name}.{self.accounts_setting}"
        if override is None:
            override = (dlt.secrets if self.accounts_are_secret else dlt.config).get(key, dict)
        if not override:
            raise self.missing(self.accounts_setting)
        try:
            accounts = self.check_accounts(dict(override))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if only:
            unknown = sorted(set(only) - set(accounts))
            if unknown:
                raise ConfigurationError(f"unknown {self.title} alias(es) {unknown}; configured: {sorted(accounts)}")
            accounts = {alias: accounts[alias] for alias in only}
        return accounts

    def is_configured(self) -> bool:
        try:
            self.api_key()
            self.accounts()
        except ConfigurationError:
            return False
        return True

    def spec_source(self) -> Any:
        """The source with placeholder settings: its resources and tables, for tools that only read its shape
        (Dagster's asset specs)."""
        return self.make_source("configured at run time", self.check_accounts({"partition": "0"}))
