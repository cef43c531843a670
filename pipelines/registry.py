"""The providers: one entry each. Everything that names providers (the command line's choices and help, the load
and push jobs, the Dagster partitions, the demo, the sandbox command) reads this list, and nothing else does.

An entry names two packages: `sources/<name>/`, which speaks the provider's language (client, dlt source,
adapter, writer) and exports its `PROVIDER`, and `sandbox/<name>/`, the local stand-in for its API, which
exports `start_sandbox(...)`. Both are imported when first used, so listing names costs nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pipelines.settings import ConfigurationError
from sources.common.provider import Provider


@dataclass(frozen=True)
class Entry:
    name: str
    source_package: str
    sandbox_package: str

    @cached_property
    def provider(self) -> Provider:
        provider = importlib.import_module(self.source_package).PROVIDER
        assert provider.name == self.name, f"{self.source_package} exports the provider {provider.name!r}"
        return provider

    @cached_property
    def sandbox(self) -> Any:
        """The sandbox package: `start_sandbox(port, rate_limit, seed, scale, delay_seconds)` -> a server with
        `url`, `api_key` and `accounts()` (alias -> what the provider's accounts setting takes)."""
        return importlib.import_module(self.sandbox_package)


ENTRIES: tuple[Entry, ...] = (
    Entry("panora", "sources.panora", "sandbox.panora"),
    Entry("rootfi", "sources.rootfi", "sandbox.rootfi"),
    Entry("merge", "sources.merge", "sandbox.merge"),
)
NAMES: tuple[str, ...] = tuple(e.name for e in ENTRIES)


def entry(name: str) -> Entry:
    for candidate in ENTRIES:
        if candidate.name == name:
            return candidate
    raise ConfigurationError(f"unknown provider {name!r}; choose from {', '.join(NAMES)}")


def provider(name: str) -> Provider:
    return entry(name).provider


def providers() -> list[Provider]:
    return [e.provider for e in ENTRIES]


def configured_providers() -> list[Provider]:
    return [p for p in providers() if p.is_configured()]


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
