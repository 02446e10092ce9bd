"""A stand-in for a Python prefork server (gunicorn's shape): ``python -m prefork_stub --workers N``.

The master touches some private memory, forks N workers (each touching its own), prints
``{"master": pid, "workers": [pids]}`` on one line and waits for "quit" (or EOF) on stdin; the workers
wait for their parent to go.  Used by tests/test_commands.py: the group must be named by the module,
``prefork_stub``, in ``sizes --by command``, not ``python3``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--mib", type=int, default=2)
    args = ap.parse_args()
    keep = bytearray(os.urandom(args.mib << 20))  # private, dirty
    workers = []
    for _ in range(args.workers):
        pid = os.fork()
        if pid == 0:
            mine = bytearray(os.urandom(args.mib << 20))  # noqa: F841 (kept alive while waiting)
            parent = os.getppid()
            while os.getppid() == parent:
                time.sleep(0.2)
            os._exit(0)
        workers.append(pid)
    print(json.dumps({"master": os.getpid(), "workers": workers}), flush=True)
    sys.stdin.readline()
    for pid in workers:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    del keep


if __name__ == "__main__":
    main()
