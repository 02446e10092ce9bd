"""Ad-hoc SQL and the Python API: docs/sql.md is generated and current, the cookbook runs, user values cannot
inject SQL, `memsnap sql` is read-only, errors are clean, output formats agree, named queries, export-db, the
interactive prompt (through a pseudo-terminal) and the Python API."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyzer import open_store, queries, sqldocs
from analyzer.output import render
from analyzer.sql import check_read_only, named_query_params, run_sql
from conftest import ROOT, SAMPLE_STORE, memsnap
from schema import TABLES

STORE = str(SAMPLE_STORE)
ALL = queries.all_queries()
RECIPES = sqldocs.load_cookbook()
HOSTILE = ["x' OR '1'='1", "1; DROP VIEW processes; --", "python'; DROP TABLE processes; --", "' OR 1=1 --",
           '" OR ""="', "python\\' OR 'a'='a"]


def store_digest(path=SAMPLE_STORE) -> str:
    """Names and bytes of every file of the store."""
    h = hashlib.sha256()
    for f in sorted(Path(path).rglob("*")):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()


@pytest.fixture
def unchanged_store():
    """The sample store is byte-identical after the test."""
    before = store_digest()
    yield
    assert store_digest() == before, "sample_data/store was modified"


@pytest.fixture(scope="module")
def st():
    with open_store(STORE) as s:
        yield s


def memsnap_many(*argvs) -> list:
    """Several CLI runs at once (each is a subprocess; most of its time is start-up)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda a: memsnap(*a, check=False), argvs))


def _json(cp) -> list:
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def _clean_error(cp, *, what: str = "Error: "):
    """One `Error: ... — hint` line on stderr, exit 1, no traceback."""
    assert cp.returncode == 1, (cp.returncode, cp.stdout, cp.stderr)
    assert "Traceback" not in cp.stderr + cp.stdout
    lines = cp.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(what), cp.stderr
    assert " — " in lines[0], f"no hint: {cp.stderr}"
    return lines[0]


# ---------------------------------------------------------------------------------------------- docs/sql.md

def test_sql_docs_are_not_stale():
    assert sqldocs.DOC_PATH.read_text() == sqldocs.render(), \
        "docs/sql.md is stale: run `python -m analyzer.sqldocs` (make docs)"


def test_sql_docs_cover_every_table_query_and_recipe():
    text = sqldocs.DOC_PATH.read_text()
    for t in TABLES:
        assert f"### {t}\n" in text and f"schema.md#{t}" in text
    for q in ALL.values():
        assert f"### {q.name}\n" in text and q.description in text
        for p in q.params:
            assert f"`${p}`" in text
    for r in RECIPES:
        assert r.question in text and r.sql in text


def test_sql_docs_types_come_from_running_the_sql(st):
    """The column table of a view is exactly what DuckDB reports for it."""
    text = sqldocs.DOC_PATH.read_text()
    section = text.split("### process_sizes_smaps\n", 1)[1].split("\n### ", 1)[0]
    rows = st.execute("DESCRIBE SELECT * FROM process_sizes_smaps").fetchall()
    for name, typ, *_ in rows:
        assert f"| `{name}` | {typ} | {sqldocs.unit_of(name)} |" in section


@pytest.mark.parametrize("column, unit", [("rss_kb", "kB"), ("page_size_bytes", "bytes"), ("capture_ms", "ms"),
                                          ("capture_s", "s"), ("rss_pages", "pages"), ("starttime_ticks", "clock ticks"),
                                          ("heap_kb_before", "kB"), ("bytes_written", "bytes"), ("kb", "kB"),
                                          ("pid", ""), ("processes", ""), ("sources", "")])
def test_units_inferred_from_names(column, unit):
    assert sqldocs.unit_of(column) == unit
    assert sqldocs.unit_of("pss_fp").startswith("bytes << 12")


# ---------------------------------------------------------------------------------------------- cookbook

