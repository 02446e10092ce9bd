#!/usr/bin/env python3
"""Every `memsnap shared` view, `diff` and `report` on a synthetic 5M-page store: time and peak RSS.

    python bench/views_bench.py [--pages 5M] [--procs 1000] [--out bench/out]

Two snapshots of the same synthetic machine (bench/synth.py, same seed, the second one 2 % bigger).
Each command runs as the CLI in a fresh subprocess (wall time and the child's ru_maxrss); medians of
--repeat runs.  Writes <out>/views.json and <out>/views.md (a section of BENCHMARKS.md).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

COMMANDS = [
    ("shared --groups command", ["shared", "--groups", "command", "-f", "json"]),
    ("shared --groups user", ["shared", "--groups", "user", "-f", "json"]),
    ("shared --pairs", ["shared", "--pairs", "-f", "json", "--limit", "100"]),
    ("shared --by mapping", ["shared", "--by", "mapping", "-f", "json"]),
    ("shared --histogram", ["shared", "--histogram", "-f", "json"]),
    ("shared --flags", ["shared", "--flags", "-f", "json"]),
    ("shared --reconcile", ["shared", "--reconcile", "-f", "json"]),
    ("diff --source pages", ["diff", "--source", "pages", "-f", "json"]),
    ("diff --by command", ["diff", "--by", "command", "-f", "json"]),
    ("report", ["report", "-o", "{tmp}/r.html"]),
]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", default="5M")
    ap.add_argument("--procs", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--quick", action="store_true", help="1M pages, 200 processes (trying the suite)")
    a = ap.parse_args(argv)
    if a.quick:
        a.pages, a.procs = "1M", 200
    tmp = Path(tempfile.mkdtemp(prefix="memsnap-views-"))
    store = tmp / "store"
    try:
        for seed_pages in (a.pages, a.pages):
            subprocess.run([sys.executable, str(HERE / "synth.py"), "--procs", str(a.procs), "--pages", seed_pages,
                            "--seed", "7", "--out", str(store), "--quiet"], check=True, cwd=ROOT)
        rows = []
        for name, args in COMMANDS:
            walls, peaks = [], []
            for _ in range(a.repeat):
                # a fresh process each time; RUSAGE_CHILDREN keeps the max, so measure in a sub-python
                code = ("import resource,subprocess,sys,time,json;t=time.perf_counter();"
                        "cp=subprocess.run(sys.argv[1:],capture_output=True);"
                        "print(json.dumps([cp.returncode,time.perf_counter()-t,"
                        "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss/1024]))")
                full = [sys.executable, "-m", "cli", *[x.format(tmp=tmp) for x in args[:1]], str(store),
                        *[x.format(tmp=tmp) for x in args[1:]]]
                cp = subprocess.run([sys.executable, "-c", code, *full], cwd=ROOT, capture_output=True, text=True)
                rc, wall, peak = json.loads(cp.stdout)
                if rc:
                    raise SystemExit(f"{name} failed")
                walls.append(wall)
                peaks.append(peak)
            rows.append({"command": name, "wall_s": statistics.median(walls), "peak_rss_mib": max(peaks)})
            print(f"{name:28s} {rows[-1]['wall_s']:7.2f} s  {rows[-1]['peak_rss_mib']:7.0f} MiB", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "views.json").write_text(json.dumps({"pages": a.pages, "procs": a.procs, "rows": rows}, indent=1))
    md = [f"## Every view on a synthetic {a.pages}-page store (`bench/views_bench.py`)", "",
          f"{a.procs} processes, two snapshots (bench/synth.py, seed 7). The CLI in a fresh process each time "
          "(imports included), default DuckDB memory limit (1GB); load average at end "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}.", "",
          "| command | wall s | peak RSS MiB |", "|---|---:|---:|"]
    md += [f"| `memsnap {r['command']}` | {r['wall_s']:.2f} | {r['peak_rss_mib']:.0f} |" for r in rows]
    (out / "views.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
