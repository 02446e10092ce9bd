"""memsnap recorder: /proc -> Arrow -> Parquet store.

Runs on production hosts.  It imports :mod:`schema`, :mod:`common` and pyarrow only (not even numpy) —
never duckdb or sqlalchemy (``tests/test_architecture.py`` checks this).
"""
import os as _os

# Arrow's default allocator (mimalloc) keeps freed pages for a while before it returns them to the kernel, and
# commits its arenas eagerly; the recorder frees a batch's buffers every batch, so these, not the data, set much
# of its peak RSS (bench/memory_bench.py; on a capture of 4M pages rows: 152 -> 134 MiB for the second alone).
# Read when pyarrow loads, so set before it is imported; a value already in the environment wins.
_os.environ.setdefault("MIMALLOC_PURGE_DELAY", "0")
_os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")

__version__ = "0.1.0"
