"""Speaking HTTP: the one client every provider uses (`client`), the rate budget it shares across workers
(`budget`), following a list endpoint's cursor (`pagination`) and fetching pages ahead (`prefetch`)."""
