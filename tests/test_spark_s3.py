"""A store on S3, analysed where it lies (issue 14): two hosts' stores pushed (`memsnap push`) into one prefix of a
real S3 API on loopback (moto's server, tests/conftest.py), then read by DuckDB (``s3://``, through fsspec's
wrapper of pyarrow's S3 filesystem) and by Spark (``s3a://``, Hadoop's S3A filesystem from the jars
``make spark-s3a-jars`` fetches), in local mode and on a standalone master and worker.

The oracle: the same two pushes into a directory, read by DuckDB.  Every answer must be the same bytes (the
CLI's JSON, the report's HTML); nothing of boto, pyarrow or Spark is mocked.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import sys
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ROOT, SAMPLE_STORE, free_port, memsnap, require_or_skip, s3_env, s3fs
from test_spark import _need_spark, standalone_cluster

pytestmark = [pytest.mark.spark, pytest.mark.slow]

#: what each engine is asked, on the merged store (two hosts)
COMMANDS = [
    ["snapshots", "-f", "json"],
    ["sizes", "--by", "command", "-f", "json"],  # across hosts: what each command costs per host
    ["sizes", "--source", "pages", "--host", "synth", "-f", "json"],
    ["diff", "--source", "pages", "--host", "sample", "-f", "json"],
    ["shared", "--groups", "command", "--host", "synth", "-f", "json"],
]


def s3a_jars() -> str:
    """hadoop-aws and the AWS SDK bundle, comma-separated: $MEMSNAP_SPARK_JARS, else what `make spark-s3a-jars`
    put in .cache/spark-jars."""
    jars = os.environ.get("MEMSNAP_SPARK_JARS") or ",".join(sorted(glob.glob(str(ROOT / ".cache/spark-jars/*.jar"))))
    if len(jars.split(",")) < 2:
        require_or_skip("no hadoop-aws jars for Spark's s3a:// (make spark-s3a-jars fetches them; make test does)")
    return jars


@pytest.fixture(scope="module")
def stores(moto, tmp_path_factory):
    """(the S3 URL, the local directory): host ``sample`` (sample_data) and host ``synth`` (3 synthetic
    snapshots), each pushed into both."""
    _need_spark()
    base = tmp_path_factory.mktemp("s3stores")
    spec = importlib.util.spec_from_file_location("synth", ROOT / "bench" / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    sys.modules["synth"] = synth  # its dataclasses look their module up
    spec.loader.exec_module(synth)
    t0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)
    for i in range(3):
        synth.generate(procs=10, pages=15000, seed=i + 7, out=str(base / "synth"), host="synth",
                       capture_time=t0 + timedelta(minutes=10 * i), verbose=False)
    bucket = f"fleet-{os.getpid()}"
    s3fs(moto, allow_bucket_creation=True).create_dir(bucket)
    url, local = f"s3://{bucket}/central", str(base / "central")
    env = s3_env(moto)
    shutil.copytree(SAMPLE_STORE, base / "sample")  # push takes a lock in its source: not in the repository
    for src in (str(base / "sample"), str(base / "synth")):
        for dest in (url, local):
            memsnap("push", src, dest, env=env)
    return url, local


def test_duckdb_reads_the_store_on_s3(stores, moto):
    """DuckDB on ``s3://`` (listing and reads over HTTP) answers as on the directory."""
    url, local = stores
    env = s3_env(moto)
    for args in COMMANDS:
        want = memsnap(*args, "-S", local, env=env)
        got = memsnap(*args, "-S", url, env=env)
        assert got.stdout == want.stdout and want.stdout.strip(), args
        assert got.stderr == want.stderr, (args, got.stderr)


def test_spark_reads_the_store_on_s3a(stores, moto, tmp_path):
    """Spark (local mode) on ``s3a://``: ``sizes --by command`` across the two hosts, and the report of one (its
    sizes, diff, sharing and trend sections, from pages and smaps), equal DuckDB's on the directory."""
    url, local = stores
    env = {**s3_env(moto), "MEMSNAP_SPARK_JARS": s3a_jars()}
    s3a = "s3a://" + url[len("s3://"):]
    for args in COMMANDS[1:2]:  # each run starts a JVM (20-60 s here): the report covers the page-level rest
        want = memsnap(*args, "-S", local, env=env)
        got = memsnap("--engine", "spark", "--spark-master", "local[2]", *args, "-S", s3a, env=env, timeout=900)
        assert got.stdout == want.stdout and want.stdout.strip(), args
        assert got.stderr == want.stderr, (args, got.stderr)
    memsnap("report", "--host", "sample", "-o", str(tmp_path / "duck.html"), "-S", local, env=env)
    memsnap("--engine", "spark", "report", "--host", "sample", "-o", str(tmp_path / "spark.html"), "-S", s3a,
            env=env, timeout=900)
    duck, spark = (tmp_path / "duck.html").read_text(), (tmp_path / "spark.html").read_text()
    assert duck.count("<svg") >= 5
    assert spark.replace(s3a, "STORE").replace(url, "STORE") == duck.replace(local, "STORE")


def test_spark_cluster_reads_the_store_on_s3a(stores, moto, tmp_path):
    """A standalone master and worker: the executor reads the files from S3 itself (the jars travel with the
    job, spark.jars)."""
    url, local = stores
    env = {**s3_env(moto), "MEMSNAP_SPARK_JARS": s3a_jars()}
    with standalone_cluster(tmp_path) as master:
        for args in (COMMANDS[3],):  # diff --source pages: both snapshots' pages and frames, joined
            want = memsnap(*args, "-S", local, env=env)
            got = memsnap("--engine", "spark", "--spark-master", master, *args, "-S", url, env=env, timeout=900)
            assert got.stdout == want.stdout and want.stdout.strip(), args
            assert got.stderr == want.stderr, (args, got.stderr)


def test_errors_are_one_line(stores, moto):
    """No hadoop-aws: one line naming the jars to give; a prefix with no store, a dead endpoint: one line."""
    url, _ = stores
    env = {k: v for k, v in s3_env(moto).items() if k != "MEMSNAP_SPARK_JARS"}
    cases = [
        (["--engine", "spark", "sizes", "-S", url], env, "Spark cannot read s3a:// URLs"),
        (["sizes", "-S", url + "-nothing-here"], env, "not a memsnap store"),
        (["sizes", "-S", "s3://"], env, "no bucket"),
        (["sizes", "-S", url], {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"},
         "check the endpoint"),
    ]
    for args, e, text in cases:
        cp = memsnap(*args, env=e, check=False, timeout=600)
        assert cp.returncode == 1, (args, cp.stdout, cp.stderr)
        assert cp.stderr.startswith("Error: ") and text in cp.stderr and cp.stderr.count("\n") == 1, (args, cp.stderr)

