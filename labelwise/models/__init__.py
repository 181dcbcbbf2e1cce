"""SQL tables and the query functions over them.

Query functions take a ``Session`` and never commit: the caller owns the transaction.
"""
