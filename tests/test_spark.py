"""The Spark engine gives DuckDB's answers (issue 14): row for row, on a multi-host store.

The store: sample_data's two snapshots (host ``sample``), three synthetic snapshots (bench/synth.py, host
``synth-1``, and the same files copied as host ``synth-2``), and three live captures of this machine (its
hostname).  Every analyzer operation runs once on DuckDB and once on Spark (local mode, one SparkSession for
the module) and the results, as JSON, must be equal.  A second test runs the CLI against a real standalone
master and worker on 127.0.0.1.  Marked ``spark``: ``pytest -m "not spark"`` skips them locally; CI runs them.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import IS_ROOT, ROOT, SAMPLE_STORE, Workload, free_port, memsnap, require_or_skip

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def _need_spark():
    if importlib.util.find_spec("pyspark") is None or importlib.util.find_spec("sqlglot") is None:
        require_or_skip("pyspark and sqlglot are not installed (pip install -e '.[spark]')")
    if shutil.which("java") is None:
        require_or_skip("no java on PATH (Spark needs Java 17+)")


def _synth():
    spec = importlib.util.spec_from_file_location("synth", ROOT / "bench" / "synth.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["synth"] = mod  # its dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _copy_host(src: Path, dst: Path, host: str | None = None, rename: str | None = None) -> None:
    """Copy a store's partitions of ``host`` (all if None) into ``dst``, under ``rename`` if given."""
    for table in src.iterdir():
        if not table.is_dir() or table.name.startswith("."):
            continue
        for hdir in table.iterdir():
            if not hdir.name.startswith("host=") or (host and hdir.name != f"host={host}"):
                continue
            target = dst / table.name / (f"host={rename}" if rename else hdir.name)
            shutil.copytree(hdir, target, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, request):
    """A multi-host store: sample (2 snapshots), synth-1 and synth-2 (3 each), this machine (3 live)."""
    _need_spark()
    if not IS_ROOT:
        require_or_skip("the live capture needs root")
    base = tmp_path_factory.mktemp("fleet")
    store = base / "store"
    store.mkdir()
    _copy_host(SAMPLE_STORE, store)
    synth = _synth()
    sdir = base / "synth"
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
    for i in range(3):
        synth.generate(procs=12, pages=20000, seed=i + 1, out=str(sdir), host="synth-1",
                       capture_time=t0 + timedelta(minutes=10 * i), verbose=False)
    _copy_host(sdir, store)
    _copy_host(sdir, store, "synth-1", "synth-2")
    wl = Workload("--workers", "2", "--anon-mb", "4", "--file-mb", "2", "--shared-mb", "2", "--memfd-mb", "1")
    live = base / "live"
    try:
        for i in range(3):
            args = ["record", "--store", str(live), "--quiet"]
            for p in wl.pids:
                args += ["--pid", str(p)]
            memsnap(*args)
            if i == 0:
                wl.cow(0, 2)  # something for diff to find
    finally:
        wl.stop()
    _copy_host(live, store)
    return store


@pytest.fixture(scope="module")
def engines(fleet):
    from analyzer import open_store

    duck = open_store(str(fleet))
    spark = open_store(str(fleet), engine="spark", spark_master="local[2]")
    yield duck, spark
    duck.close()
    spark.close()


def _json(x) -> str:
    # times as the CLI writes them (DuckDB gives ZoneInfo('Etc/UTC'), Spark timezone.utc: the same instant)
    return json.dumps(x, default=lambda o: o.isoformat() if isinstance(o, datetime) else str(o), sort_keys=False)


def _rows(res):
    return _json({"columns": getattr(res, "columns", None), "rows": res.rows,
                  "notes": getattr(res, "notes", None)})


def _both(engines, fn):
    """``fn`` on both engines: equal results, or the same refusal (a MemsnapError with the same message)."""
    from common.errors import MemsnapError

    def run(st):
        try:
            return fn(st)
        except MemsnapError as e:
            return f"{type(e).__name__}: {e}"

    duck, spark = engines
    a, b = run(duck), run(spark)
    assert a == b
    return a


def test_fleet_store_is_multi_host(engines):
    duck, _ = engines
    hosts = {}
    for s in duck.snapshots():
        hosts.setdefault(s.host, []).append(s)
    assert len(hosts) >= 4 and sum(len(v) >= 3 for v in hosts.values()) >= 3, hosts.keys()


@pytest.mark.parametrize("source", ["smaps", "pages"])
@pytest.mark.parametrize("by", ["process", "user", "command", "cgroup", "mapping", "system"])
def test_sizes_equal(engines, by, source):
    out = _both(engines, lambda st: _rows(st.sizes(by=by, source=source)))
    assert '"rows": []' not in out


@pytest.mark.parametrize("source", ["smaps", "pages"])
def test_sizes_filters_equal(engines, source):
    _both(engines, lambda st: _rows(st.sizes(by="process", source=source, processfilter="python|synth",
                                             mapfilter="lib|anon", userfilter="root")))


def _hosts(engines):
    return sorted({s.host for s in engines[0].snapshots()})


@pytest.mark.parametrize("source", ["smaps", "pages"])
def test_diff_equal(engines, source):
    for host in _hosts(engines):  # synth-*: a new boot id per snapshot, refused the same way by both
        _both(engines, lambda st: _rows(st.diff(host=host, source=source)))
    assert "Refused" not in _both(engines, lambda st: _rows(st.diff(host="sample", source=source)))
    _both(engines, lambda st: _rows(st.diff(host=_hosts(engines)[-1], source=source, by="mapping",
                                             mapfilter="anon")))


