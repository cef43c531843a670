"""Rootfi-compatible sandbox server."""

from sandbox.http import Fault, scaled
from sandbox.rootfi.seed import DEFAULT_COMPANIES, SANDBOX_API_KEY, CompanySpec, seed_companies
from sandbox.rootfi.server import RootfiSandbox, Settings
from sandbox.rootfi.store import Store

__all__ = [
    "SANDBOX_API_KEY",
    "CompanySpec",
    "Fault",
    "RootfiSandbox",
    "Settings",
    "Store",
    "seed_companies",
    "start_sandbox",
]

DEFAULT_SEED = 11


def start_sandbox(
    port: int = 0,
    rate_limit: int | None = 100,
    seed: int | None = None,
    scale: float = 1.0,
    delay_seconds: float = 0.0,
) -> RootfiSandbox:
    """A server (not yet serving: use it as a context manager) with the default companies, their record
    counts multiplied by `scale`."""
    store = Store(seed_companies(seed=DEFAULT_SEED if seed is None else seed, specs=scaled(DEFAULT_COMPANIES, scale)))
    return RootfiSandbox(store, Settings(rate_limit=rate_limit, delay_seconds=delay_seconds), port=port)
