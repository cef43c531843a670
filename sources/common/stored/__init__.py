"""Comparing with what is stored: compact id and content digests (`digests`) and change detection and deletion
marking against the warehouse (`changes`)."""
