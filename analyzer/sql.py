"""Ad-hoc SQL on stores: the read-only guard, --param parsing, named queries, and export to a DuckDB file."""
from __future__ import annotations

import glob
import json
import os
import re

import duckdb

from common import layout
from common.errors import MemsnapError
from schema import TABLES

from . import queries
from .store import Store, committed_view_sql, raw_view_sql, sql_literal

#: statements that could write outside the in-memory database or change its configuration
REFUSED = {"COPY", "EXPORT", "ATTACH", "DETACH", "LOAD", "EXTENSION", "COPY_DATABASE", "UPDATE_EXTENSIONS",
           "SET", "VARIABLE_SET"}


class SQLError(MemsnapError):
    """A query failed in DuckDB, or was refused."""


def statement_kinds(con, sql: str) -> list[str]:
    try:
        return [str(s.type).rsplit(".", 1)[-1] for s in con.extract_statements(sql)]
    except duckdb.Error as e:
        raise SQLError(f"DuckDB: {_first_line(e)}", hint=_hint(e)) from None


def check_read_only(con, sql: str) -> None:
    """Refuse statements that could write files (COPY, EXPORT, ATTACH, ...): the store is never modified."""
    bad = [k for k in statement_kinds(con, sql) if k in REFUSED]
    if bad:
        raise SQLError(f"{', '.join(sorted(set(bad)))} statements are not allowed here: memsnap sql never writes "
                       "files or changes settings", hint="to save results use --format csv|json, or --format parquet "
                                                         "-o FILE")


def lock_configuration(store: Store, allow_files: bool = False) -> None:
    """Freeze DuckDB's settings before running user SQL.  The statement-type guard alone is not enough: table
    functions and PRAGMAs change settings from inside a SELECT (``SELECT * FROM enable_logging(storage='file',
    storage_path=...)`` writes log files; ``PRAGMA enable_profiling`` is a PRAGMA statement, not a SET).

    Unless ``allow_files``, DuckDB reads only the store's files and its own spill directory: without this,
    ``read_text('/etc/shadow')`` or ``read_csv('/home/x/.ssh/...')`` read any file the user can (verified on
    duckdb 2.0.1: ``enable_external_access=false`` with ``allowed_directories`` keeps the views over the store's
    Parquet files working and refuses every other path, globs and ``..`` included).  The first call decides, for
    the life of the connection."""
    con = store.con
    if store.engine_name == "spark":  # Spark reads no path named in SQL (spark.sql.runSQLOnFiles=false), and
        return                        # the statement-kind guard refuses the rest (analyzer/spark.py CONF)
    if con.execute("SELECT current_setting('lock_configuration')").fetchone()[0]:
        return
    if not allow_files:
        dirs = []
        for d in [*store.paths, getattr(store, "_tmpdir", None)]:
            if d:
                dirs += [os.path.abspath(d) + os.sep, os.path.realpath(d) + os.sep]
        con.execute("SET allowed_directories = ?", [list(dict.fromkeys(dirs))])
        con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _first_line(e: Exception) -> str:
    """DuckDB's message without the echoed query: its first line and the lines that help, such as
    "Candidate bindings: ..." or "Did you mean ...?", joined on one line."""
    text = str(e).strip()
    if not text:
        return type(e).__name__
    keep = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("LINE "):
            break
        keep.append(line.strip())
    return " ".join(keep)


def _hint(e: Exception) -> str:
    text = str(e)
    if "file system operations are disabled" in text:
        return "memsnap sql reads only the store's files; add --allow-files to read other files"
    if "does not exist" in text or "not found" in text:
        return "list the tables and views with `.tables` in `memsnap sql`, or see docs/sql.md"
    if "configuration has been locked" in text:
        return "memsnap sql does not change settings or write files; save results with -f csv|json|parquet -o FILE"
    if "Parameter" in text or "parameter" in text:
        return "bind each $name with --param name=VALUE"
    return "check the SQL; tables and views are described in docs/sql.md"


#: statements whose result is rows to show (CREATE, INSERT and the like return an empty or a count result)
RESULT_KINDS = {"SELECT", "PRAGMA", "EXPLAIN", "CALL", "EXECUTE", "RELATION", "LOGICAL_PLAN"}


def split_statements(store: Store, sql: str, params: dict | None = None) -> list[tuple[str, dict, bool]]:
    """The statements of ``sql``, each with the parameters it names and whether it returns rows (read-only
    guard applied)."""
    check_read_only(store.con, sql)
    try:
        stmts = store.con.extract_statements(sql)
    except duckdb.Error as e:
        raise SQLError(f"DuckDB: {_first_line(e)}", hint=_hint(e)) from None
    params = params or {}
    return [(s.query, {k: params[k] for k in s.named_parameters if k in params},
             str(s.type).rsplit(".", 1)[-1] in RESULT_KINDS) for s in stmts]


