"""The typer app, the root options, and the one place errors are shown."""
from __future__ import annotations

import importlib
import sys

import typer
from typer.core import TyperGroup

from common.errors import MemsnapError

from . import options

#: Every command, in the order ``--help`` lists them, and the module under cli/ that defines it.  A command's
#: module is imported, and its options built, only when that command runs (or its help is shown): ``memsnap
#: sizes`` does not pay for ``record``'s or ``sql``'s options, and ``memsnap record`` never imports the
#: analysis commands.  ``tests/test_cli.py`` checks this table against what the modules register.
COMMANDS = {
    "record": "record", "compact": "compact", "push": "push", "snapshots": "analyse", "sizes": "analyse",
    "diff": "analyse", "trend": "analyse", "shared": "analyse", "report": "analyse",
    "memory": "analyse", "sql": "sqlcmd", "query": "sqlcmd",
    "export-db": "sqlcmd", "import": "record",
}


class _Commands(dict):
    """The root group's commands by name: every name of :data:`COMMANDS` is a key from the start (so the "Did
    you mean" suggestions know them all); a value is built on first lookup."""

    def __init__(self, built: dict):
        super().__init__(built)
        for name in COMMANDS:
            self.setdefault(name, None)

    def get(self, name, default=None):
        if name in COMMANDS and dict.get(self, name) is None:
            self.update(commands_of(COMMANDS[name], only=name))
        return dict.get(self, name, default)

    # whoever reads the commands themselves (click, tests, completion) gets them built
    def __getitem__(self, name):
        return self.get(name) if name in self else dict.__getitem__(self, name)

    def values(self):
        return [self[n] for n in self]

    def items(self):
        return [(n, self[n]) for n in self]


class LazyGroup(TyperGroup):
    """The root command group: lists :data:`COMMANDS` and builds a command from its module on first use."""

    def __init__(self, **attrs):
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)

    def list_commands(self, ctx) -> list[str]:
        return list(COMMANDS)

    def format_commands(self, ctx, formatter) -> None:
        """The command list of ``memsnap --help`` needs each command's help line, not its options: commands
        not built yet are listed from what their decorator registered (name, help, hidden), without building
        their options.  Same text as the built commands give (``tests/test_cli.py`` compares)."""
        real = self.commands
        self.commands = {name: real.get(name) if dict.get(real, name) is not None else _listing(name)
                         for name in COMMANDS}
        try:
            super().format_commands(ctx, formatter)
        finally:
            self.commands = real


def _infos(module: str) -> list:
    """``(kind, info)`` of every command (``"command"``) and sub-group (``"group"``) that ``cli.<module>``
    registered on :data:`app`, importing the module."""
    name = importlib.import_module(f"cli.{module}").__name__
    out = [("command", i) for i in app.registered_commands if i.callback.__module__ == name]
    out += [("group", i) for i in app.registered_groups
            if i.typer_instance.registered_commands
            and i.typer_instance.registered_commands[0].callback.__module__ == name]
    return out


def _name(kind: str, info) -> str:
    """The name a registered command (``kind`` ``"command"``) or sub-group has on the command line."""
    from typer.main import get_command_name, solve_typer_info_defaults

    return solve_typer_info_defaults(info).name if kind == "group" else \
        info.name or get_command_name(info.callback.__name__)


def _listing(cmd_name: str):
    """A command without options, carrying what ``--help``'s command list shows of ``cmd_name``."""
    import inspect

    from typer.core import TyperCommand
    from typer.main import solve_typer_info_defaults

    for kind, info in _infos(COMMANDS[cmd_name]):
        name = _name(kind, info)
        if kind == "group":
            info = solve_typer_info_defaults(info)
            help_ = info.help
        else:
            help_ = inspect.getdoc(info.callback) if info.help is None else inspect.cleandoc(info.help)
        if name == cmd_name:
            return TyperCommand(name=name, help=help_, short_help=info.short_help, hidden=bool(info.hidden),
                                deprecated=bool(info.deprecated))
    return None


def commands_of(module: str, only: str | None = None) -> dict:
    """Import ``cli.<module>`` and build the click commands (and sub-groups) its decorators registered; ``only``:
    that one alone (``memsnap sizes`` builds no option of diff, trend, report, ...: 2-3 ms each)."""
    from typer.main import get_command_from_info, get_group_from_info

    built = {}
    for kind, info in _infos(module):
        if only is not None and _name(kind, info) != only:
            continue
        if kind == "command":
            cmd = get_command_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                        rich_markup_mode=app.rich_markup_mode)
        else:
            cmd = get_group_from_info(info, pretty_exceptions_short=app.pretty_exceptions_short,
                                      rich_markup_mode=app.rich_markup_mode, suggest_commands=app.suggest_commands)
        built[cmd.name] = cmd
    return built


app = typer.Typer(
    cls=LazyGroup,
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
def _root(skip_bad: options.SkipBad = False, engine: options.Engine = None, spark_master: options.SparkMaster = None,
          version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")):
    """memsnap: record process memory into Parquet, analyse it with DuckDB.

    Shell completion: `memsnap --install-completion` (bash, zsh, fish), then open a new shell.
    """
    options.STATE["skip_bad"] = skip_bad
    options.STATE["engine"], options.STATE["spark_master"] = engine, spark_master


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
