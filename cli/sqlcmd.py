"""``memsnap sql``, ``memsnap query`` and ``memsnap export-db``: SQL on stores."""
from __future__ import annotations

import os
import sys
from enum import Enum
from typing import List, Optional

import typer

from common.errors import MemsnapError

from .app import app
from .options import FileMode, SkipBad, StoreOpt, err, fail, need_analyzer, open_store, private_output, store_paths


class SqlFmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    parquet = "parquet"


SqlFormat = typer.Option(SqlFmt.table, "--format", "-f", help="table, csv, json, markdown or parquet (with -o).")


def _emit_sql_result(st, query, params, fmt, out, allow_files=False, mode="0600"):
    from analyzer.output import render
    from analyzer.sql import run_sql_arrow, run_sql_each, split_statements

    if fmt == SqlFmt.parquet:
        if not out:
            fail(MemsnapError("--format parquet needs -o FILE", hint="e.g. -o result.parquet"))
        for p in st.paths:
            if os.path.abspath(out).startswith(p + os.sep):
                fail(MemsnapError(f"{out} is inside the store {p}", hint="write results outside the store"))
        import pyarrow.parquet as pq

        tbl = run_sql_arrow(st, query, params, allow_files=allow_files)
        if tbl is not None:
            with private_output(out, mode):
                pq.write_table(tbl, out)
        err(f"wrote {tbl.num_rows if tbl is not None else 0} rows to {out}")
        return
    if fmt in (SqlFmt.csv, SqlFmt.json) or out:
        # one result per output: csv or json of two results would read as one; a file holds one result
        results = [s for s in split_statements(st, query, params) if s[2]]
        if len(results) > 1:
            fail(MemsnapError(f"{len(results)} statements return rows: -f {fmt.value}{' with -o' if out else ''} writes one "
                              "result", hint="run one statement per command, or -f table (without -o) to see each "
                                             "result"))
    texts, counts = [], []
    for cols, rows in run_sql_each(st, query, params, allow_files=allow_files):
        texts.append(render([dict(zip(cols, r)) for r in rows], cols, fmt.value) if cols else "")
        counts.append(len(rows))
        if not out:  # each result as it comes, a blank line between them
            typer.echo(("\n" if len(texts) > 1 else "") + texts[-1], nl=False)
    if out:
        with private_output(out, mode), open(out, "w") as f:
            f.write("".join(texts))
        err(f"wrote {sum(counts)} rows to {out}")


def _split_store_and_query(args: list[str]) -> tuple[list[str], str | None]:
    """[STORE...] QUERY: the last argument is the query unless it names a directory or a glob."""
    if args and not os.path.isdir(args[-1]) and not any(ch in args[-1] for ch in "*?["):
        return args[:-1], args[-1]
    if args and " " in args[-1]:
        return args[:-1], args[-1]
    return args, None


@app.command(epilog="Examples:\n\n  memsnap sql \"SELECT * FROM snapshot_list\"\n\n"
                    "  memsnap sql \"SELECT name, sum(pss_kb) FROM process_sizes_smaps GROUP BY ALL ORDER BY 2 DESC\"\n\n"
                    "  memsnap sql 'SELECT * FROM processes WHERE pid = $pid' --param pid=1234 -f json\n\n"
                    "  memsnap sql -f parquet -o top.parquet \"SELECT * FROM process_sizes_smaps\"\n\n"
                    "  memsnap sql                                  # interactive prompt\n\n"
                    "  echo '.tables' | memsnap sql                # statements and dot commands from stdin")
def sql(
    args: Optional[List[str]] = typer.Argument(None, help="[STORE...] QUERY: store directories or globs, then the "
                                                          "SQL (the last argument). No query, or '-': statements "
                                                          "and dot commands from standard input, or the "
                                                          "interactive prompt on a terminal."),
    store: StoreOpt = [], skip_bad: SkipBad = False,
    param: List[str] = typer.Option([], "--param", help="Bind $NAME in the query: NAME=VALUE (repeatable; JSON "
                                                        "lists/numbers/null are typed). Quote the query with '...' "
                                                        "so the shell leaves $NAME alone."),
    fmt: SqlFmt = SqlFormat,
    out: Optional[str] = typer.Option(None, "--output", "-o", help="Write the result to FILE instead of stdout."),
    allow_files: bool = typer.Option(False, "--allow-files", help="Let the SQL read files outside the stores "
                                     "(read_csv, read_text, read_parquet of any path the user can read). Without "
                                     "it, DuckDB reads only the stores' files."),
    file_mode: FileMode = "0600",
):
    """Run SQL on stores with DuckDB: the raw tables (committed snapshots only) and memsnap's views.

    Tables: snapshots, meminfo, processes, mappings, pages, frames. Views: process_sizes_smaps,
    pages_decoded, mapping_kinds, frame_sharers, snapshot_list; table macros snapshot_pages(host, id) and
    shared_members(...). Column docs: docs/sql.md and docs/schema.md. Queries are read-only: COPY, EXPORT,
    ATTACH, LOAD and SET are refused, and user values are bound with --param, never spliced in. Only the
    stores' files can be read unless --allow-files is given. Several statements (separated by ';') print
    each result in turn.
    """
    need_analyzer("sql")
    from analyzer.sql import parse_params

    stores, query = _split_store_and_query(list(args or []))
    if query == "-":
        query = None  # `memsnap sql STORE -`: the statements come from standard input
    try:
        params = parse_params(param)
        with open_store("sql", stores, store, skip_bad) as st:
            if query is not None:
                _emit_sql_result(st, query, params, fmt, out, allow_files, file_mode)
            elif sys.stdin.isatty():
                _interactive(st, params, allow_files)
            elif not _script(st, sys.stdin, params, allow_files):
                raise typer.Exit(1)
    except MemsnapError as e:
        fail(e)


