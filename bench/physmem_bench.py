#!/usr/bin/env python3
"""Cost of the physmem source (issue 16): time, CPU and peak RSS of reading and classifying every frame.

    python bench/physmem_bench.py [--repeat 3] [--fake-tib 1] [--out bench/out]

Each run is a child process (cwd and PYTHONPATH this tree), timed with ``wait4`` (wall, user + sys CPU) and
measured by its own VmHWM at exit:

- ``physmem``: :class:`recorder.physmem.PhysmemReader` alone over this machine's /proc/kpageflags, kpagecount
  and kpagecgroup (every PFN), with the time spent in the reads (kernel) apart;
- ``baseline``: the same child importing the same modules and reading nothing (the interpreter and pyarrow);
- ``record`` / ``record+physmem``: ``memsnap record`` of the whole machine, default sources, and with
  ``--sources +physmem`` (the source's cost inside a capture, and the capture's peak);
- ``fake-1TiB``: the reader over a fake procfs whose kpage* files are sparse files of ``--fake-tib`` TiB of
  frames (268M frames per TiB; read as zeros, so one class: the classification does the same work per chunk,
  the grouping less): its peak shows what memory does not grow with the machine.

Variants interleaved, ``--repeat`` rounds, medians; the load average is printed with each run.  Results:
``<out>/physmem.json`` and ``<out>/physmem.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import ROOT, child_env, loadavg, log, med  # noqa: E402

_READER = r"""
import json, os, sys, time
from recorder.physmem import PhysmemReader
root = sys.argv[1]
if root != "-":
    r = PhysmemReader(root, 4096)
    w = []
    cols = r.run(w)
    out = {"frames": r.frames, "read_s": r.read_seconds, "groups": len(cols["class"]), "max_chunk": r.max_chunk}
else:
    out = {}
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
out["hwm_kib"] = hwm
print(json.dumps(out))
"""


def _child(argv: list[str]) -> dict:
    t = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, env=dict(child_env(), PYTHONPATH=str(ROOT)), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    out, err = p.stdout.read(), p.stderr.read()
    if status != 0:
        raise RuntimeError(f"{argv}: exit {status}\n{err[-2000:]}")
    res = {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "load": loadavg()}
    try:
        res.update(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        pass
    return res


def reader(root: str) -> dict:
    return _child([sys.executable, "-c", _READER, root])


def record(store: str, extra: list[str]) -> dict:
    code = ("import sys; from cli import main; sys.argv = ['memsnap', 'record', sys.argv[1], '--format', 'json', "
            "*sys.argv[2:]]\ntry:\n    main()\nfinally:\n    import json\n    print(json.dumps({'hwm_kib': next("
            "int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM:'))}))")
    shutil.rmtree(store, ignore_errors=True)
    return _child([sys.executable, "-c", code, store, *extra])


def fake_tree(d: Path, tib: float) -> str:
    frames = int(tib * (1 << 40) // 4096)
    root = d / "proc"
    root.mkdir(parents=True, exist_ok=True)
    for name in ("kpageflags", "kpagecount", "kpagecgroup"):
        with open(root / name, "wb") as f:
            f.truncate(frames * 8)  # sparse: reads as zeros, takes no disk
    return str(root)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fake-tib", type=float, default=1.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="physmem-bench-", dir="/var/tmp"))
    runs: dict[str, list[dict]] = {}
    try:
        fake = fake_tree(tmp, args.fake_tib)
        variants = {
            "baseline": lambda: reader("-"),
            "physmem": lambda: reader("/proc"),
            "record": lambda: record(str(tmp / "s1"), []),
            "record+physmem": lambda: record(str(tmp / "s2"), ["--sources", "+physmem"]),
            f"fake-{args.fake_tib:g}TiB": lambda: reader(fake),
        }
        for i in range(args.repeat):
            for name, fn in variants.items():
                r = fn()
                runs.setdefault(name, []).append(r)
                log(f"round {i + 1} {name}: {json.dumps(r)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "physmem.json"), "w") as f:
        json.dump(runs, f, indent=1)
    lines = ["| run | wall s | CPU s | of which kpage reads s | peak RSS MiB | frames | load (1/5/15) |",
             "|---|---|---|---|---|---|---|"]
    for name, rs in runs.items():
        def m(k, scale=1.0):
            v = med([r[k] for r in rs if r.get(k) is not None])
            return "-" if v is None else f"{v * scale:.2f}"
        loads = "; ".join(r["load"] for r in rs)
        frames = rs[0].get("frames", "-")
        lines.append(f"| {name} | {m('wall_s')} | {m('cpu_s')} | {m('read_s')} | {m('hwm_kib', 1 / 1024)} | "
                     f"{frames} | {loads} |")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "physmem.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
