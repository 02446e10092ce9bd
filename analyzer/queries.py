"""Loading the named SQL files of the ``queries`` package."""
from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from common.errors import MemsnapError

from .duck import relational


@dataclass(frozen=True)
class NamedQuery:
    name: str
    kind: str
    description: str
    sql: str
    params: dict = field(default_factory=dict)


def _parse(text: str, filename: str) -> NamedQuery:
    meta: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        key, sep, val = line[2:].strip().partition(":")
        if sep and key.strip() in ("name", "kind", "description", "params"):
            meta[key.strip()] = val.strip()
    if "name" not in meta or meta.get("kind") not in ("view", "query", "macro"):
        raise MemsnapError(f"queries/{filename}: header needs '-- name:' and '-- kind: view|query|macro'")
    params = {}
    for part in filter(None, (p.strip() for p in meta.get("params", "").split(";"))):
        k, _, v = part.partition(":")
        params[k.strip()] = v.strip()
    return NamedQuery(meta["name"], meta["kind"], meta.get("description", ""), text, params)


@lru_cache(maxsize=None)
def all_queries() -> dict[str, NamedQuery]:
    out = {}
    import os

    import queries as package  # its directory, read directly: importlib.resources costs 30-100 ms to import

    d = os.path.dirname(package.__file__)
    for name in sorted(os.listdir(d)):
        if name.endswith(".sql"):
            with open(os.path.join(d, name), encoding="utf-8") as f:
                q = _parse(f.read(), name)
            out[q.name] = q
    return out


def get(name: str) -> NamedQuery:
    try:
        return all_queries()[name]
    except KeyError:
        raise MemsnapError(f"no named query {name!r}", hint="list them with `memsnap query --list`") from None


def install_views(con, names=None) -> set[str]:
    """Create the ``kind: macro`` files (CREATE MACRO statements) and ``kind: view`` files as views: all of them,
    or ``names`` and the named views and macros their text uses (:func:`uses`).  DuckDB binds a macro's or a
    view's body when it is created, so one that uses another (``member_frames`` uses ``snapshot_pages``,
    ``shared_members`` the view ``process_commands``) waits until that one exists: they are created in rounds,
    macros first and in name order within a round, until none is left; a round that creates none raises the
    first error.  Returns the names created."""
    named = {q.name: q for q in all_queries().values() if q.kind in ("macro", "view")}
    want = set(named) if names is None else _closure(set(names) & set(named))
    pending = sorted((named[n] for n in want), key=lambda q: (q.kind != "macro", q.name))
    while pending:
        failed = []
        for q in pending:
            try:
                con.execute(q.sql if q.kind == "macro" else f'CREATE OR REPLACE VIEW "{q.name}" AS {q.sql}')
            except Exception as e:  # duckdb.CatalogException: a macro or view it uses is not there yet
                failed.append((q, e))
        if len(failed) == len(pending):
            raise failed[0][1]
        pending = [q for q, _ in failed]
    return want


def _name_pattern(names) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(names, key=len, reverse=True))) + r")\b", re.I)


@lru_cache(maxsize=None)
def uses() -> dict[str, frozenset[str]]:
    """For each named view and macro, the other named views and macros its text mentions."""
    named = {q.name: q for q in all_queries().values() if q.kind in ("macro", "view")}
    pat = _name_pattern(named)
    return {n: frozenset(m.lower() for m in pat.findall(q.sql) if m.lower() != n) for n, q in named.items()}


def _closure(names: set[str]) -> set[str]:
    deps, todo = set(), list(names)
    while todo:
        n = todo.pop()
        if n not in deps:
            deps.add(n)
            todo += uses().get(n, ())
    return deps


def run(con, name: str, params: dict | None = None):
    q = get(name)
    params = params or {}
    missing = set(q.params) - set(params)
    if missing:
        raise MemsnapError(f"query {name} needs parameter(s) {', '.join(sorted(missing))}",
                           hint="pass them with --param NAME=VALUE")
    return con.execute(q.sql, {k: params[k] for k in q.params})


