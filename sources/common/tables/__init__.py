"""Building tables: the declared tables and columns (`declared`) and the arrow path that builds a whole page's
parent and child tables at once (`arrow_path`; `specs.ObjectSpec.normalize` is the row path it must agree with)."""
