"""Comparing with what is stored: change detection and deletion marking against the records the warehouse
already holds (`changes`)."""
