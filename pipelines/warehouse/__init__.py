"""Warehouse access for the jobs: which destination (`destination`), how to open it (`access`), and the locks
that keep one writer at a time (`locks`)."""
