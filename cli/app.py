"""The typer app, the root options, and the one place errors are shown."""
from __future__ import annotations

import sys

import typer

from common.errors import MemsnapError

from . import options

app = typer.Typer(
    name="memsnap",
    help="Record process memory on Linux (smaps, pagemap, kpagecount/flags) into a Parquet store, "
         "then analyse it with DuckDB: set sizes (VSS/RSS/PSS/USS/swap), diffs, sharing, trends, SQL.\n\n"
         "Typical use: `memsnap record` on a host (as root for PFNs), copy the store, `memsnap sizes` on a "
         "workstation. Every command takes the store as its first argument (or -S/--store, or "
         "$MEMSNAP_STORE; default ./memsnap-store).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from recorder import __version__

        typer.echo(f"memsnap {__version__}")
        raise typer.Exit()


@app.callback()
def _root(skip_bad: options.SkipBad = False,
          version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """memsnap: record process memory into Parquet, analyse it with DuckDB.

    Shell completion: `memsnap --install-completion` (bash, zsh, fish), then open a new shell.
    """
    options.STATE["skip_bad"] = skip_bad


def _register() -> None:
    """Import the command modules: their ``@app.command`` decorators add the commands, in this order."""
    import importlib

    for module in ("record", "compact", "analyse", "sqlcmd"):
        importlib.import_module(f"cli.{module}")


def _duckdb_error(e: Exception) -> str:
    """DuckDB failing mid-query (a damaged data page whose footer was fine, out of memory): one line."""
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "Out of Memory" in first:
        hint = ("raise the analyzer's DuckDB memory limit, e.g. MEMSNAP_MEMORY_LIMIT=4GB (default 1GB; what does "
                "not fit spills to a temporary directory)")
    else:
        hint = ("a store file may be damaged; `memsnap --skip-bad ...` checks every file and leaves out snapshots "
                "with a damaged one")
    return f"Error: DuckDB: {first} — {hint}"


def main() -> None:
    try:
        app(prog_name="memsnap")
    except MemsnapError as e:  # pragma: no cover - commands call fail() themselves
        typer.echo(options.error_line(e), err=True)
        sys.exit(1)
    except Exception as e:
        if type(e).__module__.split(".")[0] in ("duckdb", "_duckdb"):
            typer.echo(_duckdb_error(e), err=True)
            sys.exit(1)
        raise


_register()