def _dot_command(st, line: str) -> bool:
    """One of the prompt's dot commands; False to leave the prompt."""
    from analyzer.output import render

    cmd, _, arg = line.strip().partition(" ")
    if cmd in (".quit", ".exit"):
        return False
    if cmd == ".help":
        typer.echo(".tables            list tables and views\n.schema NAME       columns of a table or view\n"
                   ".quit              leave\nSQL ends with ';'. Parameters given with --param are bound.")
    elif cmd == ".tables":
        rows = st.execute("SELECT table_name, table_type FROM information_schema.tables "
                          "WHERE table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY 1").fetchall()
        typer.echo(render([{"name": n, "type": t} for n, t in rows], ["name", "type"], "table"), nl=False)
    elif cmd == ".schema" and arg:
        rows = st.execute("SELECT column_name, data_type FROM information_schema.columns "
                          "WHERE table_name = ? ORDER BY ordinal_position", [arg.strip()]).fetchall()
        if not rows:
            typer.echo(f"no table or view {arg.strip()!r}; try .tables")
        typer.echo(render([{"column": c, "type": t} for c, t in rows], ["column", "type"], "table"), nl=False)
    else:
        typer.echo(f"unknown command {line.strip()!r}; try .help")
    return True


def _run_statement(st, query: str, params: dict, *, to_stderr: bool = False, allow_files: bool = False) -> bool:
    from analyzer.output import render
    from analyzer.sql import run_sql_each

    try:
        for cols, rows in run_sql_each(st, query, params, allow_files=allow_files):
            if cols:
                typer.echo(render([dict(zip(cols, r)) for r in rows], cols, "table"), nl=False)
                typer.echo(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    except MemsnapError as e:
        typer.echo(f"Error: {e}" + (f" — {e.hint}" if e.hint else ""), err=to_stderr)
        return False
    return True


def _statements(lines, on_dot):
    """SQL statements (ending in ';') from ``lines``; a dot command between statements goes to ``on_dot``,
    which returns False to stop.  A last statement without ';' is run too."""
    buf: list[str] = []
    for line in lines:
        if not buf and line.strip().startswith("."):
            if not on_dot(line):
                return
            continue
        if line.strip() or buf:
            buf.append(line)
        if line.rstrip().endswith(";"):
            yield "\n".join(buf)
            buf = []
    if "".join(buf).strip():
        yield "\n".join(buf)


def _script(st, stream, params, allow_files: bool = False) -> bool:
    """Standard input that is not a terminal: the prompt's statements and dot commands, without the prompt.
    Stops at the first error (exit 1)."""
    lines = (line.rstrip("\n") for line in stream)
    for statement in _statements(lines, lambda line: _dot_command(st, line)):
        if not _run_statement(st, statement, params, to_stderr=True, allow_files=allow_files):
            return False
    return True


def _prompt_lines(buf_state):
    while True:
        try:
            yield input("memsnap> " if not buf_state["open"] else "    ...> ")
        except EOFError:
            typer.echo("")
            return
        except KeyboardInterrupt:
            typer.echo("")
            yield ";"  # abandon the statement being typed


def _interactive(st, params, allow_files: bool = False):
    """A small prompt: multi-line statements ending in ';', history, .tables, .schema NAME, .help, .quit."""
    import readline

    hist = os.path.expanduser("~/.memsnap_history")
    try:
        readline.read_history_file(hist)
    except OSError:
        pass
    typer.echo(f"memsnap sql on {', '.join(st.paths)} — end statements with ';', .help for help, .quit to leave")
    state = {"open": False}
    lines = _prompt_lines(state)

    def tracked():
        for line in lines:
            yield line
            starts = bool(line.strip()) and not (line.strip().startswith(".") and not state["open"])
            state["open"] = (state["open"] or starts) and not line.rstrip().endswith(";")

    for statement in _statements(tracked(), lambda line: _dot_command(st, line)):
        if statement.strip() != ";":
            _run_statement(st, statement, params, allow_files=allow_files)
    try:
        readline.write_history_file(hist)
    except OSError:
        pass


def _query_name_and_stores(args: list[str]):
    """``query [STORE...] NAME`` or ``query NAME [STORE...]``: the name is the argument that names a query."""
    from analyzer import queries as qs

    known = qs.all_queries()
    if args and args[0] in known and not os.path.isdir(args[0]):
        return args[0], args[1:]
    if args and args[-1] in known and not os.path.isdir(args[-1]):
        return args[-1], args[:-1]
    if args:
        fail(MemsnapError(f"no named query among {' '.join(args)}", hint="list them with `memsnap query --list`"))
    return None, []


@app.command(epilog="Examples:\n\n  memsnap query --list\n\n  memsnap query shared_groups --param by=command -f json\n\n"
                    "  memsnap query memsnap-store process_sizes_smaps -f csv")
def query(
    args: Optional[List[str]] = typer.Argument(None, metavar="[STORE...] NAME", help="The stores, then a named "
                                               "query from queries/ (see --list); NAME first is accepted too."),
    store: StoreOpt = [], skip_bad: SkipBad = False,
    param: List[str] = typer.Option([], "--param", help="NAME=VALUE (repeatable). host/snapshot_id default to the "
                                                        "latest snapshot; optional filters to NULL."),
    list_: bool = typer.Option(False, "--list", help="List the named queries and views with their descriptions."),
    fmt: SqlFmt = SqlFormat,
    out: Optional[str] = typer.Option(None, "--output", "-o", help="Write the result to FILE."),
    file_mode: FileMode = "0600",
):
    """Run a named query shipped in queries/ (its header says what it does and its parameters)."""
    need_analyzer("query")
    from analyzer import queries as qs
    from analyzer.output import render
    from analyzer.sql import named_query_params, parse_params

    name, stores = _query_name_and_stores(list(args or []))
    if list_ or not name:
        rows = [{"name": q.name, "kind": q.kind, "params": ", ".join(q.params), "description": q.description}
                for q in qs.all_queries().values()]
        typer.echo(render(rows, ["name", "kind", "params", "description"], fmt.value if fmt != SqlFmt.parquet
                          else "table", cut=False), nl=False)
        return
    try:
        q = qs.get(name)
        if q.kind == "macro":
            fail(MemsnapError(f"{name} is a table macro", hint=f"use it in `memsnap sql`: {q.description}"))
        with open_store("query", stores, store, skip_bad) as st:
            if q.kind == "query":
                _emit_sql_result(st, q.sql, named_query_params(st, name, parse_params(param)), fmt, out,
                                 mode=file_mode)
            else:
                _emit_sql_result(st, f'SELECT * FROM "{q.name}"', None, fmt, out, mode=file_mode)
    except MemsnapError as e:
        fail(e)


@app.command("export-db", epilog="Examples:\n\n  memsnap export-db memsnap-store out.duckdb\n\n"
                                 "  memsnap export-db --materialize memsnap-store copy.duckdb")
def export_db(
    args: List[str] = typer.Argument(..., metavar="[STORE...] OUT.duckdb", help="The stores, then the database "
                                     "file to write (with -S, just the file)."),
    store: StoreOpt = [],
    materialize: bool = typer.Option(False, "--materialize", help="Copy the tables into the database instead of "
                                                                  "views over the Parquet files."),
    file_mode: FileMode = "0600",
):
    """Write a DuckDB database file with every table and view, for the duckdb CLI, DBeaver or a notebook.

    By default the tables are views over the store's Parquet files (small; new snapshots appear). With
    --materialize they are copied in (self-contained; can be moved without the store).
    """
    need_analyzer("export-db")
    from analyzer.sql import export_db as do_export

    if len(args) < 2 and not store and "MEMSNAP_STORE" not in os.environ:
        fail(MemsnapError("give the store(s) and then the output file", hint="memsnap export-db STORE OUT.duckdb"))
    out = args[-1]
    try:
        with private_output(out, file_mode):
            counts = do_export(store_paths(args[:-1], store), out, materialize)
    except MemsnapError as e:
        fail(e)
    typer.echo(f"wrote {out}: " + ", ".join(f"{t} {n} rows" for t, n in counts.items()) +
               (" (materialized)" if materialize else " (views over Parquet)"))
