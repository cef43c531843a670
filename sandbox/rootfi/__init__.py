"""Rootfi-compatible sandbox server."""

from sandbox.http import Fault
from sandbox.rootfi.seed import SANDBOX_API_KEY, CompanySpec, seed_companies
from sandbox.rootfi.server import RootfiSandbox, Settings
from sandbox.rootfi.store import Store

__all__ = ["SANDBOX_API_KEY", "CompanySpec", "Fault", "RootfiSandbox", "Settings", "Store", "seed_companies"]
