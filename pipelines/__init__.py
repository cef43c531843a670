"""Runnable jobs (load, sandbox, demo) and the `accounting-etl` command line."""
