"""Loading the named SQL files of the ``queries`` package."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from common.errors import MemsnapError


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
    for f in sorted(resources.files("queries").iterdir(), key=lambda p: p.name):
        if f.name.endswith(".sql"):
            q = _parse(f.read_text(), f.name)
            out[q.name] = q
    return out


def get(name: str) -> NamedQuery:
    try:
        return all_queries()[name]
    except KeyError:
        raise MemsnapError(f"no named query {name!r}", hint="list them with `memsnap query --list`") from None


def install_views(con) -> None:
    """Create every ``kind: macro`` file (a CREATE MACRO statement) and every ``kind: view`` as a view.
    DuckDB binds a macro's or a view's body when it is created, so one that uses another (``member_frames``
    uses ``snapshot_pages``, ``shared_members`` the view ``process_commands``) waits until that one exists:
    they are created in rounds, macros first and in name order within a round, until none is left; a round
    that creates none raises the first error."""
    pending = [q for q in all_queries().values() if q.kind == "macro"] + \
        [q for q in all_queries().values() if q.kind == "view"]
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


def run(con, name: str, params: dict | None = None):
    q = get(name)
    params = params or {}
    missing = set(q.params) - set(params)
    if missing:
        raise MemsnapError(f"query {name} needs parameter(s) {', '.join(sorted(missing))}",
                           hint="pass them with --param NAME=VALUE")
    return con.execute(q.sql, {k: params[k] for k in q.params})


#: statements that look at the catalog itself: the named views and macros must be there to be listed
_CATALOG = ("information_schema", "duckdb_views", "duckdb_functions", "duckdb_macros", "duckdb_tables",
            "duckdb_columns", "show", "describe", "summarize", "pragma", "sqlite_master")


class ViewsOnUse:
    """A DuckDB connection whose named views and macros (``kind: view|macro``) are created the first time a
    statement names one (or looks at the catalog), all at once, by :func:`install_views`.  Binding them costs
    70-250 ms here, and most commands (snapshots, sizes, diff, trend) use none (issue 15; docs/design.md,
    "Start-up").  Anything else asked of the connection (relations, cursors, ...) creates them first; the
    real connection is :attr:`raw`."""

    def __init__(self, con):
        self.raw = con
        names = [q.name for q in all_queries().values() if q.kind in ("view", "macro")] + list(_CATALOG)
        self._pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, names)) + r")\b", re.I)
        self._installed = False

    def install(self) -> None:
        if not self._installed:
            self._installed = True
            install_views(self.raw)

    def _for(self, query) -> None:
        if not self._installed and (not isinstance(query, str) or self._pattern.search(query)):
            self.install()

    def execute(self, query, *args, **kw):
        self._for(query)
        return self.raw.execute(query, *args, **kw)

    def sql(self, query, *args, **kw):
        self._for(query)
        return self.raw.sql(query, *args, **kw)

    query = sql

    def extract_statements(self, query):
        return self.raw.extract_statements(query)

    def close(self) -> None:
        self.raw.close()

    def __getattr__(self, name):
        self.install()
        return getattr(self.raw, name)
