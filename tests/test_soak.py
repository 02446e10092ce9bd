"""Steady state, CI-sized (issue 18, part 3; the full soak is bench/soak_bench.py): `memsnap record --interval`
for 300 captures against a churning set of processes (bench/churn.py: started and killed at random throughout),
with retention and in-loop compaction.  Between captures (the recorder asleep in its interval, told by its
system call in /proc/<pid>/syscall) its open fds and threads must be constant after a warm-up (RSS: see the end of the test).
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import ROOT, needs_root, require_or_skip

pytestmark = [pytest.mark.live, pytest.mark.slow, needs_root]

CAPTURES = 300
#: captures before fds and threads must be constant: past the first in-loop compaction (at 60 loose snapshots),
#: which starts Arrow's pool threads (one each, cli/record.py _one_arrow_thread)
WARMUP = 70
TAG = f"memsnap-soak-test-{os.getpid()}"  # this run's churn only, not another run's
#: time.sleep's system calls (clock_nanosleep, nanosleep) by machine
SLEEPS = {"x86_64": {230, 35}, "aarch64": {115, 101}}.get(os.uname().machine)


def _asleep(pid: int) -> bool:
    nr = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    return nr.isdigit() and int(nr) in SLEEPS


def _switches(status: str) -> str:
    return status.split("voluntary_ctxt_switches:")[1].split()[0]


def _idle_sample(pid: int, timeout: float = 60) -> dict | None:
    """fds, threads and RSS of the recorder, read while it sleeps between two captures (asleep before and after,
    and not woken in between); None once it has exited."""
    deadline = time.monotonic() + timeout
    try:
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
    except (OSError, IndexError):
        return None  # exited (a zombie has no fds or syscall)
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
        rec = subprocess.Popen([sys.executable, "-m", "cli", "record", str(tmp_path / "store"), "--interval", "0.2",
                                "--count", str(CAPTURES), "--keep", "80", "--match", TAG, "--format", "json",
                                "--nice", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True)  # a file: never blocks
        lines: queue.Queue = queue.Queue()

        def read() -> None:
            for x in rec.stdout:
                lines.put(x)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        samples: list[tuple[int, dict]] = []  # (capture, sample)
        n = 0
        while (line := lines.get(timeout=300)) is not None:
            json.loads(line)
            n += 1
            if n < CAPTURES and lines.empty():  # behind the recorder (a loaded machine): sample a later capture
                s = _idle_sample(rec.pid)
                if s is not None:
                    samples.append((n, s))
                    settled = [x for c, x in samples if c > WARMUP]
                    if settled:  # a leak shows at once: stop there rather than after every capture
                        assert s["threads"] <= samples[0][1]["threads"] + 2, (samples[0][1]["threads"], s["threads"])
                        assert (s["fds"], s["threads"]) == (settled[0]["fds"], settled[0]["threads"]), \
                            f"capture {n}: fds/threads {s['fds']}/{s['threads']}, after the warm-up " \
                            f"{settled[0]['fds']}/{settled[0]['threads']}"
        rec.wait(timeout=120)
        errors.seek(0)
        assert rec.returncode == 0 and n == CAPTURES, errors.read()[-3000:]
    finally:
        if rec is not None and rec.poll() is None:
            rec.kill()
            rec.wait()
        churn.communicate("quit\n", timeout=60)
        errors.close()
    first_threads = samples[0][1]["threads"]
    steady = [s for c, s in samples if c > WARMUP]
    assert len(steady) >= (CAPTURES - WARMUP) // 3, f"only {len(steady)} captures sampled after the warm-up"
    fds = [s["fds"] for s in steady]
    threads = [s["threads"] for s in steady]
    assert min(fds) == max(fds), f"open fds between captures changed: {sorted(set(fds))} ({fds})"
    assert min(threads) == max(threads), f"threads between captures changed: {sorted(set(threads))} ({threads})"
    # at most the two Arrow pools' one thread each more than before the first compaction
    assert max(threads) <= first_threads + 2, (first_threads, threads)
    # RSS is not asserted here: over 300 captures the allocator's retention steps up and down with the sizes the
    # churn asks for (+30 % between captures 81-100 and the last 20 in one run, no growth in another), which a
    # run this short cannot tell from a leak; bench/soak_bench.py measures it over thousands (BENCHMARKS.md, "Soak").
