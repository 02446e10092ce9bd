"""Shared fixtures: live workloads with known sharing, and recording them."""
from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest
from hypothesis import settings

# no hypothesis deadline anywhere (its default is 200 ms per example): a loaded CI machine is not a bug, and speed
# is checked by benchmarks (docs/design.md, Testing)
settings.register_profile("memsnap", deadline=None)
settings.load_profile("memsnap")

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "sample_data" / "workload.py"
SAMPLE_STORE = ROOT / "sample_data" / "store"

IS_ROOT = os.geteuid() == 0
HAS_KPAGE = os.path.exists("/proc/kpagecount")

#: MEMSNAP_REQUIRE_LIVE=1 (set by .ci/run): every skip becomes a failure, so the live oracles (root, smem,
#: chromium, swap, PID reuse, a kernel thread, a denied process) cannot vanish from CI unnoticed.
REQUIRE_LIVE = os.environ.get("MEMSNAP_REQUIRE_LIVE") == "1"


def require_or_skip(reason: str) -> None:
    """Skip with ``reason``, or fail with it when MEMSNAP_REQUIRE_LIVE=1.  Every skip in the suite goes here."""
    if REQUIRE_LIVE:
        pytest.fail(f"MEMSNAP_REQUIRE_LIVE=1 and this test would skip: {reason}", pytrace=False)
    pytest.skip(reason)


#: a live test that needs root on Linux; skipped without it, a failure under MEMSNAP_REQUIRE_LIVE=1
needs_root = pytest.mark.needs_root
NEEDS_ROOT_REASON = "live test needs root on Linux (pagemap PFNs, kpagecount)"


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_root: " + NEEDS_ROOT_REASON)


def pytest_runtest_setup(item):
    if item.get_closest_marker("needs_root") and not (IS_ROOT and HAS_KPAGE):
        require_or_skip(NEEDS_ROOT_REASON)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under MEMSNAP_REQUIRE_LIVE=1 a skip raised anywhere (pytest.skip, importorskip, skipif marks in files
    that do not use require_or_skip) is reported as a failure, so CI shows 0 skipped or fails."""
    outcome = yield
    rep = outcome.get_result()
    if REQUIRE_LIVE and rep.skipped and not hasattr(rep, "wasxfail"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"MEMSNAP_REQUIRE_LIVE=1 and this test skipped: {reason}"


#: retries taken by live checks (tests/test_sizes_live.py `settled`): printed at the end of the run
LIVE_RETRIES: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if LIVE_RETRIES:
        terminalreporter.write_line(f"live retries: {len(LIVE_RETRIES)}")
        for r in LIVE_RETRIES:
            terminalreporter.write_line("  " + r)


class CLIFailure(Exception):
    """`memsnap ...` exited non-zero: never retried as a kernel race (not an AssertionError)."""


class Workload:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([sys.executable, str(WORKLOAD), *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("workload failed to start")
        self.info = json.loads(line)
        self.parent = self.info["parent"]
        self.workers = self.info["workers"]
        self.pids = [self.parent, *self.workers]

    def cow(self, worker: int, mib: int) -> None:
        self.proc.stdin.write(f"cow {worker} {mib}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "ok"

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
            self.proc.wait(timeout=30)


@pytest.fixture
def workload():
    started = []

    def start(*args):
        w = Workload(*args)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def memsnap(*args: str, check: bool = True, env=None, **kw) -> subprocess.CompletedProcess:
    """Run the CLI as a user would (a subprocess), capturing output."""
    cp = subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                        cwd=ROOT, env=env, **kw)
    if check and cp.returncode != 0:
        raise CLIFailure(f"memsnap {' '.join(args)} exited {cp.returncode}\nstdout:{cp.stdout}\nstderr:{cp.stderr}")
    return cp


def record_pids(store, pids, *extra) -> str:
    args = ["record", "--store", str(store), "--quiet", *extra]
    for p in pids:
        args += ["--pid", str(p)]
    return memsnap(*args).stdout.strip().splitlines()[-1]


def read_table(store, table: str):
    return pads.dataset(str(Path(store) / table), format="parquet", partitioning="hive").to_table()


# ------------------------------------------------------------------------------------------- a real S3 API
# moto's S3 server, started on 127.0.0.1 (tests/test_push.py, tests/test_spark_s3.py): nothing of boto or
# pyarrow is mocked, the code under test talks HTTP to it
KEYS = {"AWS_ACCESS_KEY_ID": "memsnap-test", "AWS_SECRET_ACCESS_KEY": "memsnap-test-secret",
        "AWS_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """moto's S3 server on 127.0.0.1, its endpoint URL."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        require_or_skip("moto[server] is not installed (make test installs it: pip install -e '.[analyze,test]')")
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "server.log", "w+")  # a pipe nobody reads would fill and stall it
    p = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                         stdout=log, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if p.poll() is not None or time.monotonic() > deadline:
                p.kill()
                log.seek(0)
                pytest.fail(f"moto server did not start: {log.read()[-2000:]}")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
    log.close()


def s3fs(endpoint: str, **kw):
    import pyarrow.fs as pfs

    return pfs.S3FileSystem(endpoint_override=endpoint.split("://")[1], scheme="http",
                            access_key=KEYS["AWS_ACCESS_KEY_ID"], secret_key=KEYS["AWS_SECRET_ACCESS_KEY"],
                            region=KEYS["AWS_REGION"], **kw)


_buckets = iter(range(10**6))


@pytest.fixture
def bucket(moto):
    """A new, empty bucket."""
    name = f"central-{os.getpid()}-{next(_buckets)}"
    s3fs(moto, allow_bucket_creation=True).create_dir(name)
    return name


def s3_env(endpoint: str) -> dict:
    return {**os.environ, **KEYS, "AWS_ENDPOINT_URL": endpoint}


def download(endpoint: str, root: str, local) -> str:
    """Everything under s3://<root> (committed or not), as a local directory a reader opens."""
    import pyarrow.fs as pfs

    fs = s3fs(endpoint)
    os.makedirs(local, exist_ok=True)
    if fs.get_file_info(pfs.FileSelector(root, recursive=True, allow_not_found=True)):
        pfs.copy_files(root, str(local), source_filesystem=fs, destination_filesystem=pfs.LocalFileSystem())
    return str(local)
