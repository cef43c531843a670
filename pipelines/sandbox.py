"""`accounting-etl sandbox`: serve the Panora- or Rootfi-compatible sandbox on 127.0.0.1 until interrupted."""

from __future__ import annotations

import json
import logging

from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections
from sandbox.panora.seed import DEFAULT_CONNECTIONS
from sandbox.rootfi import CompanySpec, RootfiSandbox, seed_companies
from sandbox.rootfi import Settings as RootfiSettings
from sandbox.rootfi import Store as RootfiStore
from sandbox.rootfi.seed import DEFAULT_COMPANIES

log = logging.getLogger("accounting_etl.sandbox")


def build_sandbox(
    port: int = 0,
    rate_limit: int | None = 100,
    seed: int = 7,
    scale: float = 1.0,
    delay_seconds: float = 0.0,
) -> PanoraSandbox:
    """A sandbox with the default connections, their record counts multiplied by `scale`."""
    specs = tuple(
        ConnectionSpec(
            c.alias,
            c.provider,
            c.currencies,
            max(1, round(c.invoices * scale)),
            max(1, round(c.payments * scale)),
        )
        for c in DEFAULT_CONNECTIONS
    )
    store = Store(seed_connections(seed=seed, specs=specs))
    settings = Settings(rate_limit=rate_limit, delay_seconds=delay_seconds)
    return PanoraSandbox(store, settings, port=port)


def build_rootfi_sandbox(
    port: int = 0, rate_limit: int | None = 100, seed: int = 11, scale: float = 1.0, delay_seconds: float = 0.0
) -> RootfiSandbox:
    """The Rootfi sandbox with the default companies, their record counts multiplied by `scale`."""
    specs = tuple(
        CompanySpec(
            c.alias, c.company_id, c.platform, c.currencies, max(1, round(c.invoices * scale)),
            max(1, round(c.payments * scale)),
        )
        for c in DEFAULT_COMPANIES
    )  # fmt: skip
    store = RootfiStore(seed_companies(seed=seed, specs=specs))
    return RootfiSandbox(store, RootfiSettings(rate_limit=rate_limit, delay_seconds=delay_seconds), port=port)


def environment_lines(sandbox: PanoraSandbox | RootfiSandbox) -> list[str]:
    """The settings a user exports to point the pipeline at this sandbox (its keys are not secrets)."""
    if isinstance(sandbox, RootfiSandbox):
        return [
            f"export SOURCES__ROOTFI__BASE_URL={sandbox.url}",
            f"export SOURCES__ROOTFI__API_KEY={sandbox.api_key}",
            f"export SOURCES__ROOTFI__COMPANIES='{json.dumps(sandbox.store.company_ids())}'",
        ]
    return [
        f"export SOURCES__PANORA__BASE_URL={sandbox.url}",
        f"export SOURCES__PANORA__API_KEY={sandbox.api_key}",
        f"export SOURCES__PANORA__CONNECTIONS='{json.dumps(sandbox.store.tokens())}'",
    ]


def serve(
    port: int, rate_limit: int | None, seed: int | None, scale: float, delay_seconds: float, provider: str = "panora"
) -> None:
    if provider == "rootfi":
        sandbox: PanoraSandbox | RootfiSandbox = build_rootfi_sandbox(
            port, rate_limit, 11 if seed is None else seed, scale, delay_seconds
        )
    else:
        sandbox = build_sandbox(port, rate_limit, 7 if seed is None else seed, scale, delay_seconds)
    name = "Rootfi" if provider == "rootfi" else "Panora"
    print(f"{name} sandbox on {sandbox.url} (rate limit: {rate_limit or 'off'} requests/60s)")
    print("Point the pipeline at it with:")
    for line in environment_lines(sandbox):
        print(f"  {line}")
    print(
        f"Admin: GET {sandbox.url}/_sandbox/stats, POST {sandbox.url}/_sandbox/settings, "
        f"POST {sandbox.url}/_sandbox/faults. Ctrl-C stops it."
    )
    try:
        sandbox.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.httpd.server_close()
