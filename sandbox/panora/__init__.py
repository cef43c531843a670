"""Panora-compatible sandbox server."""

from sandbox.http import Fault, scaled
from sandbox.panora.seed import DEFAULT_CONNECTIONS, SANDBOX_API_KEY, ConnectionSpec, seed_connections
from sandbox.panora.server import PanoraSandbox, Settings
from sandbox.panora.store import Store

__all__ = [
    "SANDBOX_API_KEY",
    "ConnectionSpec",
    "Fault",
    "PanoraSandbox",
    "Settings",
    "Store",
    "seed_connections",
    "start_sandbox",
]

DEFAULT_SEED = 7


def start_sandbox(
    port: int = 0,
    rate_limit: int | None = 100,
    seed: int | None = None,
    scale: float = 1.0,
    delay_seconds: float = 0.0,
) -> PanoraSandbox:
    """A server (not yet serving: use it as a context manager) with the default connections, their record
    counts multiplied by `scale`."""
    specs = scaled(DEFAULT_CONNECTIONS, scale)
    store = Store(seed_connections(seed=DEFAULT_SEED if seed is None else seed, specs=specs))
    return PanoraSandbox(store, Settings(rate_limit=rate_limit, delay_seconds=delay_seconds), port=port)
