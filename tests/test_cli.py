"""The command line is consistent, as people expect from smem, ps and sqlite-utils."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import typer
from typer.core import TyperArgument, TyperOption

from conftest import ROOT, SAMPLE_STORE, memsnap, needs_root

ANALYZER_COMMANDS = ("snapshots", "sizes", "diff", "trend", "shared", "report", "sql", "query")


def _commands():
    from cli import app

    root = typer.main.get_command(app)
    out = {}
    for name in root.list_commands(None):
        cmd = root.get_command(None, name)
        if hasattr(cmd, "commands"):  # a sub-app (memsnap import ...)
            out.update({f"{name} {sub}": c for sub, c in cmd.commands.items()})
        else:
            out[name] = cmd
    return root, out


def test_a_short_flag_means_one_thing_everywhere():
    root, cmds = _commands()
    meaning: dict[str, set[str]] = {}
    for name, cmd in [("", root), *cmds.items()]:
        for p in cmd.params:
            if isinstance(p, TyperOption):
                long = max(p.opts, key=len)
                for o in p.opts + p.secondary_opts:
                    if len(o) == 2:
                        meaning.setdefault(o, set()).add(long)
    clashes = {short: longs for short, longs in meaning.items() if len(longs) > 1}
    assert clashes == {}
    # smem's flags keep smem's meaning where memsnap has them
    for short, long in (("-P", "--processfilter"), ("-U", "--userfilter"), ("-M", "--mapfilter"), ("-t", "--totals"),
                        ("-p", "--percent"), ("-n", "--numeric"), ("-k", "--abbreviate"), ("-c", "--columns"),
                        ("-s", "--sort"), ("-r", "--reverse"), ("-H", "--no-header"), ("-S", "--store")):
        assert meaning[short] == {long}


def test_every_command_takes_the_store_first_and_with_S():
    _, cmds = _commands()
    for name in (*ANALYZER_COMMANDS, "record", "export-db"):
        params = cmds[name].params
        args = [p for p in params if isinstance(p, TyperArgument)]
        assert args, f"{name} takes no store argument"
        assert any("--store" in getattr(p, "opts", []) and "-S" in p.opts for p in params), name
        if name in ANALYZER_COMMANDS:
            assert any("--skip-bad" in getattr(p, "opts", []) for p in params), name


@pytest.mark.parametrize("args", [
    ["sizes", str(SAMPLE_STORE), "-f", "json"],
    ["sizes", "-S", str(SAMPLE_STORE), "-f", "json"],
    ["sizes", "-f", "json"],  # $MEMSNAP_STORE
    ["sizes", str(SAMPLE_STORE), "--skip-bad", "-f", "json"],
    ["--skip-bad", "sizes", str(SAMPLE_STORE), "-f", "json"],
])
def test_store_position_option_and_environment_agree(args):
    env = dict(os.environ, MEMSNAP_STORE=str(SAMPLE_STORE))
    out = memsnap(*args, env=env).stdout
    ref = memsnap("sizes", str(SAMPLE_STORE), "-f", "json").stdout
    assert out == ref and json.loads(out)


def test_query_takes_store_first_or_name_first():
    a = memsnap("query", str(SAMPLE_STORE), "snapshot_list", "-f", "json").stdout
    b = memsnap("query", "snapshot_list", str(SAMPLE_STORE), "-f", "json").stdout
    assert a == b and len(json.loads(a)) == 2


def test_version_and_completion():
    from recorder import __version__

    assert memsnap("--version").stdout.strip() == f"memsnap {__version__}"
    help_text = memsnap("--help").stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text


#: what a command must not import (it does not use it): start-up is paid by every command (issue 15)
_HEAVY = {"duckdb", "sqlalchemy", "duckdb_engine", "matplotlib", "pyarrow", "numpy", "pydantic"}
_OTHER_COMMANDS = {"cli.record", "cli.compact", "cli.sqlcmd"}
#: the root help is served from its pre-rendered text (cli/help_text.py): nothing but the interpreter's own start
_HELP = _HEAVY | {"typer", "rich", "click", "shutil", "analyzer", "recorder", "cli.app", "cli.options"}


def _engine_only() -> set[str]:
    """What opening a store and running statements must not load: duckdb's Python relation layer (the package
    ``duckdb``) where the C++ engine is a module of its own, ``_duckdb`` (analyzer/duck.py); the whole package
    otherwise."""
    import importlib.util

    return set() if importlib.util.find_spec("_duckdb") is None else {"duckdb"}


@pytest.mark.parametrize("argv, forbidden", [
    (["--help"], _HELP),
    (["-h"], _HELP),
    (["sizes", "--help"], _HEAVY | _OTHER_COMMANDS),
    (["snapshots", str(SAMPLE_STORE)], (_HEAVY - {"duckdb"}) | _engine_only() | _OTHER_COMMANDS |
     {"analyzer.sizes", "analyzer.sqlcore"}),
    (["sizes", str(SAMPLE_STORE)], (_HEAVY - {"duckdb"}) | _engine_only() | _OTHER_COMMANDS),
    (["sizes", str(SAMPLE_STORE), "--source", "pages", "--by", "mapping", "-P", "python", "-f", "json"],
     (_HEAVY - {"duckdb"}) | _engine_only() | _OTHER_COMMANDS),
    (["record", "--help"], _HEAVY | {"analyzer", "cli.analyse", "cli.sqlcmd"}),
    (["push", "--help"], _HEAVY | {"analyzer", "cli.analyse", "cli.sqlcmd", "cli.record"}),
    (["push", str(SAMPLE_STORE), "--dry-run", "/nonexistent/central"],
     (_HEAVY - {"pyarrow", "numpy"}) | {"analyzer", "cli.analyse", "cli.sqlcmd", "cli.record"}),  # pyarrow loads numpy if it is there
], ids=["help", "help-h", "sizes-help", "snapshots", "sizes", "sizes-pages-json", "record-help", "push-help", "push"])
def test_a_command_imports_only_what_it_uses(argv, forbidden):
    code = ("import sys\nforbidden = set(sys.stdin.read().split())\nsys.argv=['memsnap', *sys.argv[1:]]\n"
            "import cli\ntry:\n    cli.main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "bad = sorted({m for m in sys.modules if m in forbidden or m.split('.')[0] in forbidden})\n"
            "print('loaded:', *bad, file=sys.stderr)\nsys.exit(3 if bad else 0)\n")
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # the help at click's default width
    cp = subprocess.run([sys.executable, "-c", code, *argv], input=" ".join(sorted(forbidden)), capture_output=True,
                        text=True, cwd=ROOT, env=env)
    assert cp.returncode == 0, cp.stderr[-2000:]


def test_the_command_list_of_help_is_what_the_built_commands_say():
    """``memsnap --help`` lists the commands without building their options (cli.app.LazyGroup); the table of
    commands is what the modules register, and the listing is the one the built commands give."""
    code = """
