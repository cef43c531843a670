"""Building tables from records: the declared tables and columns (`declared`), the object specs that say which
fields fill which columns and what becomes a child table, with the row path that reads one record at a time
and names every bad field (`object_specs`), and the arrow path that builds a whole page's tables at once and
must agree with it (`arrow_path`)."""