def _execute(store: Store, query: str, params: dict):
    try:
        return store.con.execute(query, params) if params else store.con.execute(query)
    except duckdb.Error as e:
        raise SQLError(f"DuckDB: {_first_line(e)}", hint=_hint(e)) from None


def run_sql_each(store: Store, sql: str, params: dict | None = None, *, allow_files: bool = False):
    """Run user SQL statement by statement (read-only guard, bound parameters, files locked to the store unless
    ``allow_files``).  Yields ``(columns, rows)`` for each statement that returns rows, as it runs."""
    stmts = split_statements(store, sql, params)
    lock_configuration(store, allow_files)
    for query, p, shows in stmts:
        cur = _execute(store, query, p)
        if cur.description is not None and (shows or len(stmts) == 1):
            try:
                rows = cur.fetchall()
            except duckdb.Error as e:
                raise SQLError(f"DuckDB: {_first_line(e)}", hint=_hint(e)) from None
            yield [d[0] for d in cur.description], rows


def run_sql(store: Store, sql: str, params: dict | None = None, *, allow_files: bool = False
            ) -> tuple[list[str], list[tuple]]:
    """Run user SQL; columns and rows of the last statement that returns rows (``run_sql_each`` gives each)."""
    out: tuple[list[str], list[tuple]] = ([], [])
    for res in run_sql_each(store, sql, params, allow_files=allow_files):
        out = res
    return out


def run_sql_arrow(store: Store, sql: str, params: dict | None = None, *, allow_files: bool = False):
    """The result of user SQL as an Arrow table; only the last statement may return rows."""
    stmts = split_statements(store, sql, params)
    lock_configuration(store, allow_files)
    for i, (query, p, shows) in enumerate(stmts):
        if i == len(stmts) - 1:
            try:
                rel = store.con.sql(query, params=p or None)
                return rel.to_arrow_table() if rel is not None else None
            except duckdb.Error as e:
                raise SQLError(f"DuckDB: {_first_line(e)}", hint=_hint(e)) from None
        if shows:
            raise SQLError(f"{len(stmts)} statements and statement {i + 1} returns rows: one file holds one "
                           "result", hint="run one query per file, or use -f table to see each result")
        _execute(store, query, p)
    return None


def parse_params(items) -> dict:
    """``NAME=VALUE`` pairs.  VALUE is JSON when it parses as a JSON list, number, true/false or null;
    otherwise the text itself.  Values are always bound, never spliced into SQL."""
    out = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            raise MemsnapError(f"--param {item!r} is not NAME=VALUE", hint="e.g. --param pid=1234 --param ids='[\"a\"]'")
        v: object = value
        try:
            parsed = json.loads(value)
            if isinstance(parsed, (list, int, float, bool)) or parsed is None:
                v = parsed
        except ValueError:
            pass
        out[name.strip()] = v
    return out


def param_declaration(doc: str) -> tuple[str, object]:
    """What a named query's header declares for a parameter, from the first word of its description:
    ``a|b|c`` (one of these values), ``number`` (an integer >= 0), ``list`` (a JSON list), ``regex`` (an RE2
    regular expression), anything else text."""
    first = re.split(r"[\s,:;]", doc.strip(), maxsplit=1)[0] if doc.strip() else ""
    if "|" in first:
        return "choice", first.split("|")
    if first in ("number", "list", "regex"):
        return first, None
    if doc.startswith("-P regex") or doc.startswith("-U regex"):
        return "regex", None
    return "text", None


def check_param(store: Store, name: str, param: str, doc: str, value) -> None:
    """A value given with --param against what the query's header declares: the same one-line error as the
    commands' own options, rather than a query that silently does something else (by=usr grouping by pid)."""
    if value is None:
        if "or NULL" in doc:
            return
        raise MemsnapError(f"query {name}: --param {param} cannot be null", hint=f"{param}: {doc}")
    kind, allowed = param_declaration(doc)
    shown = json.dumps(value) if not isinstance(value, str) else repr(value)
    if kind == "choice" and value not in allowed:
        raise MemsnapError(f"query {name}: --param {param}={shown} is not one of {', '.join(allowed)}",
                           hint=f"use --param {param}={allowed[0]} (or {', '.join(allowed[1:])})")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise MemsnapError(f"query {name}: --param {param}={shown} is not a whole number",
                           hint=f"{param}: {doc}")
    if kind == "list" and not isinstance(value, list):
        raise MemsnapError(f"query {name}: --param {param}={shown} is not a list",
                           hint=f"give a JSON list, e.g. --param {param}='[\"a\", \"b\"]'")
    if kind == "regex":
        try:
            store.con.execute("SELECT regexp_matches('', ?)", [str(value)]).fetchone()
        except duckdb.Error as e:
            raise MemsnapError(f"query {name}: --param {param}={shown} is not a valid regular expression "
                               f"({_first_line(e)})", hint="RE2 syntax, as -P/-U/-M") from None


