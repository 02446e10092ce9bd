#!/usr/bin/env python3
"""Re-create sample_data/store: two real snapshots of sample_data/workload.py on this machine.

Run as root (for PFNs):  python sample_data/make_sample.py
Snapshot 1: the parent and 3 forked workers right after the fork.
Snapshot 2: after worker 0 wrote 4 MiB of the inherited anonymous memory (copy-on-write broken).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE = HERE / "store"


def main():
    if STORE.exists():
        shutil.rmtree(STORE)
    w = subprocess.Popen([sys.executable, str(HERE / "workload.py"), "--workers", "3", "--anon-mb", "8",
                          "--file-mb", "4", "--shared-mb", "4", "--memfd-mb", "2", "--thp-mb", "4"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(w.stdout.readline())
    pids = [info["parent"], *info["workers"]]
    cmd = [sys.executable, "-m", "analyzer.cli", "record", "--store", str(STORE), "--host", "sample"]
    for p in pids:
        cmd += ["--pid", str(p)]
    try:
        subprocess.run(cmd, check=True, cwd=HERE.parent)
        w.stdin.write("cow 0 4\n")
        w.stdin.flush()
        assert w.stdout.readline().strip() == "ok"
        subprocess.run(cmd, check=True, cwd=HERE.parent)
    finally:
        w.stdin.write("quit\n")
        w.stdin.flush()
        w.wait()
    shutil.rmtree(STORE / ".inprogress", ignore_errors=True)
    for d, _, files in os.walk(STORE):
        for f in files:
            os.chmod(os.path.join(d, f), 0o640)  # shipped in the repo: readable by the group


if __name__ == "__main__":
    main()
