"""Orchestration: Dagster definitions for scheduled, per-connection loads (`dagster dev -m orchestration`)."""

from orchestration.definitions import defs

__all__ = ["defs"]