@pytest.mark.parametrize("view", ["groups", "pairs", "mapping", "histogram", "flags", "reconcile"])
def test_shared_equal(engines, view):
    for host in _hosts(engines):
        _both(engines, lambda st: _rows(st.shared(view, host=host)))


def test_shared_group_kinds_equal(engines):
    host = _hosts(engines)[0]
    for g in ("user", "cgroup", "regex:python|synth", "name:^py"):
        _both(engines, lambda st: _rows(st.shared("groups", host=host, groups=g)))


def test_trend_equal(engines):
    for host in _hosts(engines):
        for by in ("process", "command"):
            _both(engines, lambda st: _json({k: v if k != "snapshots" else [(x.host, x.snapshot_id) for x in v]
                                             for k, v in st.trend(host=host, by=by).__dict__.items()}))


def test_named_queries_and_views_equal(engines):
    """Every named query and view of queries/: the same rows (sorted: a view has no order of its own)."""
    from analyzer import queries

    duck, _ = engines
    snaps = duck.resolve("latest")
    ids = [s.snapshot_id for s in snaps]
    s0 = [s for s in snaps if s.host == "sample"][0]
    params = {"snapshot_ids": ids, "host": s0.host, "snapshot_id": s0.snapshot_id, "pfilter": None,
              "ufilter": None, "pids": None}
    pair = duck.snapshots("sample")[-2:]
    params.update({"from_host": "sample", "from_id": pair[0].snapshot_id, "to_host": "sample",
                   "to_id": pair[1].snapshot_id, "mapfilter": None, "parts": 1, "part": 0, "by": "command",
                   "pattern": None})
    checked = []
    for q in queries.all_queries().values():
        if q.kind == "macro":
            continue
        p = {k: params[k] for k in q.params}
        got = _both(engines, lambda st: _json(sorted(map(list, st.query(q.name, p).fetchall()), key=_json)))
        # the fleet store records no physmem source: its queries compare empty results (test_physmem has data)
        assert got != "[]" or q.name in ("shared_pair_totals",) or q.name.startswith("physmem_"), q.name
        checked.append(q.name)
    assert len(checked) >= 12


def test_sql_equal(engines):
    from analyzer import sql as sqlmod

    q = ("SELECT host, count(*) AS n, sum(rss_kb) AS rss FROM process_sizes_smaps WHERE host <> $h "
         "GROUP BY host ORDER BY host")
    _both(engines, lambda st: _json(sqlmod.run_sql(st, q, {"h": "nobody"})))


def test_report_equal(engines):
    """`memsnap report` (the Python API's ``Store.report``, what the CLI writes) on Spark: the same HTML byte for
    byte (every table, every chart; the charts' SVG is deterministic) and the same tables."""
    def rep(st):
        r = st.report(host="sample")
        return _json({"sections": r.sections, "tables": r.tables, "html": r.html})

    out = _both(engines, rep)
    assert out.startswith('{"sections": ["header"') and out.count("<svg") >= 5, out[:300]


def test_sqlalchemy_engine_is_duckdb_only(engines):
    """``Store.engine`` (SQLAlchemy) exists on DuckDB only: on Spark it refuses, rather than answering from
    DuckDB while the store says Spark (docs/fleet.md)."""
    import sqlalchemy as sa

    from common.errors import MemsnapError

    duck, spark = engines
    assert (duck.engine_name, spark.engine_name) == ("duckdb", "spark")
    with duck.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(duck.tables["snapshots"])).scalar() >= 11
    with pytest.raises(MemsnapError, match="SQLAlchemy on the Spark engine is not supported"):
        spark.engine


# ------------------------------------------------------------------------------------------ a real cluster
@contextlib.contextmanager
def standalone_cluster(tmp_path):
    """A Spark standalone master and one worker (1 core, 1 GiB) on 127.0.0.1, started from the pyspark package;
    yields the master's URL, and stops both."""
    import pyspark

    home = os.path.dirname(pyspark.__file__)
    env = {**os.environ, "SPARK_HOME": home, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOG_DIR": str(tmp_path),
           "SPARK_WORKER_DIR": str(tmp_path / "work")}
    port, wport = free_port(), free_port()
    cls = os.path.join(home, "bin", "spark-class")
    procs = []
    try:
        procs.append(subprocess.Popen([cls, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                       "--port", str(port), "--webui-port", str(free_port())], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        procs.append(subprocess.Popen([cls, "org.apache.spark.deploy.worker.Worker", f"spark://127.0.0.1:{port}",
                                       "--host", "127.0.0.1", "--port", str(wport), "--webui-port",
                                       str(free_port()), "--cores", "1", "--memory", "1g"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail("the Spark master did not listen within 120 s")
        yield f"spark://127.0.0.1:{port}"
    finally:
        for p in procs:  # each in its own process group: the JVM and its launcher shell
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_standalone_cluster_cli(fleet, tmp_path):
    """`memsnap --engine spark --spark-master spark://127.0.0.1:P` (a CLI subprocess) against a standalone master
    and one worker started from the pyspark package: sizes and diff --source pages equal DuckDB's."""
    _need_spark()
    with standalone_cluster(tmp_path) as master:
        for args in (["sizes", "--source", "pages", "-f", "json"],
                     ["diff", "--source", "pages", "--host", "sample", "-f", "json"]):
            duck = memsnap(*args, "-S", str(fleet))
            want = duck.stdout
            got = memsnap("--engine", "spark", "--spark-master", master, *args, "-S", str(fleet),
                          timeout=900)
            assert got.stdout == want and want.strip(), args  # byte for byte: nothing of Spark's on stdout
            # stderr: memsnap's own messages only, as on DuckDB; the JVM's module warning and log4j lines go to
            # its log file (analyzer/spark.py _gateway)
            assert got.stderr == duck.stderr, got.stderr[:500]
