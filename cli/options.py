"""Options shared by several commands, declared once, and the helpers every command uses.

Short flags mean one thing across all commands (``tests/test_cli.py`` checks it): -S store, -f format,
-o output, -b by, -c columns, -s sort, -r reverse, -t totals, -p percent, -k abbreviate, -n numeric,
-H no header, -P/-U/-M process/user/mapping filters, -g groups, -i interval, -q quiet, -V version.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from enum import Enum
from typing import Annotated, List, Optional

import typer

from common.errors import MemsnapError
from common.settings import default_store

STATE = {"skip_bad": False, "engine": None, "spark_master": None}

#: the analyzer's libraries; a recorder-only install lacks them
ANALYZER_MODULES = ("duckdb", "sqlalchemy", "duckdb_engine", "matplotlib")
INSTALL_HINT = "pip install 'memsnap[analyze]'"


def error_line(e: BaseException) -> str:
    hint = getattr(e, "hint", "")
    return f"Error: {e}" + (f" — {hint}" if hint else "")


def fail(e: BaseException, code: int = 1):
    """The one place errors are shown: ``Error: <what> — <how to fix>``, no traceback."""
    typer.echo(error_line(e), err=True)
    raise typer.Exit(code)


def err(msg: str) -> None:
    typer.echo(msg, err=True)


def need_analyzer(command: str) -> None:
    """Stop with the install command when this install has the recorder only."""
    import importlib.util

    missing = [m for m in ANALYZER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        fail(MemsnapError(f"memsnap {command} needs the analyzer, which this install does not have",
                          hint=INSTALL_HINT))


# ---------------------------------------------------------------------------------------------- the store
StoresArg = Annotated[Optional[List[str]], typer.Argument(
    help="Store directories or globs, or s3://bucket/prefix (stores from many hosts merge). Default: -S, else "
         "$MEMSNAP_STORE, else ./memsnap-store.", show_default=False, metavar="STORE")]
StoreOpt = Annotated[List[str], typer.Option(
    "--store", "-S", help="Store directory or s3://bucket/prefix (repeatable; S3 endpoint and keys from "
                          "$AWS_ENDPOINT_URL, $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY); the same as giving it as "
                          "the first argument.",
    show_default=False, metavar="DIR")]
Engine = Annotated[Optional[str], typer.Option(
    "--engine", envvar="MEMSNAP_ENGINE", help="Query engine of the analyzer commands: duckdb (default) or spark "
                                              "(pyspark, Java 17+; docs/fleet.md). Same answers.")]
SparkMaster = Annotated[Optional[str], typer.Option(
    "--spark-master", envvar="MEMSNAP_SPARK_MASTER", help="With --engine spark: local[N] or spark://HOST:PORT "
                                                          "(default local[*]).")]
SkipBad = Annotated[bool, typer.Option(
    "--skip-bad", help="Leave out snapshots with a damaged, foreign or too-new file (each is reported) instead "
                       "of stopping. Accepted before or after the command.")]


#: the one store a writing command (record, compact) takes, as the argument or -S
OneStoreArg = Annotated[Optional[str], typer.Argument(
    metavar="[STORE]", help="Store directory. Default: -S, else $MEMSNAP_STORE, else ./memsnap-store.",
    show_default=False)]
OneStoreOpt = Annotated[List[str], typer.Option(
    "--store", "-S", help="Store directory (same as the argument).", show_default=False, metavar="DIR")]


def one_store(command: str, store_arg: Optional[str], store_opt: List[str]) -> str:
    paths = store_paths([store_arg] if store_arg else [], store_opt)
    if len(paths) > 1:
        fail(MemsnapError(f"{command} writes one store, {len(paths)} were given ({', '.join(paths)})",
                          hint="give the store once, as the first argument or with -S"))
    return paths[0]


def store_paths(stores, store) -> list[str]:
    """Positional stores and -S stores together; neither: $MEMSNAP_STORE or ./memsnap-store."""
    return [*(store or []), *(stores or [])] or [default_store()]


def open_store(command: str, stores, store, skip_bad: bool = False, scope: dict | None = None):
    """The analyzer's store (with the API's operations), opened on what ``scope`` (the keywords of
    :func:`analyzer.api.scope_for`) needs; damaged files skipped are reported on stderr."""
    need_analyzer(command)
    from analyzer import open_store as _open
    from analyzer.api import scope_for

    st = _open(store_paths(stores, store), skip_bad=skip_bad or STATE["skip_bad"],
               scope=scope_for(**scope) if scope else None, engine=STATE["engine"],
               spark_master=STATE["spark_master"])
    for f, why in st.skipped:
        err(f"warning: skipped {f}: {why} (the snapshot(s) in it are left out)")
    return st


# ---------------------------------------------------------------------------------------------- choices
class OutFmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


class Source(str, Enum):
    smaps = "smaps"
    pages = "pages"


Format = Annotated[OutFmt, typer.Option("--format", "-f", help="table, csv, json (amounts are integer kB) or "
                                                                "markdown.")]
Host = Annotated[Optional[List[str]], typer.Option(
    "--host", help="Only this host (repeatable: --host a --host b), or the hosts a regular expression after ~ "
                   "matches whole (--host '~web-[0-9]+', Python syntax). Needed by diff and report when the "
                   "stores hold several.")]
Snapshot = Annotated[str, typer.Option("--snapshot", help="Snapshot id (or unique prefix), or 'latest' (the latest "
                                                          "of each host).")]
Since = Annotated[Optional[str], typer.Option(
    "--since", help="Only snapshots captured at or after T: an ISO timestamp (2026-11-25T08:00, naive = local "
                    "time, or with +00:00) or a time ago: 90s, 30m, 2h, 1d, 1w.")]
Until = Annotated[Optional[str], typer.Option(
    "--until", help="Only snapshots captured at or before T (same forms as --since).")]
FromId = Annotated[Optional[str], typer.Option("--from", help="Earlier snapshot id (or unique prefix).")]
ToId = Annotated[Optional[str], typer.Option("--to", help="Later snapshot id (or unique prefix).")]
SourceOpt = Annotated[Source, typer.Option("--source", help="smaps: the kernel's accounting as recorded "
                                                             "(smem-compatible). pages: recomputed from pagemap + "
                                                             "kpagecount + kpageflags with the kernel's rules (needs "
                                                             "a snapshot recorded as root).")]
Sort = Annotated[Optional[str], typer.Option("--sort", "-s", help="Column to sort by, ascending like smem.")]
Reverse = Annotated[bool, typer.Option("--reverse", "-r", help="Sort descending.")]
Columns = Annotated[Optional[str], typer.Option("--columns", "-c", help="Space or comma separated columns to show.")]
Plot = Annotated[Optional[str], typer.Option("--plot", help="Write a chart to FILE.png|svg|pdf.")]
# The filters take RE2 regular expressions (DuckDB's regexp_matches), as smem's -P/-U/-M take Python's:
# the common syntax (|, ^, $, ., *, +, [..], (..)) means the same in both.
ProcessFilter = Annotated[Optional[str], typer.Option("--processfilter", "-P", help="Regex (RE2) on process name "
                                                                                     "or command line.")]
UserFilter = Annotated[Optional[str], typer.Option("--userfilter", "-U", help="Regex (RE2) on user name.")]
MapFilter = Annotated[Optional[str], typer.Option("--mapfilter", "-M", help="Regex (RE2) on mapping name (path); "
                                                                             "only matching mappings are counted.")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Show only the first N rows.")]


def split_columns(text: str | None) -> list[str] | None:
    return text.replace(",", " ").split() if text else None


FileMode = Annotated[str, typer.Option(
    "--file-mode", metavar="OCTAL", help="Permissions of the files written: exports, charts and reports hold "
                                         "command lines, so they are private (0600) like the store; e.g. 0640 "
                                         "to share them with the group.")]


def file_mode(text: str) -> int:
    """``--file-mode`` as a number: octal permissions, at most 0777."""
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        fail(MemsnapError(f"--file-mode {text!r} is not octal permissions", hint="e.g. --file-mode 0600 or 0640"))
    return mode


@contextmanager
def private_output(path: str | None, mode: str | int = "0600"):
    """Write ``path`` (and a DuckDB database's ``.wal``) private: created under umask 077, so it is never readable
    by others even while being written, then set to ``mode`` (also when the file existed before)."""
    mode = file_mode(mode) if isinstance(mode, str) else mode
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
    for p in ([path, path + ".wal"] if path else []):  # not reached when writing failed (a file left as it was)
        if os.path.isfile(p):
            os.chmod(p, mode)


def notes_and_plot(notes, plot: str | None, draw, mode: str = "0600") -> None:
    """The tail of a report command: its notes on stderr, then the chart if --plot was given (private: see
    :func:`private_output`)."""
    for n in notes:
        err(f"note: {n}")
    if plot:
        try:
            with private_output(plot, mode):
                draw()
        except MemsnapError as e:
            fail(e)
        err(f"wrote {plot}")


def stderr_console():
    from rich.console import Console

    return Console(stderr=True)


class LazyProgress:
    """A rich progress bar on stderr, shown only on a TTY and only once there are ``min_total`` steps."""

    def __init__(self, label: str, min_total: int = 10):
        self.label, self.min_total, self.prog, self.task = label, min_total, None, None

    def __call__(self, done: int, total: int, description: str | None = None) -> None:
        import sys

        if self.prog is None:
            if total < self.min_total or not sys.stderr.isatty():
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.prog = Progress(TextColumn(self.label + "{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), transient=True, console=stderr_console())
            self.prog.start()
            self.task = self.prog.add_task("", total=total)
        self.prog.update(self.task, completed=done, total=total,
                         description=f" {description}" if description else "")

    def close(self) -> None:
        if self.prog is not None:
            self.prog.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
