#!/usr/bin/env python3
"""Diagnostic (not run by bench/run.py): where one recorder capture spends its wall time, without cProfile.

    python bench/record_phases.py [--procs 20 --mib 200 --repeat 3 --sources default]

Starts the ``bench/memhog.py`` workload, then runs captures in fresh subprocesses whose
recorder functions are wrapped with perf_counter timers (best effort: a function the
recorder no longer has is skipped).  Timers nest (e.g. ``read_pagemap`` includes its
preads), so the rows do not add up; ``capture`` is the total.  Prints medians, in ms.
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))


def child(store: str, sources: str, pids: list[int]) -> None:
    import numpy as np

    from recorder import capture, procfs, store as st

    acc: dict[str, float] = {}

    def wrap(owner, name, label=None):
        f = getattr(owner, name, None)
        if f is None:
            return
        label = label or name

        def w(*a, **k):
            t0 = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + (time.perf_counter() - t0) * 1000
        try:
            setattr(owner, name, w)
        except TypeError:
            pass  # immutable (extension) type

    wrap(np, "unique", "np.unique")
    wrap(os, "pread", "os.pread")
    wrap(os, "preadv", "os.preadv (pagemap and kpage*)")
    wrap(os, "fsync", "os.fsync")
    for name in ("parse_smaps_columns", "filter_pagemap", "parse_smaps_rollup", "parse_maps", "parse_stat", "parse_status",
                 "storage_order", "sorted_unique", "system_info", "recover", "select_pids"):
        wrap(capture, name)
    wrap(procfs.ProcFS, "read", "ProcFS.read (text files)")
    wrap(procfs.ProcFS, "readlink", "ProcFS.readlink")
    wrap(capture._ProcessCapture, "read_pagemap", "_ProcessCapture.read_pagemap")
    wrap(capture._ProcessCapture, "identity", "_ProcessCapture.identity")
    wrap(capture._KpageRuns, "read", "_KpageRuns.read (kpage* values)")
    wrap(st.TableWriter, "write", "TableWriter.write (parquet encode)")
    wrap(st.TableWriter, "close", "TableWriter.close (finish + fsync + rename)")
    wrap(st.SnapshotWriter, "commit", "SnapshotWriter.commit")

    kw = {"store": store, "pids": tuple(pids)}
    if sources != "default":
        kw["sources"] = tuple(sources.split(","))
    rec = capture.Recorder(capture.Options(**kw))
    t0 = time.perf_counter()
    res = rec.capture()
    acc["capture"] = (time.perf_counter() - t0) * 1000
    acc["pages"] = res.pages
    print(json.dumps(acc))


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        child(sys.argv[2], sys.argv[3], [int(p) for p in sys.argv[4].split(",")])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sources", default="default")
    args = ap.parse_args()
    from record_bench import Workload
    wl = Workload(args.procs, args.mib)
    tmp = tempfile.mkdtemp(prefix="memsnap-phases-")
    runs = []
    try:
        for i in range(args.repeat):
            store = os.path.join(tmp, str(i))
            cp = subprocess.run([sys.executable, __file__, "_child", store, args.sources,
                                 ",".join(map(str, wl.pids))], capture_output=True, text=True)
            if cp.returncode:
                raise SystemExit(f"capture failed:\n{cp.stderr}")
            runs.append(json.loads(cp.stdout.strip().splitlines()[-1]))
            shutil.rmtree(store, ignore_errors=True)
    finally:
        wl.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    keys = sorted({k for r in runs for k in r}, key=lambda k: -statistics.median(r.get(k, 0) for r in runs))
    print(f"sources={args.sources}, {runs[0]['pages']:,} pages, median of {len(runs)} runs (ms):")
    for k in keys:
        if k != "pages":
            print(f"  {statistics.median(r.get(k, 0) for r in runs):8.1f}  {k}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
