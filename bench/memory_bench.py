#!/usr/bin/env python3
"""Peak RSS of `memsnap record` (issue 18: at most 150 MiB whatever the machine's size), before and after.

    python bench/memory_bench.py [--small 300] [--procs 20 --mib 200] [--repeat 3] [--base DIR] [--out bench/out]

Starts ``--small`` sleeping ``python -S -c`` processes (as ``bench/live_bench.py``) and the ``bench/memhog.py``
workload (``--procs`` x ``--mib`` MiB), then runs ``memsnap record`` (CLI defaults, a fresh store each time) on

- the small processes (``--match``), the memhog processes (``--pid`` each), and the whole machine (no
  selection: both workloads and everything else running);
- in each of these trees: this one; this one with the old batch sizes (page batches and frames windows of
  1M rows, set in the child before the capture: what the small batches cost in time, alone); and, with
  ``--base DIR``, a checkout of an older commit (the "before": e.g. ``git worktree add /tmp/wt-base 182043e``).

Each run is a child (the CLI's ``main()``, cwd and PYTHONPATH the tree): wall and CPU (user + sys) from
``wait4``, peak RSS from the child's own VmHWM at exit (interpreter start and imports included; not
``ru_maxrss``, which a vfork-started child inherits from this script).  Variants interleaved,
``--repeat`` rounds, medians.  Results: ``<out>/memory.json`` and ``<out>/memory.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import live_bench as lb  # noqa: E402  (the small processes)
import record_bench as rb  # noqa: E402  (the memhog workload)
from benchutil import du, loadavg, log, med, run  # noqa: E402

#: the child: ``memsnap record`` that writes its own peak RSS (VmHWM) to argv[1] at exit.  Not ru_maxrss
#: from wait4: a child started with vfork (as subprocess does) keeps the parent's high-water mark at exec, and
#: this script's (pyarrow, numpy) is near the figures measured.  {sizes}: the "old sizes" variant's constants.
CHILD = ("import atexit, sys\n"
         "def hwm(path=sys.argv[1]):\n"
         "    with open('/proc/self/status') as f, open(path, 'w') as out:\n"
         "        out.write(next(ln.split()[1] for ln in f if ln.startswith('VmHWM:')))\n"
         "atexit.register(hwm)\n"
         "{sizes}"
         "from cli import main\n"
         "sys.argv = ['memsnap'] + sys.argv[2:]\n"
         "main()\n")
OLD_SIZES = "import recorder.capture as c\nc.FLUSH_PAGE_ROWS = c.FRAMES_WINDOW = 1 << 20\n"


def git_rev(tree: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def record(tree: Path, variant: str, store: str, args: list[str]) -> dict:
    env = dict(os.environ)
    env.pop("MEMSNAP_STORE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = str(tree)
    code = CHILD.format(sizes=OLD_SIZES if variant == "old sizes" else "")
    shutil.rmtree(store, ignore_errors=True)
    hwm = store + ".hwm"
    r = run([sys.executable, "-c", code, hwm, "record", "--store", store, "-q", *args], cwd=str(tree), env=env)
    snap = lb.snapshot_facts(store)
    with open(hwm) as f:
        peak_kb = int(f.read())
    return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "maxrss_kb": peak_kb, "ru_maxrss_kb": r["maxrss_kb"],
            "pages_rows": snap["pages_rows"], "frames_rows": snap["frames_rows"],
            "processes_seen": snap["processes_seen"], "pages_bytes": du(os.path.join(store, "pages")),
            "frames_bytes": du(os.path.join(store, "frames"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=300)
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--base", help="a checkout of the commit to compare with (the 'before')")
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = {"after": ROOT, "old sizes": ROOT}
    if a.base:
        variants = {"before": Path(a.base).resolve(), **variants}
    result = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
              "args": vars(a), "commits": {k: git_rev(v) for k, v in variants.items()}}
    t_all = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="memsnap-memory-bench-")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    small = wl = None
    try:
        log(f"== starting {a.small} small processes and memhog {a.procs} x {a.mib} MiB")
        small = lb.Small(a.small)
        wl = rb.Workload(a.procs, a.mib)
        captures = {"small": ["--match", lb.REGEX],
                    "memhog": [x for p in wl.pids for x in ("--pid", str(p))],
                    "machine": []}
        runs = {c: {v: [] for v in variants} for c in captures}
        for i in range(a.repeat):
            for c, args in captures.items():
                for v, tree in variants.items():
                    r = record(tree, v, os.path.join(tmp, "store"), args)
                    runs[c][v].append(r)
                    log(f"   round {i + 1} {c:8s} {v:10s}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s, peak RSS "
                        f"{r['maxrss_kb'] / 1024:.0f} MiB, {r['pages_rows']:,} pages rows, {r['frames_rows']:,} frames")
        result["runs"] = runs
        result["medians"] = {c: {v: {k: med([r[k] for r in rs]) for k in rs[0]} | {
            "maxrss_kb_max": max(r["maxrss_kb"] for r in rs)} for v, rs in by_v.items()} for c, by_v in runs.items()}
    finally:
        if small:
            small.stop()
        if wl:
            wl.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    (out / "memory.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "memory.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    a, m = r["args"], r["medians"]
    names = {"small": f"{a['small']} small processes (`--match`)",
             "memhog": f"memhog {a['procs']} × {a['mib']} MiB (`--pid` each)", "machine": "whole machine"}
    L = ["## Recorder peak memory (`bench/memory_bench.py`)", "",
         f"Command: `python bench/memory_bench.py --repeat {a['repeat']}"
         + (" --base DIR` (DIR: a worktree of the commit before)" if a.get("base") else "`")
         + f"; started {r['started']}. `memsnap record` with the CLI defaults (nice 10, ionice idle: wall times "
         "follow the machine's load; CPU is the steadier figure). Peak RSS is the recorder's own VmHWM "
         "(interpreter and imports included, about 72 MiB of it). Variants: *before* = the tree at the commit "
         "shown; *after* = this tree; *old sizes* = this tree with page batches and frames windows of 1M rows, "
         "as before (what the small batches cost, alone).", "",
         "| capture | variant | commit | pages rows | frames | peak RSS MiB (median) | max | wall s | CPU s | "
         "pages file B | frames file B |",
         "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c, by_v in m.items():
        for v, d in by_v.items():
            L.append(f"| {names[c]} | {v} | {r['commits'][v]} | {d['pages_rows']:,.0f} | {d['frames_rows']:,.0f} | "
                     f"**{d['maxrss_kb'] / 1024:.0f}** | {d['maxrss_kb_max'] / 1024:.0f} | {d['wall_s']:.2f} | "
                     f"{d['cpu_s']:.2f} | {d['pages_bytes']:,.0f} | {d['frames_bytes']:,.0f} |")
    L += ["", f"Medians of {a['repeat']} interleaved rounds; load average {r['loadavg_start']} at start, "
          f"{r['loadavg_end']} at the end; {r['total_s']:.0f} s in all."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
