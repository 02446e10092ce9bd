"""Start-up (issue 15): what opening a store does before a command needs it.  The import side is in
tests/test_cli.py (test_a_command_imports_only_what_it_uses); the statements sizes builds without SQLAlchemy
are compared with SQLAlchemy's in tests/test_sizes_cli.py."""
from __future__ import annotations

import re

import pytest

from analyzer import open_store, queries
from conftest import SAMPLE_STORE

NAMED = {q.name: q.kind for q in queries.all_queries().values() if q.kind in ("view", "macro")}
#: the arguments of each table macro after (host, snapshot_id)
MACRO_ARGS = {"snapshot_pages": "", "member_frames": ", NULL, NULL", "shared_members": ", 'pid', NULL, NULL, NULL"}


def _catalog(st) -> set[str]:
    con = st.con.raw  # the real connection: asking it creates nothing
    return {n for (n,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()} | \
        {n for (n,) in con.execute("SELECT DISTINCT function_name FROM duckdb_functions() "
                                   "WHERE function_type IN ('macro', 'table_macro')").fetchall()}


def test_opening_a_store_and_sizes_create_only_the_views_they_use():
    """sizes, diff and trend use one named view, ``process_commands`` (the command names of --by process and
    --by command): opening the store and running them binds that one and no other (all of them cost 70-250 ms
    here); the stored tables' views are there."""
    with open_store(str(SAMPLE_STORE)) as st:
        for op in ("sizes", "diff", "trend"):
            getattr(st, op)()
        have = _catalog(st)
        assert have & set(NAMED) == {"process_commands"}, have & set(NAMED)
        assert {"processes", "mappings", "snapshots"} <= have


@pytest.mark.parametrize("name", sorted(NAMED))
def test_a_statement_naming_a_view_or_macro_creates_it_and_what_it_uses(name):
    """The first statement that names a named view or macro (any case) finds it, and the views and macros its
    text uses (``member_frames`` needs ``snapshot_pages``); no other."""
    with open_store(str(SAMPLE_STORE)) as st:
        host, sid = st.con.execute("SELECT host, max(snapshot_id) FROM snapshots GROUP BY host").fetchall()[0]
        if NAMED[name] == "macro":
            n = st.con.execute(f"SELECT count(*) FROM {name.upper()}(?, ?{MACRO_ARGS[name]})", [host, sid]).fetchall()[0][0]
        else:
            n = st.execute(f'SELECT count(*) FROM "{name}"').fetchall()[0][0]
        assert n > 0
        created = _catalog(st) & set(NAMED)
        assert name in created
        # what it uses: a named view or macro whose name its text mentions, and so on
        want, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n not in want:
                want.add(n)
                todo += [o for o in NAMED if o != n and re.search(rf"\b{o}\b", queries.get(n).sql, re.I)]
        assert created == want, (created, want)


@pytest.mark.parametrize("sql", ["SELECT table_name FROM information_schema.tables",
                                 "SHOW TABLES", "SELECT view_name FROM duckdb_views()"])
def test_a_look_at_the_catalog_lists_the_named_views(sql):
    with open_store(str(SAMPLE_STORE)) as st:
        listed = {r[0] for r in st.execute(sql).fetchall()}
        assert {n for n, k in NAMED.items() if k == "view"} <= listed


def test_relations_and_cursors_work_on_a_store_opened_on_the_engine_alone():
    """Opening a store loads duckdb's C++ engine without its Python relation layer (analyzer/duck.py); what
    needs that layer (``st.sql`` relations, ``st.query``, SQLAlchemy's cursor) loads it on first use, on the
    connection already open.  In a fresh process: pytest's own has imported duckdb long before."""
    import subprocess
    import sys

    from conftest import ROOT

    code = f"""
import importlib.util, sys
from analyzer import open_store
st = open_store({str(SAMPLE_STORE)!r})
n = st.execute("SELECT count(*) FROM processes").fetchall()[0][0]
if importlib.util.find_spec("_duckdb") is not None:
    assert "duckdb" not in sys.modules, "opening a store loaded duckdb's relation layer"
assert st.sql("SELECT count(*) AS n FROM processes").to_arrow_table().to_pylist() == [{{"n": n}}]
assert len(st.query("snapshot_list").fetchall()) == 2
assert st.con.cursor().execute("SELECT count(*) FROM processes").fetchall()[0][0] == n
print("ok")
"""
    cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert cp.returncode == 0 and cp.stdout.strip() == "ok", cp.stderr[-2000:]
