"""Reading one record: the declarative specs of what fields fill which columns (`specs`), the typed readers of
one field (`values`) and the fields no spec declares (`undeclared`)."""