def named_query_params(store: Store, name: str, given: dict) -> dict:
    """Fill in what a named query needs and was not given: the latest snapshot (host, snapshot_id,
    snapshot_ids) and NULL for optional filters (params documented 'or NULL')."""
    q = queries.get(name)
    params = dict(given)
    unknown = set(params) - set(q.params)
    if unknown:
        raise MemsnapError(f"query {name} has no parameter(s) {', '.join(sorted(unknown))}",
                           hint=f"its parameters: {', '.join(q.params) or 'none'}")
    need = set(q.params) - set(params)
    if need & {"host", "snapshot_id", "snapshot_ids"}:
        snaps = store.resolve(params.get("snapshot_id", "latest"), params.get("host"))
        if "snapshot_ids" in need:
            params["snapshot_ids"] = [s.snapshot_id for s in snaps]
        if len(snaps) > 1 and need & {"host", "snapshot_id"}:
            raise MemsnapError(f"{len(snaps)} hosts: which snapshot?", hint="pass --param host=NAME")
        params.setdefault("host", snaps[0].host)
        params.setdefault("snapshot_id", snaps[0].snapshot_id)
    if need & {"from_host", "from_id", "to_host", "to_id"}:  # two snapshots: the last two of the host
        snaps = store.snapshots(params.get("to_host") or params.get("from_host"))
        if len({s.host for s in snaps}) > 1:
            raise MemsnapError(f"query {name} compares two snapshots of one host; the stores hold several",
                               hint="pass --param from_host=NAME --param to_host=NAME")
        if len(snaps) < 2:
            raise MemsnapError(f"query {name} compares two snapshots; found {len(snaps)}",
                               hint="record another snapshot, or pass --param from_id=ID --param to_id=ID")
        params.setdefault("from_host", snaps[-2].host)
        params.setdefault("from_id", snaps[-2].snapshot_id)
        params.setdefault("to_host", snaps[-1].host)
        params.setdefault("to_id", snaps[-1].snapshot_id)
    for p, doc in q.params.items():
        if p not in params and "or NULL" in doc:
            params[p] = None
    for p, value in given.items():
        check_param(store, name, p, q.params[p], value)
    missing = [p for p in q.params if p not in params]
    if missing:
        raise MemsnapError(f"query {name} needs parameter(s) {', '.join(missing)}",
                           hint="pass --param NAME=VALUE; " + "; ".join(f"{p}: {q.params[p]}" for p in missing))
    return {k: params[k] for k in q.params}


def export_db(stores: list[str], out: str, materialize: bool = False) -> dict:
    """Write a DuckDB database with every table and view.  Views read the stores' Parquet files by glob
    (new snapshots appear); with ``materialize`` the tables are copied in."""
    if os.path.exists(out):
        raise MemsnapError(f"{out} already exists", hint="remove it or choose another file name")
    from .store import resolve_stores

    paths = resolve_stores(stores)
    for p in paths:
        if os.path.abspath(out).startswith(p + os.sep):
            raise MemsnapError(f"{out} is inside the store {p}", hint="write the database outside the store")
    con = duckdb.connect(out)
    try:
        counts = {}
        for table in TABLES:
            globs = [layout.table_glob(p, table) for p in paths]
            has_files = any(glob.glob(g) for g in globs)
            # globs follow new snapshots and compactions: the visibility rule is applied in SQL (_segment)
            con.execute(raw_view_sql(table, globs if has_files else [], segment=True))
            # pages of files before schema 4 (no map_idx) get it by address, whatever files come later
            con.execute(committed_view_sql(table, resolved=False, by_address=True))
            counts[table] = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        if materialize:
            for table in reversed(list(TABLES)):  # snapshots last: the other views filter on _raw_snapshots
                con.execute(f'CREATE TABLE "_m_{table}" AS SELECT * FROM "{table}"')
                con.execute(f'DROP VIEW "{table}"')
                con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM "_m_{table}"')
                con.execute(f'CREATE OR REPLACE VIEW _raw_{table} AS SELECT * FROM "_m_{table}"')
        queries.install_views(con)
        con.execute("CREATE TABLE memsnap_export AS SELECT ? AS stores, ? AS materialized, now() AS exported_at",
                    [", ".join(paths), materialize])
    except BaseException:
        con.close()
        os.unlink(out)
        raise
    con.close()
    return counts


__all__ = ["check_read_only", "run_sql", "run_sql_each", "run_sql_arrow", "parse_params", "named_query_params", "export_db", "sql_literal"]
