"""Steady state, CI-sized (issue 18, part 3; the full soak is bench/soak_bench.py): `memsnap record --interval`
for 300 captures against a churning set of processes (bench/churn.py: started and killed at random throughout),
with retention and in-loop compaction.  Between captures (the recorder asleep in its interval, told by its
system call in /proc/<pid>/syscall) its open fds and threads must be constant after a warm-up, and its RSS must
not grow.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, needs_root, require_or_skip

pytestmark = [pytest.mark.live, pytest.mark.slow, needs_root]

CAPTURES = 300
#: captures before fds and threads must be constant: past the first in-loop compaction (at 60 loose snapshots),
#: which starts Arrow's pool threads (one each, cli/record.py _one_arrow_thread)
WARMUP = 70
TAG = "memsnap-soak-test"
#: time.sleep's system calls (clock_nanosleep, nanosleep) by machine
SLEEPS = {"x86_64": {230, 35}, "aarch64": {115, 101}}.get(os.uname().machine)


def _asleep(pid: int) -> bool:
    nr = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    return nr.isdigit() and int(nr) in SLEEPS


def _switches(status: str) -> str:
    return status.split("voluntary_ctxt_switches:")[1].split()[0]


def _idle_sample(pid: int, timeout: float = 60) -> dict:
    """fds, threads and RSS of the recorder, read while it sleeps between two captures (asleep before and after,
    and not woken in between)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _asleep(pid):
            status = Path(f"/proc/{pid}/status").read_text()
            s = {"fds": len(os.listdir(f"/proc/{pid}/fd")),
                 "threads": int(status.split("Threads:")[1].split()[0]),
                 "rss_kb": int(status.split("VmRSS:")[1].split()[0])}
            # still asleep, and not woken in between (a wake-up adds a voluntary context switch)
            if _asleep(pid) and _switches(Path(f"/proc/{pid}/status").read_text()) == _switches(status):
                return s
        time.sleep(0.002)
    raise AssertionError(f"the recorder (pid {pid}) was not seen asleep between captures for {timeout} s")


def test_no_fd_thread_or_memory_growth_over_300_captures(tmp_path):
    if SLEEPS is None:
        require_or_skip(f"no table of sleep system calls for {os.uname().machine}")
    churn = subprocess.Popen([sys.executable, str(ROOT / "bench" / "churn.py"), "--seed", "7", "--size", "8",
                              "--max-mib", "8", "--tag", TAG], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    rec = None
    errors = open(tmp_path / "stderr", "w+")
    try:
        assert churn.stdout.readline().strip() == "ready"
        # --keep 80: retention deletes, and every 60 loose snapshots are compacted in the loop
        rec = subprocess.Popen([sys.executable, "-m", "cli", "record", str(tmp_path / "store"), "--interval", "0.05",
                                "--count", str(CAPTURES), "--keep", "80", "--match", TAG, "--format", "json",
                                "--nice", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)  # a file: never blocks
        samples = []
        for line in rec.stdout:
            json.loads(line)
            if len(samples) + 1 == CAPTURES:
                break  # no sleep after the last capture
            samples.append(_idle_sample(rec.pid))
        rec.stdout.read()
        rec.wait(timeout=120)
        errors.seek(0)
        assert rec.returncode == 0, errors.read()[-3000:]
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        churn.communicate("quit\n", timeout=60)
        errors.close()
    assert len(samples) == CAPTURES - 1
    steady = samples[WARMUP:]
    fds = [s["fds"] for s in steady]
    threads = [s["threads"] for s in steady]
    assert min(fds) == max(fds), f"open fds between captures changed: {sorted(set(fds))} ({fds})"
    assert min(threads) == max(threads), f"threads between captures changed: {sorted(set(threads))} ({threads})"
    # RSS: the median of captures 81-100 (after the first compaction) against the median of the last 20.  A
    # leak of 100 kB per capture grows it by 20 MiB over these 200 captures; the tolerance is 10 % of the early
    # RSS (about 12 MiB) plus the early window's own spread (max - min).
    early = [s["rss_kb"] for s in samples[80:100]]
    late = [s["rss_kb"] for s in samples[-20:]]
    allowed = statistics.median(early) * 0.10 + (max(early) - min(early))
    assert statistics.median(late) - statistics.median(early) <= allowed, (early, late)
