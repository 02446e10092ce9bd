"""Shared fixtures: live workloads with known sharing, and recording them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
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
