"""Reading one field of one record: the typed readers (`values`) and the fields no spec declares
(`undeclared`: the column each becomes and the one type it keeps)."""