def test_cookbook_has_real_questions():
    assert len(RECIPES) >= 10
    assert len({r.question for r in RECIPES}) == len(RECIPES)
    for r in RECIPES:
        assert r.question.endswith("?") and r.notes, r.question
        body = "\n".join(ln.split("--", 1)[0] for ln in r.sql.splitlines())
        used = set(re.findall(r"\$([A-Za-z_]\w*)", body))
        assert used == set(r.params), (r.question, used, set(r.params))  # every $param has a default
        assert all(r.param_docs[p] for p in r.params), r.question
        assert ";" not in body, r.question  # one statement


@pytest.mark.parametrize("i", range(len(RECIPES)), ids=[re.sub(r"\W+", "_", r.question)[:40] for r in RECIPES])
def test_cookbook_recipe_runs_on_sample_data(st, i):
    r = RECIPES[i]
    check_read_only(st.con, r.sql)
    cols, rows = run_sql(st, r.sql, r.params or None)
    assert cols and rows, f"cookbook recipe {r.question!r} returned no rows on sample_data/store"


def test_cookbook_recipe_through_the_cli_with_a_list_param(st):
    r = next(r for r in RECIPES if "pids" in r.params)
    rows = _json(memsnap("sql", STORE, r.sql, "--param", f"pids={json.dumps(r.params['pids'])}", "-f", "json"))
    cols, want = run_sql(st, r.sql, r.params)
    assert rows == json.loads(render([dict(zip(cols, w)) for w in want], cols, "json"))
    assert {x["kind"] for x in rows} >= {"anon", "file"}
    # a set with a pid that was not recorded has no frame
    assert _json(memsnap("sql", STORE, r.sql, "--param", f"pids=[{r.params['pids'][0]}, 999999]", "-f", "json")) == []


# ---------------------------------------------------------------------------------------------- injection

def test_sql_param_values_are_bound_not_spliced(unchanged_store):
    q = "SELECT snapshot_id, pid, comm FROM processes WHERE comm = $name ORDER BY ALL"
    assert len(_json(memsnap("sql", STORE, q, "--param", "name=python", "-f", "json"))) == 8
    eq = memsnap_many(*[("sql", STORE, q, "--param", f"name={v}", "-f", "json") for v in HOSTILE])
    like = memsnap_many(*[("sql", STORE, "SELECT count(*) AS n FROM processes WHERE cmdline LIKE '%' || $v || '%'",
                           "--param", f"v={v}", "-f", "json") for v in HOSTILE])
    for value, cp, cp_like in zip(HOSTILE, eq, like):
        assert _json(cp) == [] and cp.stderr == "", value
        assert _json(cp_like) == [{"n": 0}], value  # LIKE sees the value as a value too
    # a hostile value for a numeric column is a clean conversion error, nothing runs
    cp = memsnap("sql", STORE, "SELECT * FROM processes WHERE pid = $pid", "--param", "pid=1; DROP VIEW processes; --",
                 check=False)
    assert "Conversion Error" in _clean_error(cp, what="Error: DuckDB: ")
    # the views are intact for the next statement in the same process
    cp = memsnap("sql", STORE, "SELECT count(*) AS n FROM processes WHERE comm <> $x", "--param",
                 "x=1; DROP VIEW processes; --", "-f", "json")
    assert _json(cp) == [{"n": 8}]


@pytest.mark.parametrize("opt", ["-P", "-U", "-M"])
def test_sizes_filters_are_bound_not_spliced(opt, unchanged_store):
    values = ("x' OR '1'='1", "1; DROP VIEW processes; --", "' OR 1=1 --", "python' OR comm LIKE '%")
    for value, cp in zip(values, memsnap_many(*[("sizes", STORE, opt, v, "-f", "json") for v in values])):
        assert _json(cp) == [] and cp.stderr == "", (opt, value)
    assert len(_json(memsnap("sizes", STORE, opt, "." if opt != "-U" else "root", "-f", "json"))) == 4
    # a value that is not a regex is a clean error, not a traceback
    assert "regular expression" in _clean_error(memsnap("sizes", STORE, opt, "'); DROP VIEW processes; --",
                                                        check=False))


