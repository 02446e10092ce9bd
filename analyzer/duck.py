"""DuckDB's engine for the analyzer, its Python relation layer loaded only when something asks for a relation.

duckdb 2 is two parts: the C++ extension ``_duckdb`` (connections, ``execute``, ``fetchall``, ``description``, the
exception classes) and, above it, a Python layer that ``import duckdb`` loads whole (relations, expressions, Arrow
sources: 10,000 lines, 0.13-0.2 s of a 0.6 s ``memsnap sizes`` on 2 cores, against 0.02-0.05 s for the extension;
BENCHMARKS.md, "Start-up").  Opening a store and the commands that only execute statements and fetch rows
(snapshots, sizes, diff, trend, ...) need the extension alone, which is what ``import duckdb`` itself loads first
and re-exports (``duckdb.Error is _duckdb.Error``, ``duckdb.connect is _duckdb.connect``).  :func:`relational` loads
the layer, which adds ``sql``, ``query``, ``to_arrow_table``, ... to every connection's class, open ones included:
:class:`analyzer.queries.ViewsOnUse` calls it before a relation or anything but ``execute`` is asked of a
connection.  A duckdb without a top-level ``_duckdb`` (before 1.4) is imported whole, as before.
"""
from __future__ import annotations

try:
    import _duckdb as engine
except ImportError:  # pragma: no cover - older duckdb: the extension lives inside the package
    import duckdb as engine

if not hasattr(engine, "connect"):  # pragma: no cover - some other module of that name
    import duckdb as engine


def relational():
    """The whole ``duckdb`` package (its relation API on every connection from now on)."""
    import duckdb

    return duckdb
