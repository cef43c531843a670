"""What the provider sources share, in the order a record goes through it:

1. `http/`: the request (client, rate budget, pagination, prefetch);
2. `reading/`: one record read field by field (specs, typed values, undeclared fields);
3. `tables/`: the record's rows built into the declared tables (declared tables, arrow path);
4. `stored/`: the record compared with what the warehouse holds (digests, changes);
5. `scan.py`: one scan driving the four for one object kind of one connection.

Beside them: `unified_model` (the tables every provider fills), `provider` and `writer` (what a provider
package offers), `errors`, `secrets` (masking and printable server text) and `currencies`. Providers import
from here, never from each other.
"""