def test_named_query_params_are_bound_not_spliced(unchanged_store):
    base = _json(memsnap("query", "shared_groups", STORE, "--param", "by=regex", "--param",
                         "pattern=^no such command$", "-f", "json"))
    assert [r["group"] for r in base] == ["(other)"] and base[0]["processes"] == 4
    pat = memsnap_many(*[("query", "shared_groups", STORE, "--param", "by=regex", "--param", f"pattern={v}", "-f",
                          "json") for v in HOSTILE])
    filt = memsnap_many(*[("query", "shared_groups", STORE, "--param", "by=command", "--param", f"pfilter={v}", "-f",
                           "json") for v in HOSTILE])
    for value, cp, cp_filt in zip(HOSTILE, pat, filt):
        assert _json(cp) == base, value  # the hostile pattern matched nothing: same rows
        assert _json(cp_filt) == [] and cp_filt.stderr == "", value  # filtered: no process passes
    cp = memsnap("query", "shared_groups", STORE, "--param", "by=regex", "--param", "pattern=')", check=False)
    # checked against the query's header before it runs (issue 17, item 3), with DuckDB's own regex engine
    assert "not a valid regular expression" in _clean_error(cp, what="Error: query shared_groups: --param pattern")


# ---------------------------------------------------------------------------------------------- read-only guard

REFUSED = [
    "COPY processes TO '{d}/out.csv'",
    "COPY (SELECT * FROM processes) TO '{d}/out.parquet' (FORMAT parquet)",
    "SELECT 1; COPY processes TO '{d}/second.csv'",
    "EXPORT DATABASE '{d}/export'",
    "ATTACH '{d}/new.duckdb' AS x",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SET threads = 1",
    "SET memory_limit = '1GB'; SELECT 1",
    "RESET threads",
    "PRAGMA enable_profiling",
    # a table function that changes settings from inside a SELECT and would write log files
    "SELECT * FROM enable_logging(storage = 'file', storage_path = '{d}/logs')",
    "COPY processes TO '" + STORE + "/processes/evil.csv'",
]


@pytest.mark.parametrize("stmt", REFUSED)
def test_read_only_guard(tmp_path, stmt, unchanged_store):
    d = tmp_path / "out"
    d.mkdir()
    cp = memsnap("sql", STORE, stmt.format(d=d), check=False)
    _clean_error(cp)
    assert list(d.iterdir()) == []
    assert cp.stdout == ""


@pytest.mark.parametrize("stmt, kind", [("SELECT * FROM no_such_table", "Catalog Error"),
                                        ("SELEC pid FROM processes", "Parser Error"),
                                        ("SELECT no_such_column FROM processes", "Binder Error"),
                                        ("SELECT * FROM processes WHERE pid = $pid", "pid")])
def test_duckdb_errors_are_clean(stmt, kind):
    line = _clean_error(memsnap("sql", STORE, stmt, check=False), what="Error: DuckDB: ")
    assert kind in line


# ---------------------------------------------------------------------------------------------- formats

FORMAT_QUERY = ("SELECT snapshot_id, pid, comm, rollup_pss_kb, capture_ms, kernel_thread, error FROM processes "
                "ORDER BY snapshot_id, pid")


