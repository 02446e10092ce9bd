"""Shared fixtures: live workloads with known sharing, and recording them."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as pads
import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKLOAD = ROOT / "sample_data" / "workload.py"
SAMPLE_STORE = ROOT / "sample_data" / "store"

IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT or not os.path.exists("/proc/kpagecount"),
                                reason="live test needs root on Linux (pagemap PFNs, kpagecount)")


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
        raise AssertionError(f"memsnap {' '.join(args)} exited {cp.returncode}\nstdout:{cp.stdout}\nstderr:{cp.stderr}")
    return cp


def record_pids(store, pids, *extra) -> str:
    args = ["record", "--store", str(store), "--quiet", *extra]
    for p in pids:
        args += ["--pid", str(p)]
    return memsnap(*args).stdout.strip().splitlines()[-1]


def read_table(store, table: str):
    return pads.dataset(str(Path(store) / table), format="parquet", partitioning="hive").to_table()
