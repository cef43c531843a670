"""Merge-compatible sandbox server (Accounting API v1)."""

from sandbox.http import Fault, scaled
from sandbox.merge.seed import DEFAULT_ACCOUNTS, SANDBOX_API_KEY, AccountSpec, seed_accounts
from sandbox.merge.server import ROOT, MergeSandbox, Settings
from sandbox.merge.store import Store

__all__ = [
    "ROOT",
    "SANDBOX_API_KEY",
    "AccountSpec",
    "Fault",
    "MergeSandbox",
    "Settings",
    "Store",
    "seed_accounts",
    "start_sandbox",
]

DEFAULT_SEED = 13


def start_sandbox(
    port: int = 0,
    rate_limit: int | None = 100,
    seed: int | None = None,
    scale: float = 1.0,
    delay_seconds: float = 0.0,
) -> MergeSandbox:
    """A server (not yet serving: use it as a context manager) with the default linked accounts, their record
    counts multiplied by `scale`."""
    store = Store(seed_accounts(seed=DEFAULT_SEED if seed is None else seed, specs=scaled(DEFAULT_ACCOUNTS, scale)))
    return MergeSandbox(store, Settings(rate_limit=rate_limit, delay_seconds=delay_seconds), port=port)
