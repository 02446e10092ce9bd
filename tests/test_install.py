"""The two installs and the single-file recorder, built for real (pip from PyPI, through pip's cache).

- The plain install (`pip install memsnap`) is the recorder: none of the analyzer's libraries, `memsnap record`
  writes complete snapshots, and an analyzer command says in one line how to get the analyzer.
- `make recorder-pyz` (shiv) is the recorder as one file; what it records, the full analyzer reads.

Builds take about a minute each the first time and are shared by the tests of this module.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ROOT, needs_root, read_table
from conftest import download, s3_env  # moto and bucket: fixtures in conftest (moto's S3 server, a bucket)

pytestmark = pytest.mark.slow


def _load_install_size():
    # bench/ is not a package, and putting it on sys.path would shadow the `common` package
    spec = importlib.util.spec_from_file_location("install_size", ROOT / "bench" / "install_size.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


inst = _load_install_size()


@pytest.fixture(scope="session")
def lean_venv(tmp_path_factory) -> Path:
    return inst.make_venv(tmp_path_factory.mktemp("install") / "lean")


@pytest.fixture(scope="session")
def pyz() -> Path:
    return inst.build_zipapp()


@pytest.fixture
def child():
    """A process with some memory of its own to record."""
    p = subprocess.Popen([sys.executable, "-c", "import sys, time; b = bytearray(8 << 20); b[::4096] = b'x' * 2048; "
                          "print('ready', flush=True); time.sleep(600)"], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    yield p.pid
    p.kill()
    p.wait()


def run(cmd, cwd, **env) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=inst.clean_env(**env),
                          timeout=300)


def assert_complete(store: Path, pid: int, snapshot_id: str) -> None:
    """The snapshot is committed and holds the process: read with pyarrow here, not with memsnap."""
    snaps = read_table(store, "snapshots").to_pylist()
    assert [s["snapshot_id"] for s in snaps] == [snapshot_id]
    procs = [r for r in read_table(store, "processes").to_pylist() if r["snapshot_id"] == snapshot_id]
    mine = [r for r in procs if r["pid"] == pid]
    assert len(mine) == 1 and mine[0]["error"] is None, mine
    maps = [r for r in read_table(store, "mappings").select(["snapshot_id", "pid"]).to_pylist()
            if r["snapshot_id"] == snapshot_id and r["pid"] == pid]
    assert len(maps) > 5


def test_lean_install_has_no_analyzer_libraries(lean_venv):
    py = lean_venv / "bin" / "python"
    assert inst.importable(py, inst.ANALYZER_LIBS) == []
    assert inst.importable(py, ("pyarrow", "typer", "recorder", "cli")) == ["pyarrow", "typer", "recorder", "cli"]
    assert inst.importable(py, ("numpy",)) == []  # the recorder computes with pyarrow alone
    # the installed copy, not this tree
    where = run([py, "-c", "import recorder; print(recorder.__file__)"], cwd=lean_venv).stdout
    assert where.startswith(str(inst.site_packages(lean_venv))), where


@needs_root
@pytest.mark.parametrize("how", ["argument", "--store"])
def test_lean_install_records(lean_venv, child, tmp_path, how):
    store = tmp_path / "store"
    where = [store] if how == "argument" else ["--store", store]
    cp = run([lean_venv / "bin" / "memsnap", "record", *where, "--pid", child, "--quiet"], cwd=tmp_path)
    assert cp.returncode == 0, cp.stderr
    assert "Traceback" not in cp.stderr
    assert_complete(store, child, cp.stdout.split()[-1])


def test_lean_install_compacts(lean_venv, tmp_path):
    """Production hosts compact with the recorder-only install (the systemd unit runs `memsnap compact`)."""
    import shutil

    store = tmp_path / "store"
    shutil.copytree(ROOT / "sample_data" / "store", store)
    before = {t: read_table(store, t).num_rows for t in ("snapshots", "pages", "frames", "processes")}
    cp = run([lean_venv / "bin" / "memsnap", "compact", store], cwd=tmp_path)
    assert cp.returncode == 0 and cp.stdout.startswith("compacted 2 snapshots of host=sample"), cp.stderr
    assert len(list(store.rglob("*.parquet"))) == 6
    assert {t: read_table(store, t).num_rows for t in before} == before


def test_lean_install_pushes(lean_venv, tmp_path, moto, bucket):
    """Hosts push with the recorder-only install (contrib/memsnap-push.service): to a directory, and to S3 with
    pyarrow's own client (moto's server on 127.0.0.1)."""
    store = tmp_path / "store"
    shutil.copytree(ROOT / "sample_data" / "store", store)
    memsnap = lean_venv / "bin" / "memsnap"
    cp = run([memsnap, "push", store, tmp_path / "central"], cwd=tmp_path)
    assert cp.returncode == 0 and cp.stdout.startswith("pushed 2 snapshots"), cp.stderr
    cp = run([memsnap, "push", store, f"s3://{bucket}/fleet", "--move", "--format", "json"], cwd=tmp_path,
             **{k: v for k, v in s3_env(moto).items() if k.startswith("AWS_")})
    assert cp.returncode == 0, cp.stderr
    out = json.loads(cp.stdout)
    assert out["snapshots"] == 2 and len(out["moved"]) == 2
    local = download(moto, f"{bucket}/fleet", tmp_path / "down")
    assert sorted(p.relative_to(local) for p in Path(local).rglob("*.parquet")) == \
        sorted(p.relative_to(tmp_path / "central") for p in (tmp_path / "central").rglob("*.parquet"))
    assert not list(store.rglob("*.parquet"))  # moved


@pytest.mark.parametrize("command", ["sizes", "snapshots", "sql"])
def test_lean_install_analyzer_commands_say_how_to_install(lean_venv, tmp_path, command):
    store = ROOT / "sample_data" / "store"
    cp = run([lean_venv / "bin" / "memsnap", command, store], cwd=tmp_path)
    assert cp.returncode == 1, (cp.stdout, cp.stderr)
    lines = cp.stderr.splitlines()
    assert lines == [f"Error: memsnap {command} needs the analyzer, which this install does not have — "
                     "pip install 'memsnap[analyze]'"], cp.stderr
    assert cp.stdout == ""


def test_zipapp_holds_the_recorder_only(pyz):
    names = zipfile.ZipFile(pyz).namelist()
    tops = {n.split("/")[1] for n in names if n.startswith("site-packages/") and n.count("/") > 1}
    assert {"cli", "common", "recorder", "schema", "pyarrow", "typer"} <= tops and "numpy" not in tops
    assert not tops & {"duckdb", "duckdb_engine", "sqlalchemy", "matplotlib", "PIL", "fontTools"}


@needs_root
def test_zipapp_records_what_the_analyzer_reads(pyz, child, tmp_path):
    store, shiv_root = tmp_path / "store", tmp_path / "shiv"
    python3 = shutil.which("python3", path=inst.clean_env()["PATH"]) or sys.executable
    cp = run([python3, pyz, "record", store, "--pid", child, "--quiet"], cwd=tmp_path, SHIV_ROOT=str(shiv_root))
    assert cp.returncode == 0, cp.stderr
    assert_complete(store, child, cp.stdout.split()[-1])
    shutil.rmtree(shiv_root)  # about 240 MB unpacked

    # the full install (this venv) reads it
    cp = subprocess.run([sys.executable, "-m", "cli", "sizes", str(store), "--format", "json"], capture_output=True,
                        text=True, cwd=ROOT, timeout=300)
    assert cp.returncode == 0, cp.stderr
    rows = {r["pid"]: r for r in json.loads(cp.stdout)}
    assert rows[child]["rss"] > 8 * 1024, rows[child]  # kB: the child wrote to every page of its 8 MiB
