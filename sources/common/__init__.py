"""What the provider sources share: the HTTP layer (retries, backoff, pacing), typed columns, arrow tables
and change detection against what is already loaded. Providers import from here, never from each other."""