import typer
from cli.app import COMMANDS, app, commands_of
root = typer.main.get_command(app)
ctx = root.context_class(root, info_name="memsnap")
lazy = root.get_help(ctx)
for module in set(COMMANDS.values()):
    assert set(commands_of(module)) == {n for n, m in COMMANDS.items() if m == module}, module
for name in COMMANDS:
    assert root.get_command(ctx, name) is not None, name
assert root.get_help(ctx) == lazy, (lazy, root.get_help(ctx))
print(lazy)
"""
    for columns in ("80", "50"):
        cp = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "COLUMNS": columns})
        assert cp.returncode == 0, cp.stderr[-3000:]
        lines = cp.stdout.split("Commands:")[1].splitlines()
        assert [ln.split()[0] for ln in lines if ln.startswith("  ") and ln[2] != " "] == list(COMMANDS_LISTED)


#: the commands, in the order --help lists them (a new command is added here and to cli.app.COMMANDS)
COMMANDS_LISTED = ("record", "compact", "push", "snapshots", "sizes", "diff", "trend", "shared", "report", "memory", "sql", "query",
                   "export-db", "import")


@needs_root
def test_record_summary_as_json(tmp_path):
    out = memsnap("record", str(tmp_path / "s"), "--pid", str(os.getpid()), "--sources", "smaps_rollup",
                  "--format", "json").stdout.strip().splitlines()
    assert len(out) == 1
    row = json.loads(out[0])
    assert row["processes"]["ok"] == 1 and row["store"] == str(tmp_path / "s")
    assert list((tmp_path / "s" / "snapshots").glob(f"host=*/date=*/{row['snapshot_id']}.parquet"))


def test_sizes_in_a_recorder_only_environment_names_the_install():
    """An analyzer command without the analyzer's libraries: one line with the install command, exit 1.
    (tests/test_install.py does this in a real lean install; here the libraries are hidden from import.)"""
    code = ("import sys, importlib.util\n"
            "real = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda n, *a: None if n in ('duckdb','sqlalchemy','duckdb_engine') "
            "else real(n, *a)\n"
            "sys.argv = ['memsnap', 'sizes', sys.argv[1]]\nimport cli\ncli.main()\n")
    cp = subprocess.run([sys.executable, "-c", code, str(SAMPLE_STORE)], capture_output=True, text=True, cwd=ROOT)
    assert cp.returncode == 1
    assert cp.stderr.strip().splitlines() == [
        "Error: memsnap sizes needs the analyzer, which this install does not have — pip install 'memsnap[analyze]'"]


def test_root_help_is_served_without_typer_and_is_typers_text():
    """Issue 15: ``memsnap --help`` (and ``-h``) prints typer's pre-rendered text (cli/_help.py, made by
    ``python -m cli.help_text``) without importing typer; the oracle is typer rendering it in the same process
    conditions: the same bytes at every terminal width (narrower than 80 columns typer renders it), and the
    stored text is fresh."""
    fast = ("import sys\nsys.argv = ['memsnap', *sys.argv[1:]]\nimport cli\ntry:\n    cli.main()\n"
            "except SystemExit as e:\n    assert not e.code, e.code\n"
            "print('TYPER' if any(m.split('.')[0] == 'typer' for m in sys.modules) else 'NO-TYPER', file=sys.stderr)\n")
    slow = ("import sys, importlib\nsys.argv = ['memsnap', *sys.argv[1:]]\nimportlib.import_module('cli.app').main()\n")
    for columns, served in (("80", True), ("200", True), ("60", False)):
        for arg in ("--help", "-h"):
            env = {**os.environ, "COLUMNS": columns}
            f = subprocess.run([sys.executable, "-c", fast, arg], capture_output=True, text=True, cwd=ROOT, env=env)
            s = subprocess.run([sys.executable, "-c", slow, arg], capture_output=True, text=True, cwd=ROOT, env=env)
            assert f.returncode == s.returncode == 0, f.stderr + s.stderr
            assert f.stdout == s.stdout and f.stdout.startswith("Usage: memsnap"), (columns, arg)
            assert f.stderr.strip().splitlines()[-1] == ("NO-TYPER" if served else "TYPER"), (columns, arg)
    cp = subprocess.run([sys.executable, "-c", "from cli import help_text, _help\n"
                         "assert _help.TEXT == help_text.render(), 'stale: run python -m cli.help_text'"],
                        capture_output=True, text=True, cwd=ROOT)
    assert cp.returncode == 0, cp.stderr[-2000:]


def test_cli_app_is_the_typer_app_whatever_was_imported_first():
    code = ("import importlib, sys\nfirst = sys.argv[1]\nif first == 'module':\n    importlib.import_module('cli.app')\n"
            "import cli, typer\nassert isinstance(cli.app, typer.Typer), type(cli.app)\n"
            "from cli import app\nassert isinstance(app, typer.Typer)\n")
    for first in ("module", "package"):
        cp = subprocess.run([sys.executable, "-c", code, first], capture_output=True, text=True, cwd=ROOT)
        assert cp.returncode == 0, cp.stderr[-2000:]