@contextmanager
def materialised(con, name: str, args: tuple, columns: tuple[str, ...]):
    """Within the block, the table macro ``name`` called with ``args`` reads ``columns`` of its rows from a temp
    table computed once, instead of computing them again at every call (the report: every sharing section reads
    ``snapshot_pages`` of one snapshot; issue 15).  A temp macro of the same name shadows the macro (DuckDB
    looks in the temp schema first, for the calls inside other macros too); called with other arguments it
    computes as before (``main.name``).  A statement reading a column not in ``columns`` fails to bind, it
    never reads a wrong one.  On leaving, the temp macro and table are dropped."""
    m = re.search(rf"CREATE\s+(?:OR\s+REPLACE\s+)?MACRO\s+{name}\s*\(([^)]*)\)", get(name).sql, re.I)
    params = [p.strip() for p in m.group(1).split(",")]
    table, computed = f"_materialised_{name}", f"_computed_{name}"
    cols = ", ".join(f'"{c}"' for c in columns)
    con.execute(f'CREATE OR REPLACE TEMP TABLE "{table}" AS SELECT {cols} FROM {name}'
                f'({", ".join("?" for _ in args)})', list(args))
    # the macro as it was, under another name (DuckDB refuses a macro that calls main.<its own name>)
    con.execute(get(name).sql[m.start():].replace(m.group(0), f"CREATE OR REPLACE TEMP MACRO {computed}({m.group(1)})", 1))
    same = " AND ".join(f"{p} IS NOT DISTINCT FROM {_literal(a)}" for p, a in zip(params, args))
    con.execute(f'CREATE OR REPLACE TEMP MACRO {name}({", ".join(params)}) AS TABLE '
                f'SELECT {cols} FROM "{table}" WHERE {same} UNION ALL '
                f'SELECT {cols} FROM {computed}({", ".join(params)}) WHERE NOT ({same})')
    try:
        yield table
    finally:
        con.execute(f"DROP MACRO TABLE IF EXISTS temp.{name}")
        con.execute(f"DROP MACRO TABLE IF EXISTS temp.{computed}")
        con.execute(f'DROP TABLE IF EXISTS temp."{table}"')


def _literal(v) -> str:
    """A macro's argument as a SQL literal (a macro body takes no bound parameters)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool) or not isinstance(v, (int, str)):
        raise TypeError(f"materialised: argument {v!r} is not an int, a str or None")
    return str(v) if isinstance(v, int) else "'" + v.replace("'", "''") + "'"


_WORD = re.compile(r"\w+")

#: statements that look at the catalog itself: the named views and macros must be there to be listed
_CATALOG = ("information_schema", "duckdb_views", "duckdb_functions", "duckdb_macros", "duckdb_tables",
            "duckdb_columns", "show", "describe", "summarize", "pragma", "sqlite_master")


class ViewsOnUse:
    """A DuckDB connection whose named views and macros (``kind: view|macro``) are created the first time a
    statement names one: that one and those it uses (:func:`install_views`).  A statement that looks at the
    catalog creates them all.  Binding them all costs 70-250 ms here, and most commands (snapshots, sizes,
    diff, trend) use none or one (issue 15; docs/design.md, "Start-up").  Anything else asked of the
    connection (relations, cursors, ...) creates them all first, and loads duckdb's relation layer
    (:mod:`analyzer.duck`); the real connection is :attr:`raw`."""

    def __init__(self, con):
        self.raw = con
        # the statement's words against these names (what _name_pattern finds, without compiling an alternation
        # of every name at each open: 10-150 ms)
        self._views = frozenset(q.name.lower() for q in all_queries().values() if q.kind in ("view", "macro"))
        self._catalog = frozenset(_CATALOG)
        self._done: set[str] = set()
        self._installed = False

    def install(self, names=None) -> None:
        if self._installed:
            return
        if names is None:
            self._installed = True
            install_views(self.raw)
        elif not set(names) <= self._done:
            self._done |= install_views(self.raw, set(names) - self._done)

    def _for(self, query) -> None:
        if self._installed:
            return
        words = set(_WORD.findall(query.lower())) if isinstance(query, str) else None
        if words is None or words & self._catalog:
            self.install()
        else:
            found = words & self._views
            if found:
                self.install(found)

    def execute(self, query, *args, **kw):
        self._for(query)
        return self.raw.execute(query, *args, **kw)

    def sql(self, query, *args, **kw):
        self._for(query)
        relational()  # a relation: duckdb's Python layer (analyzer/duck.py)
        return self.raw.sql(query, *args, **kw)

    query = sql

    def extract_statements(self, query):
        return self.raw.extract_statements(query)

    def close(self) -> None:
        self.raw.close()

    def __getattr__(self, name):
        self.install()
        relational()
        return getattr(self.raw, name)
