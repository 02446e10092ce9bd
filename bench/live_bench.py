#!/usr/bin/env python3
"""The recorder on live workloads: many small processes against the kernel floor and against smem, the store
against smemcap, and the recorder's own footprint.

    python bench/live_bench.py [--small 300] [--procs 20 --mib 200] [--repeat 5] [--quick] [--out bench/out]

What it does, in one run:

1. **Small processes.**  Starts ``--small`` sleeping ``python -S -c`` processes (a marker argument in the
   command line, about 8 MiB RSS each, mostly shared interpreter pages).
   a. Recorder against the kernel floor, as ``bench/record_bench.py`` does it (same floor code: plain reads
      of the same /proc files, no parsing, no writing; the recorder in a fresh subprocess timed around
      ``capture()``), for the default capture and ``--sources smaps``; ``--repeat`` interleaved rounds.
   b. Against smem, live, CLI wall times: ``smem -P REGEX`` (default columns) against
      ``memsnap record --match REGEX --sources smaps`` and against that record followed by
      ``memsnap sizes`` (the same table as smem's).  The regex matches the marker but not itself
      (``msbench[s]mall``), so neither tool counts its own process.  The recorder runs with
      ``--nice 0 --ionice none`` here (smem has no such throttling; the CLI default is nice 10).
      Interleaved, ``--repeat`` rounds after one warm-up, medians.
2. **Store size against smemcap.**  For the small processes and for the ``bench/memhog.py`` workload
   (``--procs`` x ``--mib`` MiB): bytes of one default memsnap snapshot (every table) against an
   smemcap-format tar.gz of the same processes (``recorder.smemcap.write_smemcap``: smaps, cmdline and
   stat per process, plus meminfo and version) -- per snapshot and per resident page (RSS pages summed over
   the processes, from smaps_rollup as recorded).
3. **Recorder footprint.**  ``memsnap record`` (CLI defaults: every source, nice 10, ionice idle) of the
   memhog workload (``--pid`` for each) and of the whole machine: wall time, CPU time (user + sys of the
   child, from ``wait4``), peak RSS (``ru_maxrss``); ``--repeat`` runs (3 at most), medians.

``--quick`` (used by nothing else): 60 small processes, 5 x 100 MiB, 2 rounds.
``--floor-only``: part 1a only (the recorder against the kernel floor on the small processes), printed and
written to ``<out>/live_floor.json`` (live.json and live.md are left as they are).
``--base DIR`` (with ``--floor-only``): also the recorder of DIR, a checkout of another commit (the "before":
e.g. ``git archive main | tar -x -C DIR``), in the same rounds: after each floor, this tree's recorder and
DIR's (order alternating), so the two are compared against the same floors (keys ``"<sources> (base)"``).
Results: ``<out>/live.json`` and ``<out>/live.md``.
"""
from __future__ import annotations

import argparse
import ctypes
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

import record_bench as rb  # noqa: E402  (the floor and the recorder child, shared with record_bench.py)
from benchutil import du, loadavg, log, med, memsnap_cmd, run as _run  # noqa: E402  (bench/benchutil.py)


def run(argv: list[str], check: bool = True) -> dict:
    return _run(argv, cwd=tempfile.gettempdir(), check=check)


MARKER = "msbenchsmall"
REGEX = "msbench[s]mall"


def by_table(store: str) -> dict[str, int]:
    out = {}
    for t in sorted(os.listdir(store)):
        if os.path.isdir(os.path.join(store, t)) and not t.startswith("."):
            out[t] = du(os.path.join(store, t))
    return {k: v for k, v in out.items() if v}


