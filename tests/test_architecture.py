"""The architecture stays visible: the recorder never loads duckdb or sqlalchemy; queries ship in the wheel."""
from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import ROOT


def test_recorder_imports_no_duckdb_or_sqlalchemy(tmp_path):
    code = (
        "import sys, runpy\n"
        "sys.argv = ['memsnap', 'record', '--store', sys.argv[1], '--pid', '1', '--sources', 'smaps_rollup', '-q']\n"
        "import analyzer.cli\n"
        "try:\n"
        "    analyzer.cli.app()\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('duckdb', 'sqlalchemy', 'duckdb_engine')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    cp = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True, text=True, cwd=ROOT)
    assert cp.returncode == 0, cp.stdout + cp.stderr


def test_library_never_prints():
    offenders = []
    for pkg in ("recorder", "analyzer", "schema"):
        for f in (ROOT / pkg).glob("*.py"):
            if f.name in ("cli.py", "docs.py"):
                continue  # the CLI layer formats and prints; schema.docs is a script entry point
            text = f.read_text()
            if "print(" in text or "sys.stdout.write" in text:
                offenders.append(str(f))
    assert offenders == []


def test_wheel_contains_queries(tmp_path):
    cp = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                         "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    wheel = next(tmp_path.glob("memsnap-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    sql = sorted(p.name for p in (ROOT / "queries").glob("*.sql"))
    assert sql and all(f"queries/{s}" in names for s in sql)
    for pkg in ("recorder/capture.py", "analyzer/sizes.py", "schema/__init__.py"):
        assert pkg in names
    entry = [n for n in names if n.endswith("entry_points.txt")]
    assert entry and "memsnap = analyzer.cli:main" in zipfile.ZipFile(wheel).read(entry[0]).decode()
