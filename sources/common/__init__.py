"""What the provider sources share, in the order a record goes through it:

1. `http/`: the request (client, rate budget, pagination, prefetch);
2. `reading/`: one field of a record read (typed values, undeclared fields);
3. `tables/`: the record's rows built into the declared tables (declared tables, object specs and their row
   path, the arrow path);
4. `stored/`: the record compared with what the warehouse holds (change detection, deletions);
5. `scan.py`: one scan driving the four for one object kind of one connection.

Beside them: `unified_model` (the tables every provider fills), `provider` and `writer` (what a provider
package offers), `errors`, `secrets` (masking, and server text made printable), `currencies` and `digests`
(compact id sets, for a page's repeats and for the stored records). Each stage imports only the ones before
it. Providers import from here, never from each other.
"""