def snapshot_facts(store: str) -> dict:
    """pages rows, processes and the summed RSS of one snapshot (the only one in the store)."""
    import pyarrow.parquet as pq

    snap = pq.read_table([str(p) for p in Path(store, "snapshots").rglob("*.parquet")][0]).to_pylist()[0]
    procs = pq.read_table([str(p) for p in Path(store, "processes").rglob("*.parquet")][0],
                          columns=["rollup_rss_kb", "vm_rss_kb", "status"]).to_pylist()
    rss_kb = sum((r["rollup_rss_kb"] if r["rollup_rss_kb"] is not None else r["vm_rss_kb"] or 0) for r in procs)
    return {"pages_rows": snap["pages_rows"], "frames_rows": snap["frames_rows"],
            "processes_seen": snap["processes_seen"], "processes_recorded": snap["processes_recorded"],
            "resident_kb": rss_kb, "resident_pages": rss_kb // 4}


# ---------------------------------------------------------------------------------------------- workloads

def _pdeathsig():
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: never outlive the benchmark
    except OSError:
        pass


class Small:
    def __init__(self, n: int):
        code = "import time; time.sleep(10**6)"
        self.procs = [subprocess.Popen([sys.executable, "-S", "-c", code, MARKER], stdin=subprocess.DEVNULL,
                                       preexec_fn=_pdeathsig) for _ in range(n)]
        self.pids = [p.pid for p in self.procs]
        deadline = time.monotonic() + 120
        for pid in self.pids:  # every process asleep in time.sleep (after its imports)
            while time.monotonic() < deadline:
                with open(f"/proc/{pid}/wchan") as f:
                    w = f.read()
                with open(f"/proc/{pid}/stat") as f:
                    st = f.read().rsplit(")", 1)[1].split()[0]
                if st == "S" and w and w != "0":
                    break
                time.sleep(0.02)
        time.sleep(0.5)

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()


# ---------------------------------------------------------------------------------------------- parts

def run_base_recorder(base: Path, pids: list[int], sources: str, store: str) -> dict:
    """rb.run_recorder, with the recorder (and record_bench.py) of the checkout ``base``."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    cmd = [sys.executable, str(base / "bench" / "record_bench.py"), "_child", store, sources, ",".join(map(str, pids))]
    t0 = time.perf_counter()
    cp = subprocess.run(cmd, capture_output=True, text=True, cwd=base, env=env)
    wall = (time.perf_counter() - t0) * 1000
    if cp.returncode != 0:
        raise RuntimeError(f"base recorder child failed ({cp.returncode}):\n{cp.stderr}")
    return dict(json.loads(cp.stdout.strip().splitlines()[-1]), process_wall_ms=wall)


def floor_vs_recorder(pids: list[int], repeat: int, tmp: str, base: Path | None = None) -> dict:
    prep = rb.prepare_floor(pids)
    rb.floor_once(pids, prep, rb.DEFAULT_SOURCES)  # warm-up
    recorders = {"": lambda p, s, st: rb.run_recorder(p, s, st)}
    if base is not None:
        recorders[" (base)"] = lambda p, s, st: run_base_recorder(base, p, s, st)
    for fn in recorders.values():
        fn(pids, "default", os.path.join(tmp, "warm"))
        shutil.rmtree(os.path.join(tmp, "warm"), ignore_errors=True)
    res = {}
    sets = ("default", "smaps")
    samples = {s + k: {"floor_ms": [], "recorder_ms": [], "process_wall_ms": [], "peak_rss_kb": [], "counts": []}
               for s in sets for k in recorders}
    for r in range(repeat):
        for s in sets:
            fl = rb.floor_once(pids, prep, rb.SOURCE_SETS[s] or rb.DEFAULT_SOURCES)
            order = list(recorders) if r % 2 == 0 else list(recorders)[::-1]
            for k in order:
                st = os.path.join(tmp, f"fr-{s}")
                rec = recorders[k](pids, s, st)
                shutil.rmtree(st, ignore_errors=True)
                d = samples[s + k]
                d["floor_ms"].append(fl)
                d["recorder_ms"].append(rec["capture_ms"])
                d["process_wall_ms"].append(rec["process_wall_ms"])
                d["peak_rss_kb"].append(rec["ru_maxrss_kb"])
                d["counts"].append(rec["counts"])
                log(f"   round {r + 1} {s + k:15s}: floor {fl:7.1f} ms, recorder {rec['capture_ms']:7.1f} ms "
                    f"({rec['capture_ms'] / fl:.2f}x)")
    for s, d in samples.items():
        fm, rm = med(d["floor_ms"]), med(d["recorder_ms"])
        res[s] = dict(d, floor_ms_median=fm, recorder_ms_median=rm, ratio=rm / fm,
                      ratio_per_round_median=med([a / b for a, b in zip(d["recorder_ms"], d["floor_ms"])]),
                      process_wall_ms_median=med(d["process_wall_ms"]), peak_rss_kb_median=med(d["peak_rss_kb"]))
    res["distinct_pfns"] = prep["distinct_pfns"]
    return res


def vs_smem(n: int, repeat: int, tmp: str) -> dict:
    smem = shutil.which("smem") or ("/usr/bin/smem" if os.path.exists("/usr/bin/smem") else None)
    if not smem:
        return {"note": "smem not found (apt-get install smem)"}
    ms = memsnap_cmd()
    store = os.path.join(tmp, "vs-smem")
    rec_cmd = ms + ["record", "--store", store, "--match", REGEX, "--sources", "smaps", "--nice", "0",
                    "--ionice", "none", "-q"]
    sizes_cmd = ms + ["sizes", store, "--format", "json"]
    smem_cmd = [smem, "-P", REGEX]
    t = {"smem": [], "record": [], "sizes": [], "record_sizes": []}
    rows = {}
    for i in range(repeat + 1):  # the first round is a warm-up
        r1 = run(smem_cmd)
        shutil.rmtree(store, ignore_errors=True)
        r2 = run(rec_cmd)
        r3 = run(sizes_cmd)
        if i == 0:
            continue
        t["smem"].append(r1["wall_s"])
        t["record"].append(r2["wall_s"])
        t["sizes"].append(r3["wall_s"])
        t["record_sizes"].append(r2["wall_s"] + r3["wall_s"])
        rows = {"smem": sum(1 for ln in r1["stdout"].splitlines()[1:] if ln.strip()),
                "memsnap": len(json.loads(r3["stdout"]))}
        log(f"   round {i}: smem {r1['wall_s']:.2f} s, record --sources smaps {r2['wall_s']:.2f} s, "
            f"+ sizes {r3['wall_s']:.2f} s")
    shutil.rmtree(store, ignore_errors=True)
    m = {k: med(v) for k, v in t.items()}
    return {"times_s": t, "median_s": m, "rows": rows, "processes": n,
            "ratio_smem_over_record": m["smem"] / m["record"],
            "ratio_smem_over_record_sizes": m["smem"] / m["record_sizes"],
            "commands": {"smem": " ".join(["smem", "-P", f"'{REGEX}'"]),
                         "record": "memsnap record --match '%s' --sources smaps --nice 0 --ionice none" % REGEX,
                         "sizes": "memsnap sizes STORE --format json"}}


def store_vs_smemcap(pids: list[int], tmp: str, name: str) -> dict:
    from recorder.smemcap import write_smemcap

    store = os.path.join(tmp, f"size-{name}")
    shutil.rmtree(store, ignore_errors=True)
    rec = rb.run_recorder(pids, "default", store)
    facts = snapshot_facts(store)
    tables = by_table(store)
    tar = os.path.join(tmp, f"{name}.smemcap.tar.gz")
    t0 = time.perf_counter()
    n = write_smemcap(tar, pids)
    smemcap_s = time.perf_counter() - t0
    tar_bytes = os.path.getsize(tar)
    total = sum(tables.values())
    smaps_level = sum(b for t, b in tables.items() if t not in ("pages", "frames"))
    shutil.rmtree(store, ignore_errors=True)
    os.unlink(tar)
    res = {"processes": len(pids), "smemcap_processes": n, "snapshot_bytes": total, "by_table": tables,
           "smemcap_tar_gz_bytes": tar_bytes, "smemcap_write_s": smemcap_s, "recorder_capture_ms": rec["capture_ms"],
           **facts, "memsnap_b_per_resident_page": total / max(1, facts["resident_pages"]),
           "smemcap_b_per_resident_page": tar_bytes / max(1, facts["resident_pages"]),
           "pages_b_per_page": tables.get("pages", 0) / max(1, facts["pages_rows"]),
           "ratio_memsnap_over_smemcap": total / tar_bytes, "smaps_level_bytes": smaps_level,
           "ratio_smaps_level_over_smemcap": smaps_level / tar_bytes}
    log(f"   {name}: memsnap snapshot {total:,} B ({res['memsnap_b_per_resident_page']:.3f} B/resident page), "
        f"smemcap tar.gz {tar_bytes:,} B ({res['smemcap_b_per_resident_page']:.3f} B/page)")
    return res


def footprint(argv_extra: list[str], repeat: int, tmp: str, name: str) -> dict:
    ms = memsnap_cmd()
    store = os.path.join(tmp, f"fp-{name}")
    runs = []
    for i in range(repeat):
        shutil.rmtree(store, ignore_errors=True)
        r = run(ms + ["record", "--store", store, "-q"] + argv_extra)
        f = snapshot_facts(store)
        runs.append({"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "user_s": r["user_s"], "sys_s": r["sys_s"],
                     "maxrss_kb": r["maxrss_kb"], **f})
        log(f"   {name} run {i + 1}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s (user {r['user_s']:.2f}, sys "
            f"{r['sys_s']:.2f}), peak RSS {r['maxrss_kb'] / 1024:.0f} MiB, {f['processes_seen']} processes, "
            f"{f['pages_rows']:,} pages")
    shutil.rmtree(store, ignore_errors=True)
    keys = ("wall_s", "cpu_s", "user_s", "sys_s", "maxrss_kb", "pages_rows", "frames_rows", "processes_seen",
            "resident_pages")
    return {"runs": runs, **{k + "_median": med([x[k] for x in runs]) for k in keys},
            "maxrss_kb_max": max(x["maxrss_kb"] for x in runs)}


# ---------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=300, help="small processes (default 300)")
    ap.add_argument("--procs", type=int, default=20, help="memhog processes (default 20)")
    ap.add_argument("--mib", type=int, default=200, help="MiB per memhog process (default 200)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="60 small processes, 5 x 100 MiB, 2 rounds")
    ap.add_argument("--floor-only", action="store_true",
                    help="only the small processes' recorder against the kernel floor (part 1a)")
    ap.add_argument("--base", type=Path, help="with --floor-only: also the recorder of this checkout, same rounds")
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args(argv)
    if a.base is not None and not a.floor_only:
        ap.error("--base goes with --floor-only")
    if a.quick:
        a.small, a.procs, a.mib, a.repeat = 60, 5, 100, 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    tmp = tempfile.mkdtemp(prefix="memsnap-live-bench-")
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "args": vars(a)}
    small = wl = None
    try:
        log(f"== starting {a.small} small processes")
        small = Small(a.small)
        rss = 0
        for pid in small.pids:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                rss += next(int(ln.split()[1]) for ln in f if ln.startswith("Rss:"))
        result["small_workload"] = {"processes": a.small, "rss_total_kb": rss,
                                    "command": f"{Path(sys.executable).name} -S -c 'import time; time.sleep(10**6)' "
                                               f"{MARKER}"}
        log(f"== small processes: recorder vs floor ({rss / 1024:.0f} MiB RSS in total)")
        result["small_floor"] = floor_vs_recorder(small.pids, a.repeat, tmp, a.base and a.base.resolve())
        if a.floor_only:
            for s in [k for k in result["small_floor"] if k != "distinct_pfns"]:
                d = result["small_floor"][s]
                log(f"   {s:15s}: floor {d['floor_ms_median']:.1f} ms, recorder {d['recorder_ms_median']:.1f} ms, "
                    f"ratio {d['ratio']:.2f}x (median of per-round ratios {d['ratio_per_round_median']:.2f}x)")
            result["loadavg_end"] = loadavg()
            (out / "live_floor.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
            return 0
        log("== small processes: smem -P vs memsnap record (+ sizes)")
        result["small_vs_smem"] = vs_smem(a.small, a.repeat, tmp)
        log("== store size vs smemcap")
        result["store_size"] = {"small": store_vs_smemcap(small.pids, tmp, "small")}
        small.stop()
        small = None
        log(f"== starting memhog {a.procs} x {a.mib} MiB")
        wl = rb.Workload(a.procs, a.mib)
        result["store_size"]["memhog"] = store_vs_smemcap(wl.pids, tmp, "memhog")
        log("== recorder footprint (CLI defaults)")
        rep = min(3, a.repeat)
        pid_args = [x for p in wl.pids for x in ("--pid", str(p))]
        result["footprint"] = {"memhog": footprint(pid_args, rep, tmp, "memhog"),
                               "machine": footprint([], rep, tmp, "machine")}
    finally:
        if small:
            small.stop()
        if wl:
            wl.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    (out / "live.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "live.md").write_text(markdown(result))
    log(f"wrote {out / 'live.json'}, {out / 'live.md'} in {result['total_s']:.0f} s")
    return 0


def markdown(r: dict) -> str:
    a = r["args"]
    sw = r["small_workload"]
    L = ["## The recorder on live workloads (`bench/live_bench.py`)", ""]
    L.append(f"Small processes: {sw['processes']} × `{sw['command']}` ({sw['rss_total_kb'] / 1024:,.0f} MiB RSS in "
             f"total, mostly shared interpreter pages). Memhog: {a['procs']} × {a['mib']} MiB (`bench/memhog.py`, "
             f"as in the recorder section). Load average {r['loadavg_start']} at start, {r['loadavg_end']} at the end.")
    f = r["small_floor"]
    L += ["", f"### {sw['processes']} small processes: recorder against the kernel floor (target ≤ 1.5×)", "",
          "Same method as `bench/record_bench.py` (floor: plain reads of the same /proc files; recorder: "
          f"`capture()` in a fresh subprocess); medians of {a['repeat']} interleaved rounds.", "",
          "| sources | floor ms | recorder ms | ratio | median of per-round ratios | recorder process wall ms | "
          "peak RSS MiB |", "|---|---:|---:|---:|---:|---:|---:|"]
    for s in ("default", "smaps"):
        d = f[s]
        L.append(f"| {s} | {d['floor_ms_median']:.1f} | {d['recorder_ms_median']:.1f} | **{d['ratio']:.2f}×**"
                 f"{' ✓' if d['ratio'] <= 1.5 else ' ✗'} | {d['ratio_per_round_median']:.2f}× | "
                 f"{d['process_wall_ms_median']:.0f} | {d['peak_rss_kb_median'] / 1024:.0f} |")
    v = r["small_vs_smem"]
    if "median_s" in v:
        m = v["median_s"]
        L += ["", f"### {sw['processes']} small processes: memsnap against smem, live (CLI wall time)", "",
              "| command | median s | smem / this |", "|---|---:|---:|",
              f"| `{v['commands']['smem']}` | {m['smem']:.2f} | 1.00× |",
              f"| `{v['commands']['record']}` | {m['record']:.2f} | **{v['ratio_smem_over_record']:.2f}×** |",
              f"| record, then `{v['commands']['sizes']}` | {m['record_sizes']:.2f} | "
              f"**{v['ratio_smem_over_record_sizes']:.2f}×** |", "",
              f"Medians of {a['repeat']} interleaved rounds after a warm-up; every command in a fresh process "
              f"(interpreter start and imports included: `sizes` alone took {m['sizes']:.2f} s). Rows: smem "
              f"{v['rows'].get('smem')}, memsnap sizes {v['rows'].get('memsnap')}. A ratio above 1 means memsnap "
              "is faster."]
    else:
        L += ["", f"memsnap against smem: {v.get('note')}"]
    L += ["", "### Store size: a default memsnap snapshot against an smemcap tar.gz of the same processes", "",
          "| workload | processes | resident pages | pages rows | memsnap snapshot B | B / resident page | "
          "`pages` file B / pages row | smemcap tar.gz B | B / resident page | memsnap / smemcap | "
          "like for like: memsnap without pages and frames / smemcap |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, d in r["store_size"].items():
        L.append(f"| {name} | {d['processes']} | {d['resident_pages']:,} | {d['pages_rows']:,} | {d['snapshot_bytes']:,} | "
                 f"**{d['memsnap_b_per_resident_page']:.3f}** | {d['pages_b_per_page']:.3f} | "
                 f"{d['smemcap_tar_gz_bytes']:,} | {d['smemcap_b_per_resident_page']:.3f} | "
                 f"**{d['ratio_memsnap_over_smemcap']:.2f}×**{' ✓' if d['ratio_memsnap_over_smemcap'] < 1 else ' ✗'} | "
                 f"{d['smaps_level_bytes']:,} B = {d['ratio_smaps_level_over_smemcap']:.2f}× |")
    L += ["", "memsnap holds smaps, smaps_rollup, pagemap entries and kpagecount/kpageflags/kpagecgroup of every frame "
          "seen; smemcap holds smaps, cmdline and stat only. Per table (memsnap): "
          + "; ".join(f"{n}: " + ", ".join(f"{t} {b:,}" for t, b in d["by_table"].items())
                      for n, d in r["store_size"].items()) + "."]
    fp = r["footprint"]
    L += ["", "### Recorder footprint (`memsnap record`, CLI defaults)", "",
          "| capture | processes | pages rows | frames | wall s | CPU s (user + sys) | user s | sys s | peak RSS MiB |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, label in (("memhog", f"memhog {a['procs']} × {a['mib']} MiB (`--pid` each)"),
                        ("machine", "whole machine (memhog running)")):
        d = fp[name]
        L.append(f"| {label} | {d['processes_seen_median']:,.0f} | {d['pages_rows_median']:,.0f} | "
                 f"{d['frames_rows_median']:,.0f} | {d['wall_s_median']:.2f} | **{d['cpu_s_median']:.2f}** | "
                 f"{d['user_s_median']:.2f} | {d['sys_s_median']:.2f} | **{d['maxrss_kb_median'] / 1024:.0f}** |")
    L += ["", f"Medians of {len(fp['memhog']['runs'])} runs; CPU time and peak RSS are the child's (`wait4` "
          "rusage), interpreter start and imports included."]
    L.append(f"\nTotal benchmark time {r['total_s']:.0f} s.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
