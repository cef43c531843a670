"""`accounting-etl sandbox`: serve the Panora-compatible sandbox on 127.0.0.1 until interrupted."""

from __future__ import annotations

import json
import logging

from sandbox.panora import ConnectionSpec, PanoraSandbox, Settings, Store, seed_connections
from sandbox.panora.seed import DEFAULT_CONNECTIONS

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


def environment_lines(sandbox: PanoraSandbox) -> list[str]:
    """The settings a user exports to point the pipeline at this sandbox (its keys are not secrets)."""
    return [
        f"export SOURCES__PANORA__BASE_URL={sandbox.url}",
        f"export SOURCES__PANORA__API_KEY={sandbox.api_key}",
        f"export SOURCES__PANORA__CONNECTIONS='{json.dumps(sandbox.store.tokens())}'",
    ]


def serve(port: int, rate_limit: int | None, seed: int, scale: float, delay_seconds: float) -> None:
    sandbox = build_sandbox(port, rate_limit, seed, scale, delay_seconds)
    print(f"Panora sandbox on {sandbox.url} (rate limit: {rate_limit or 'off'} requests/60s)")
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
