"""The architecture stays visible: one-way imports, a lean recorder, queries shipped in the wheel.

    cli  ->  recorder, analyzer  ->  common, schema

The import graph is checked statically, from the source of every module (an ``import`` inside a function
counts as much as one at the top), and dynamically: ``memsnap record`` never loads the analyzer's libraries.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile

from conftest import ROOT

PACKAGES = ("cli", "recorder", "analyzer", "common", "schema", "queries")
#: what each package may import of the project's own packages
ALLOWED = {
    "cli": {"cli", "recorder", "analyzer", "common", "schema", "queries"},
    "recorder": {"recorder", "common", "schema"},
    "analyzer": {"analyzer", "common", "schema", "queries"},
    "common": {"common"},
    "schema": {"schema"},
    "queries": {"queries"},
}
#: third-party libraries the recorder (and what it imports) must never import: they are not in its install
ANALYZER_LIBS = {"duckdb", "duckdb_engine", "sqlalchemy", "matplotlib"}


def imports_of(path) -> set[str]:
    """Top-level names of every module a file imports (relative imports resolved to their package)."""
    tree = ast.parse(path.read_text(), str(path))
    pkg = path.relative_to(ROOT).parts[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            out.add(pkg if node.level else node.module.split(".")[0])
    return out


def test_import_graph_is_one_way():
    bad = []
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            own = imports_of(f) & set(PACKAGES)
            wrong = own - ALLOWED[pkg]
            if wrong:
                bad.append(f"{f.relative_to(ROOT)} imports {', '.join(sorted(wrong))}")
    assert bad == []


def test_recorder_side_never_imports_analyzer_libraries():
    bad = []
    for pkg in ("recorder", "common", "schema"):
        for f in sorted((ROOT / pkg).rglob("*.py")):
            if f.name in ("sa.py", "docs.py"):
                continue  # schema.sa (SQLAlchemy tables) and schema.docs serve the analyzer and the docs build
            libs = imports_of(f) & ANALYZER_LIBS
            if libs:
                bad.append(f"{f.relative_to(ROOT)} imports {', '.join(sorted(libs))}")
    assert bad == []


def test_import_graph_check_catches_a_violation(tmp_path):
    """The static check itself can fail: a recorder module importing the analyzer is seen."""
    f = ROOT / "recorder" / "_probe_violation.py"
    f.write_text("def f():\n    from analyzer import sizes\n")
    try:
        assert "analyzer" in imports_of(f) - ALLOWED["recorder"]
    finally:
        f.unlink()


def test_record_loads_no_analyzer_library(tmp_path):
    code = (
        "import subprocess, sys\n"
        "child = subprocess.Popen(['sleep', '60'])  # the recorder never records itself\n"
        "sys.argv = ['memsnap', 'record', sys.argv[1], '--pid', str(child.pid), '--sources', 'smaps_rollup', '-q']\n"
        "import cli\n"
        "try:\n"
        "    cli.app(prog_name='memsnap')\n"
        "except SystemExit as e:\n"
        "    if e.code:\n"
        "        raise\n"
        "finally:\n"
        "    child.kill()\n"
        "bad = sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', 'sqlalchemy', 'duckdb_engine', "
        "'matplotlib', 'analyzer'})\n"
        "print(bad)\n"
        "sys.exit(3 if bad else 0)\n"
    )
    cp = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, cwd=ROOT)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert (tmp_path / "s" / "snapshots").is_dir()  # the capture really happened


def test_library_never_prints():
    offenders = []
    for pkg in ("recorder", "analyzer", "schema", "common"):
        for f in (ROOT / pkg).glob("*.py"):
            if f.name == "docs.py":
                continue  # schema.docs is a script entry point
            text = f.read_text()
            if "print(" in text or "sys.stdout.write" in text:
                offenders.append(str(f))
    assert offenders == []


def test_wheel_contains_queries(tmp_path):
    # built from a copy: setuptools leaves build/ (and egg-info) beside the sources it builds
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                             "__pycache__", "sample_data", "tests", "bench"))
    cp = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                         "-w", str(tmp_path), str(src)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    wheel = next(tmp_path.glob("memsnap-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    sql = sorted(p.name for p in (ROOT / "queries").glob("*.sql"))
    assert sql and all(f"queries/{s}" in names for s in sql)
    for mod in ("recorder/capture.py", "analyzer/sizes.py", "schema/__init__.py", "cli/app.py", "common/layout.py"):
        assert mod in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "memsnap = cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
