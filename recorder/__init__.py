"""memsnap recorder: /proc -> Arrow -> Parquet store.

Runs on production hosts.  It imports :mod:`schema`, :mod:`common` and pyarrow only (not even numpy) —
never duckdb or sqlalchemy (``tests/test_architecture.py`` checks this).
"""
__version__ = "0.1.0"
