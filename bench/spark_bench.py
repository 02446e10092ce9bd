"""Spark (local[N]) against DuckDB on a synthetic store: sizes --source pages, diff --source pages, shared.

    python bench/spark_bench.py --store /tmp/synth5m [--master local[2]] [--ops sizes,diff,shared]

Each engine runs in its own child process (``python -m cli ... -f json``), timed from outside; its peak RSS is
the child's and its children's (the JVM) ``ru_maxrss`` (RUSAGE_CHILDREN of a fresh intermediate process).
The JSON answers of both engines are compared.  Build the store with bench/synth.py (two snapshots of one
host for diff: run it twice with --seed 1 and 2 into the same --out).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = {
    "sizes": ["sizes", "--source", "pages", "-f", "json"],
    "diff": ["diff", "--source", "pages", "-f", "json"],
    "shared": ["shared", "-f", "json"],
}


def run(engine_args: list[str], op: list[str], store: str) -> tuple[float, int, str]:
    """(seconds, peak RSS of the command and its children in MiB, stdout), measured in a fresh child."""
    code = ("import resource, subprocess, sys, time, json\n"
            "t = time.perf_counter()\n"
            "cp = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
            "dt = time.perf_counter() - t\n"
            "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
            "print(json.dumps({'s': dt, 'rss_kib': rss, 'rc': cp.returncode, 'out': cp.stdout, 'err': cp.stderr[-2000:]}))\n")
    cp = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "cli", *engine_args, *op, "-S", store],
                        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    r = json.loads(cp.stdout)
    if r["rc"]:
        raise SystemExit(f"{' '.join(engine_args + op)} failed: {r['err']}")
    return r["s"], r["rss_kib"] // 1024, r["out"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--ops", default="sizes,diff,shared")
    a = ap.parse_args()
    print(f"loadavg {open('/proc/loadavg').read().split()[:3]}", flush=True)
    print("| operation | DuckDB s | DuckDB peak MiB | Spark s | Spark peak MiB (JVM + Python) | same JSON |")
    print("|---|---|---|---|---|---|")
    for name in a.ops.split(","):
        ds, drss, dout = run([], OPS[name], a.store)
        ss, srss, sout = run(["--engine", "spark", "--spark-master", a.master], OPS[name], a.store)
        same = json.loads(dout) == json.loads(sout)
        print(f"| {name} | {ds:.1f} | {drss} | {ss:.1f} | {srss} | {'yes' if same else 'NO'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
