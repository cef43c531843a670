"""Panora-compatible sandbox server."""

from sandbox.http import Fault
from sandbox.panora.seed import SANDBOX_API_KEY, ConnectionSpec, seed_connections
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
]
