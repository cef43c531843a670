"""Every provider's settings, declared once as dlt configuration specs.

A provider's spec is `SourceSettings` (the HTTP settings every source shares) plus its own fields. dlt resolves
the source's arguments through it (`@dlt.source(spec=...)`), so `SOURCES__<NAME>__<KEY>` environment
variables and `.dlt/*.toml` both work. The command line's help, the docs' settings table and the error for a
missing setting are all generated from these specs, so there is one list of settings to keep, not four.
Each field carries its help text in its dataclass metadata (`setting(...)`); a secret is one typed
`Annotated[..., SecretSentinel]`, which dlt then reads from secrets providers only.
"""

import dataclasses
import inspect
from collections.abc import Callable, Iterator
from typing import Any

from dlt.common.configuration import configspec
from dlt.common.configuration.specs import BaseConfiguration
from dlt.common.configuration.specs.base_configuration import is_secret_hint
from dlt.common.typing import SecretSentinel

from sources.common.http.budget import BUDGET_SETTING
from sources.common.http.client import RetryPolicy
from sources.common.http.prefetch import DEFAULT_LOOKAHEAD

_DEFAULTS = RetryPolicy()

__all__ = ["Described", "SecretSentinel", "SourceSettings", "described", "setting"]


def setting(default: Any, help: str, *, required: bool = False) -> Any:
    """A spec field with its help text: what a user reads in `--help`, the docs and a missing-setting error."""
    return dataclasses.field(default=default, metadata={"help": help, "required": required})


@configspec
class SourceSettings(BaseConfiguration):
    """What every provider's source takes from the shared HTTP layer (`sources/common/http/`). A provider's
    spec subclasses it, declares its credentials and accounts, and may change the defaults of `base_url` and
    `page_size`."""

    base_url: str = setting(None, "API root")
    page_size: int = setting(None, "rows per list request")
    max_attempts: int = setting(
        _DEFAULTS.max_attempts, "tries per request on 5xx, timeouts, dropped connections and broken bodies"
    )
    backoff_base: float = setting(_DEFAULTS.backoff_base, "first retry wait in seconds (doubles, with jitter)")
    timeout: float = setting(_DEFAULTS.timeout, "seconds per request try")
    max_wait_seconds: float = setting(
        _DEFAULTS.max_wait_seconds,
        "the longest wait a server may ask for (Retry-After, a rate-limit reset); a longer one fails that scan "
        "with a clear error instead of holding the run",
    )
    max_body_bytes: int = setting(_DEFAULTS.max_body_bytes, "the largest answer read; a larger one fails that scan")
    rate_limit: int | None = setting(
        None,
        "requests per window the server allows, where it differs from the provider's documented limit (the "
        "server's X-RateLimit-Limit corrects it, up to 10 times this)",
    )
    rate_window_seconds: float | None = setting(None, "the rate limit's window in seconds, where it differs")
    lookahead: int = setting(
        DEFAULT_LOOKAHEAD, "how many accounts' scans are fetched ahead while one is read (the rate budget paces all)"
    )


def retry_policy(
    max_attempts: int, backoff_base: float, timeout: float, max_wait_seconds: float, max_body_bytes: int
) -> RetryPolicy:
    """The request policy of a source's shared HTTP settings."""
    return RetryPolicy(max_attempts=max_attempts, backoff_base=backoff_base, timeout=timeout,
                       max_wait_seconds=max_wait_seconds, max_body_bytes=max_body_bytes)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Described:
    """One setting as people read it."""

    key: str  # the spec's field: `SOURCES__<NAME>__<KEY>`
    help: str
    default: Any
    secret: bool
    required: bool

    def shown_default(self) -> str:
        if self.required:
            return "required"
        if self.default is None:
            return "none"
        if self.default is False or self.default is True:
            return str(self.default).lower()
        return str(self.default)


def described(spec: type[BaseConfiguration]) -> Iterator[Described]:
    """Every documented field of a spec, in declaration order: a provider's own fields first."""
    fields = [f for f in dataclasses.fields(spec) if "help" in f.metadata]
    own = [f for f in fields if f.name not in SourceSettings.__dataclass_fields__]
    shared = [f for f in fields if f.name in SourceSettings.__dataclass_fields__]
    hints = spec.get_resolvable_fields()
    for field in own + shared:
        yield Described(field.name, field.metadata["help"], field.default, is_secret_hint(hints[field.name]),
                        field.metadata["required"])  # fmt: skip


# Settings every source reads that belong to no one provider.
SHARED = (
    Described(
        BUDGET_SETTING.split(".", 1)[1],
        "where every worker's rate budget is kept: a file, a postgresql:// URL, or `off` (default: a file "
        "private to the user, <tmp>/accounting-etl-<uid>/rate-budget.sqlite)",
        None,
        secret=False,
        required=False,
    ),
)

# Arguments a source takes that are no setting: what the job hands it.
RUNTIME_ARGUMENTS = frozenset({"stats", "scan_log", "transport", "full_refresh", "stored"})


def unresolved_arguments(source: Callable[..., Any], spec: type[BaseConfiguration]) -> list[str]:
    """The source's arguments that its spec does not declare with the same default, and the spec's fields
    the source does not take: empty when the two agree (a test holds every provider to it)."""
    function = inspect.unwrap(source)
    parameters = {n: p for n, p in inspect.signature(function).parameters.items() if n not in RUNTIME_ARGUMENTS}
    fields = {f.name: f for f in dataclasses.fields(spec) if "help" in f.metadata}
    problems = [f"{name}: not in the spec" for name in parameters if name not in fields]
    problems += [f"{name}: not an argument of the source" for name in fields if name not in parameters]
    for name in parameters.keys() & fields.keys():
        default = parameters[name].default
        if fields[name].metadata["required"]:
            continue  # dlt.secrets.value / dlt.config.value
        if default != fields[name].default:
            problems.append(f"{name}: the source's default {default!r}, the spec's {fields[name].default!r}")
    return sorted(problems)
