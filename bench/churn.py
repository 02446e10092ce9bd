#!/usr/bin/env python3
"""Benchmark workload: a churning set of processes, started and ended at random throughout (seeded).

    python bench/churn.py [--seed 1] [--size 12] [--max-mib 64] [--tag memsnap-churn]

Keeps about ``--size`` processes alive; every 50-400 ms it starts one (while below the size, else at random)
or kills a random one, and processes also exit on their own after 0.3-6 s.  Kinds, at random:

* ``alloc``  python: a bytearray of 1..MAX_MIB MiB, every page written (private anonymous), then sleeps
* ``fork``   python: 1..MAX_MIB/2 MiB written, then forks a child (the pages are COW-shared), both sleep
* ``sleep``  ``sh -c 'sleep S; : TAG'`` (the shell waits on its sleep child: two small processes)

Every process has ``--tag`` on its command line (the sleep child of ``sleep`` excepted), so a recorder can
select them with ``--match TAG``.  Prints one line ``ready`` once the first processes are up, then runs until
stdin is closed (or says ``quit``), kills what is left and exits.  Children get PR_SET_PDEATHSIG (python
kinds) and their own process group, so nothing outlives it.  Used by bench/soak_bench.py and tests/test_soak.py.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import threading
import time

_PY = r"""
import ctypes, os, sys, time
ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: never outlive the churn
kind, mib, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
b = bytearray(mib << 20)
for i in range(0, len(b), 4096):
    b[i] = 1
if kind == "fork" and os.fork() == 0:
    ctypes.CDLL(None).prctl(1, 9)
time.sleep(secs)
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--size", type=int, default=12, help="processes kept alive (about)")
    ap.add_argument("--max-mib", type=int, default=64, help="largest allocation of one process")
    ap.add_argument("--tag", default="memsnap-churn")
    a = ap.parse_args(argv)
    rnd = random.Random(a.seed)
    procs: list[subprocess.Popen] = []
    started = 0

    def spawn() -> None:
        nonlocal started
        kind = rnd.choice(("alloc", "alloc", "fork", "sleep"))
        secs = rnd.uniform(0.3, 6.0)
        if kind == "sleep":
            argv = ["sh", "-c", f"sleep {secs:.2f}; : {a.tag}"]
        else:
            mib = rnd.randint(1, a.max_mib if kind == "alloc" else max(1, a.max_mib // 2))
            argv = [sys.executable, "-c", _PY, kind, str(mib), f"{secs:.2f}", a.tag]
        procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True))
        started += 1

    def kill(p: subprocess.Popen) -> None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()

    stop = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        for _ in range(a.size // 2):
            spawn()
        print("ready", flush=True)
        while not stop.wait(rnd.uniform(0.05, 0.4)):
            for p in [p for p in procs if p.poll() is not None]:
                procs.remove(p)  # exited on its own (reaped by poll)
            if len(procs) < a.size and (len(procs) < a.size // 2 or rnd.random() < 0.7):
                spawn()
            elif procs:
                p = procs.pop(rnd.randrange(len(procs)))
                kill(p)
    finally:
        for p in procs:
            kill(p)
    print(f"started {started}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