def test_output_formats_agree(tmp_path, unchanged_store):
    rows = _json(memsnap("sql", STORE, FORMAT_QUERY, "-f", "json"))
    assert len(rows) == 8
    memsnap("sql", STORE, FORMAT_QUERY, "-f", "json", "-o", str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == rows
    cp = memsnap("sql", STORE, FORMAT_QUERY, "-f", "csv", "-o", str(tmp_path / "r.csv"))
    assert cp.stdout == "" and "wrote 8 rows" in cp.stderr
    got = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [{k: (v if v != "" else None) for k, v in r.items()} for r in got] == \
        [{k: (None if v is None else str(v)) for k, v in r.items()} for r in rows]
    cp = memsnap("sql", STORE, FORMAT_QUERY, "-f", "parquet", "-o", str(tmp_path / "r.parquet"))
    assert cp.stdout == ""
    tbl = pq.read_table(tmp_path / "r.parquet")
    assert tbl.column_names == list(rows[0])
    assert tbl.to_pylist() == rows
    assert tbl.schema.field("rollup_pss_kb").type == pa.int64()


def test_parquet_needs_an_output_file_outside_the_store(unchanged_store):
    _clean_error(memsnap("sql", STORE, "SELECT 1 AS a", "-f", "parquet", check=False))
    cp = memsnap("sql", STORE, "SELECT 1 AS a", "-f", "parquet", "-o", f"{STORE}/x.parquet", check=False)
    assert "inside the store" in _clean_error(cp)
    assert not os.path.exists(f"{STORE}/x.parquet")


# ---------------------------------------------------------------------------------------------- memsnap query

def test_query_list_shows_every_named_query():
    out = memsnap("query", "--list").stdout
    for q in ALL.values():
        line = next((ln for ln in out.splitlines() if ln.startswith(q.name + " ")), None)
        assert line and q.description in line, q.name
    listed = json.loads(memsnap("query", "--list", "-f", "json").stdout)
    assert {r["name"]: r["description"] for r in listed} == {q.name: q.description for q in ALL.values()}
    assert {r["name"]: r["kind"] for r in listed} == {q.name: q.kind for q in ALL.values()}


@pytest.mark.parametrize("name", sorted(n for n, q in ALL.items() if q.kind == "query"))
def test_query_fills_host_and_snapshot_defaults(st, name):
    extra = ["--param", "by=command"] if "by" in ALL[name].params else []
    store = STORE
    if name.startswith("physmem_"):  # the physmem source's queries: its sample (the main sample predates it)
        store = str(Path(STORE).parent / "physmem")
        st = open_store(store)
    rows = _json(memsnap("query", name, store, *extra, "-f", "json"))
    assert rows, name
    snaps = st.snapshots()
    first, last = snaps[max(len(snaps) - 2, 0)], snaps[-1]  # the physmem sample has one
    explicit = {"host": last.host, "snapshot_id": last.snapshot_id, "snapshot_ids": [last.snapshot_id],
                "from_host": first.host, "from_id": first.snapshot_id, "to_host": last.host, "to_id": last.snapshot_id,
                "by": "command", "pattern": None, "pfilter": None, "ufilter": None, "mapfilter": None,
                "parts": None, "part": None, "pids": None}
    assert named_query_params(st, name, {k: v for k, v in explicit.items() if k == "by" and k in ALL[name].params}) \
        == {k: explicit[k] for k in ALL[name].params}
    cur = queries.run(st.con, name, {k: explicit[k] for k in ALL[name].params})
    cols = [d[0] for d in cur.description]
    want = json.loads(render([dict(zip(cols, r)) for r in cur.fetchall()], cols, "json"))
    assert sorted(map(json.dumps, rows)) == sorted(map(json.dumps, want))  # not every query has an ORDER BY


def test_query_view_macro_and_missing_param():
    assert len(_json(memsnap("query", "snapshot_list", STORE, "-f", "json"))) == 2
    assert "table macro" in _clean_error(memsnap("query", "snapshot_pages", STORE, check=False))
    assert "by" in _clean_error(memsnap("query", "shared_groups", STORE, check=False))
    assert "no parameter" in _clean_error(memsnap("query", "shared_histogram", STORE, "--param", "nope=1",
                                                  check=False))
    assert "no named query" in _clean_error(memsnap("query", "nope", STORE, check=False))


# ---------------------------------------------------------------------------------------------- export-db

def _sql_counts(store) -> dict:
    names = list(TABLES) + [q.name for q in ALL.values() if q.kind == "view"]
    q = " UNION ALL ".join(f"SELECT '{n}' AS name, count(*) AS n FROM \"{n}\"" for n in names)
    return {r["name"]: r["n"] for r in _json(memsnap("sql", store, q, "-f", "json"))}


@pytest.mark.parametrize("materialize", [False, True], ids=["views", "materialized"])
def test_export_db(tmp_path, materialize, unchanged_store):
    store = str(tmp_path / "store")
    shutil.copytree(STORE, store)
    want = _sql_counts(store)
    out = tmp_path / "out.duckdb"
    cp = memsnap("export-db", store, str(out), *(["--materialize"] if materialize else []))
    assert "processes 8 rows" in cp.stdout
    if materialize:
        shutil.rmtree(store)  # self-contained: works without the Parquet files
    con = duckdb.connect(str(out), read_only=True)
    try:
        have = {n for (n,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert set(want) <= have
        got = {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in want}
        assert got == want
        assert all(want[t] > 0 for t in TABLES if t not in ("physmem", "cgroups"))  # sources the sample predates
        host, sid = con.execute("SELECT host, max(snapshot_id) FROM snapshots GROUP BY host").fetchone()
        assert con.execute("SELECT count(*) FROM snapshot_pages(?, ?)", [host, sid]).fetchone()[0] > 0
        q = ALL["shared_histogram"]
        assert con.execute(q.sql, {"host": host, "snapshot_id": sid, "pfilter": None, "ufilter": None}).fetchall()
        assert con.execute("SELECT materialized FROM memsnap_export").fetchone()[0] is materialize
    finally:
        con.close()
    # an existing file is refused and left alone
    before = out.read_bytes()
    cp = memsnap("export-db", STORE, str(out), check=False)
    assert "already exists" in _clean_error(cp)
    assert out.read_bytes() == before


def test_export_db_refuses_a_file_inside_the_store(unchanged_store):
    cp = memsnap("export-db", STORE, f"{STORE}/x.duckdb", check=False)
    assert "inside the store" in _clean_error(cp)
    assert not os.path.exists(f"{STORE}/x.duckdb")


# ---------------------------------------------------------------------------------------------- interactive

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


class Prompt:
    """`memsnap sql STORE` on a pseudo-terminal, driven line by line."""

    def __init__(self, home: Path):
        master, slave = pty.openpty()
        env = dict(os.environ, HOME=str(home), TERM="dumb", COLUMNS="200", LINES="50")
        self.proc = subprocess.Popen([sys.executable, "-m", "cli", "sql", STORE], stdin=slave,
                                     stdout=slave, stderr=slave, cwd=ROOT, env=env, close_fds=True)
        os.close(slave)
        self.fd = master
        self.buf = ""

    def read_until(self, pattern: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while True:
            clean = ANSI.sub("", self.buf)
            m = re.search(pattern, clean)
            if m:
                self.buf = ""
                return clean[:m.end()]
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {pattern!r}; got {clean!r}")
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # EIO: the child closed the terminal
                    data = b""
                if not data:
                    raise AssertionError(f"prompt exited waiting for {pattern!r}; got {clean!r}")
                self.buf += data.decode(errors="replace")

    def send(self, line: str, until: str = r"memsnap> $") -> str:
        os.write(self.fd, (line + "\n").encode())
        return self.read_until(until)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        os.close(self.fd)


def test_interactive_prompt(tmp_path, unchanged_store):
    p = Prompt(tmp_path)
    try:
        banner = p.read_until(r"memsnap> $")
        assert "memsnap sql on" in banner and ".help" in banner
        out = p.send(".tables")
        for name in ("processes", "mappings", "frames", "process_sizes_smaps", "frame_sharers", "snapshot_list"):
            assert re.search(rf"^{name}\s+(BASE TABLE|VIEW)\s*$", out, re.M), (name, out)
        assert "_raw_" not in out
        out = p.send(".schema processes")
        assert re.search(r"^snapshot_id\s+VARCHAR", out, re.M) and re.search(r"^rollup_pss_kb\s+BIGINT", out, re.M)
        out = p.send("SELECT count(*)", until=r"\.\.\.> $")  # continuation prompt: no ';' yet
        out = p.send("FROM processes;")
        assert re.search(r"^\s*8\s*$", out, re.M) and "(1 row)" in out, out
        out = p.send("SELECT * FROM no_such_table;")
        assert "Error: DuckDB: Catalog Error" in out and " — " in out and "Traceback" not in out
        out = p.send("COPY processes TO '/tmp/memsnap-should-not-exist.csv';")
        assert "Error: COPY statements are not allowed" in out
        out = p.send(".schema no_such_view")
        assert "no table or view 'no_such_view'" in out
        out = p.send("SELECT 6 * 7 AS answer;")  # still usable after errors
        assert re.search(r"^\s*42\s*$", out, re.M)
        os.write(p.fd, b".quit\n")
        assert p.proc.wait(timeout=30) == 0
    finally:
        p.close()
    assert not os.path.exists("/tmp/memsnap-should-not-exist.csv")
    assert (tmp_path / ".memsnap_history").exists()  # history kept in $HOME


# ---------------------------------------------------------------------------------------------- Python API

def test_python_api_sql_relation_and_arrow():
    with open_store(STORE) as st:
        rel = st.sql("SELECT snapshot_id, pid, rollup_pss_kb FROM processes WHERE comm = $c ORDER BY ALL",
                     params={"c": "python"})
        assert isinstance(rel, duckdb.DuckDBPyRelation)
        tbl = rel.to_arrow_table()
        assert isinstance(tbl, pa.Table) and tbl.num_rows == 8
        assert tbl.column_names == ["snapshot_id", "pid", "rollup_pss_kb"]
        assert tbl.to_pylist() == [dict(zip(tbl.column_names, r)) for r in st.execute(
            "SELECT snapshot_id, pid, rollup_pss_kb FROM processes ORDER BY ALL").fetchall()]
        for value in HOSTILE:
            assert st.sql("SELECT * FROM processes WHERE comm = $c", params={"c": value}).to_arrow_table().num_rows == 0
        assert st.sql("SELECT count(*) FROM processes").fetchall() == [(8,)]


def test_python_api_sqlalchemy_core_with_bound_parameter():
    import sqlalchemy as sa

    with open_store(STORE) as st:
        p = st.tables["processes"]
        q = (sa.select(p.c.snapshot_id, p.c.pid, p.c.comm, p.c.rollup_pss_kb)
             .where(p.c.comm == sa.bindparam("c"), p.c.rollup_pss_kb > sa.bindparam("min_kb"))
             .order_by(p.c.snapshot_id, p.c.pid))
        assert "python" not in str(q)  # the value is a bound parameter
        with st.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(q, {"c": "python", "min_kb": 7000}).all()]
            none = conn.execute(q, {"c": "x' OR '1'='1", "min_kb": 0}).all()
        want = st.execute("SELECT snapshot_id, pid, comm, rollup_pss_kb FROM processes WHERE comm = ? "
                          "AND rollup_pss_kb > ? ORDER BY snapshot_id, pid", ["python", 7000]).fetchall()
        assert rows == want and len(rows) >= 2 and none == []


def _as_json(rows, columns) -> list:
    return json.loads(render(rows, columns, "json"))


def test_python_api_matches_cli_json():
    with open_store(STORE) as st:
        res = st.sizes()
        assert _as_json(res.rows, res.columns) == _json(memsnap("sizes", STORE, "-f", "json"))
        res = st.sizes(by="user", source="pages")
        assert _as_json(res.rows, res.columns) == _json(memsnap("sizes", STORE, "--by", "user", "--source", "pages",
                                                                "-f", "json"))
        res = st.diff()
        assert _as_json(res.rows, res.columns) == _json(memsnap("diff", STORE, "-f", "json"))
        res = st.diff(source="pages")
        assert _as_json(res.rows, res.columns) == _json(memsnap("diff", STORE, "--source", "pages", "-f", "json"))
        res = st.shared()
        assert _as_json(res.rows, res.columns) == _json(memsnap("shared", STORE, "-f", "json"))
        res = st.shared("pairs")
        assert _as_json(res.rows, res.columns) == _json(memsnap("shared", STORE, "--pairs", "-f", "json"))
        rel = st.query("shared_histogram", named_query_params(st, "shared_histogram", {}))
        assert _as_json([dict(zip(rel.columns, r)) for r in rel.fetchall()], rel.columns) == \
            _json(memsnap("query", "shared_histogram", STORE, "-f", "json"))
