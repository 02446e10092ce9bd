#!/usr/bin/env python3
"""Impact on the recorded process: latency of its mmap/munmap calls while the recorder captures it.

    python bench/impact_bench.py [--gib 2] [--seconds 8] [--quick] [--out bench/out]

A target process maps ``--gib`` GiB of private anonymous memory with 4 KiB pages (MADV_NOHUGEPAGE), touches
90 % of it (so its page table has ~470k PTEs), then runs a tight loop of ``mmap(64 KiB)`` + ``munmap``
(Python's ``mmap.mmap(-1, 65536)`` + ``close()``: two syscalls that take the mmap lock for writing),
timing each pair with ``time.perf_counter_ns``, for ``--seconds`` seconds per phase (recorder phases last until ``--min-captures`` captures are
done).  Phases (in this
order, the target stays the same process):

* ``baseline``: nothing else running;
* ``cpu control``: a busy-looping process (no /proc reads): what CPU contention alone does on 2 cores;
* one phase per recorder configuration: a child process runs ``Recorder(Options(pids=(target,), ...))
  .capture()`` back to back against the target for the whole phase, at nice 10 like ``memsnap record``'s
  default (imports done before the phase starts).  Configurations: the default capture; ``smaps_rollup``
  only; ``pagemap,kpage`` only; the impact options ``--smaps-max-rss-mb`` below the target's RSS;
  the same plus ``--budget-ms``.

Per phase: calls, p50, p99, p99.9 and max latency, calls slower than 1 ms and 10 ms, and captures done
(with their median duration and the sources the recorder actually read for the target).

The promise being checked (``memsnap record --help`` and docs/design.md): reading smaps walks the whole page
table under the mmap lock (~12 ms per GiB of 4 KiB-mapped memory); ``--smaps-max-rss-mb`` reads maps
instead of smaps for bigger processes, so that walk is avoided; pagemap is read with one ``pread`` per
8 MiB (1M pages), and the kernel takes the lock per 2 MiB window inside it (fs/proc/task_mmu.c
pagemap_read, PAGEMAP_WALK_SIZE); ``--budget-ms`` skips sources not *started* before the budget ran out
(it cannot interrupt a read in progress).

``--quick`` (used by nothing else): 1 GiB, 3 s per phase, one capture at least.  Results: ``<out>/impact.json``, ``<out>/impact.md``.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from benchutil import loadavg, log  # noqa: E402  (bench/benchutil.py)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

PAGE = mmap.PAGESIZE


# ---------------------------------------------------------------------------------------------- target

def target_main(gib: float, touch: float, prio: int | None) -> None:
    import numpy as np

    size = int(gib * (1 << 30)) // PAGE * PAGE
    big = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        big.madvise(mmap.MADV_NOHUGEPAGE)  # 4 KiB PTEs: the page-table walk the recorder causes is the largest
    npages = size // PAGE
    # touch `touch` of the pages: every page except one in 10 (for touch=0.9)
    skip = int(round(1 / (1 - touch))) if touch < 1 else 0
    for i in range(npages):
        if skip and i % skip == 0:
            continue
        big[i * PAGE] = 1
    rss = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    nice = None
    if prio is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, prio)  # an important service; keeps the noisy machine's CPU
            nice = prio                                 # contention out of the figures (see --target-nice)
        except OSError:
            pass
    print(json.dumps({"pid": os.getpid(), "rss_kb": rss, "mapped_bytes": size, "nice": nice}), flush=True)
    mm = mmap.mmap
    pc = time.perf_counter_ns
    stop = [False]
    signal.signal(signal.SIGUSR1, lambda *_: stop.__setitem__(0, True))  # the parent ends the phase
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        secs = float(parts[1])  # upper bound; SIGUSR1 ends the phase earlier
        lat = np.empty(int(secs * 200_000) + 16, np.int64)  # > the calls possible in secs (~10 us each)
        n = 0
        cap = lat.size
        stop[0] = False
        t_start = pc()
        end = t_start + int(secs * 1e9)
        slow = []
        while n < cap and not stop[0]:
            t0 = pc()
            x = mm(-1, 65536)
            x.close()
            t1 = pc()
            d = t1 - t0
            lat[n] = d
            n += 1
            if d > 1_000_000:
                slow.append(((t0 - t_start) / 1e6, d / 1e6))
            if t1 > end:
                break
        lat = lat[:n]
        q = np.percentile(lat, [50, 99, 99.9]) / 1000.0
        print(json.dumps({"calls": n, "seconds": (pc() - t_start) / 1e9, "p50_us": q[0], "p99_us": q[1],
                          "p999_us": q[2], "max_ms": float(lat.max()) / 1e6, "mean_us": float(lat.mean()) / 1000,
                          "over_1ms": int((lat > 1_000_000).sum()), "over_10ms": int((lat > 10_000_000).sum()),
                          "slowest": sorted(slow, key=lambda s: -s[1])[:10]}), flush=True)


# ---------------------------------------------------------------------------------------------- recorder loop

def recorder_main(store: str, pid: int, opts_json: str) -> None:
    sys.path.insert(0, str(ROOT))
    from recorder.capture import Options, Recorder

    kw = json.loads(opts_json)
    if "sources" in kw:
        kw["sources"] = tuple(kw["sources"])
    os.nice(10)  # memsnap record's default --nice
    print("ready", flush=True)
    line = sys.stdin.readline().split()
    secs, min_captures, max_secs = float(line[1]), int(line[2]), float(line[3])
    t_go = time.monotonic()
    end = t_go + secs
    times, sources, statuses = [], [], []
    i = 0
    import pyarrow.parquet as pq
    while (time.monotonic() < end or i < min_captures) and time.monotonic() < t_go + max_secs:
        d = os.path.join(store, f"s{i % 2}")
        shutil.rmtree(d, ignore_errors=True)
        t = time.perf_counter()
        res = Recorder(Options(store=d, pids=(pid,), **kw)).capture()
        times.append((time.perf_counter() - t) * 1000)
        if i == 0:
            files = list(Path(d, "processes").rglob("*.parquet"))
            row = pq.read_table(files[0], columns=["sources", "status", "error"]).to_pylist()[0] if files else {}
            sources.append(row.get("sources"))
            statuses.append(f"{row.get('status')}" + (f": {row['error']}" if row.get("error") else ""))
        i += 1
    print(json.dumps({"captures": len(times), "capture_ms": times, "capture_ms_median": statistics.median(times)
                      if times else None, "sources_read": sources[0] if sources else None,
                      "status": statuses[0] if statuses else None, "pages": res.pages if times else None}),
          flush=True)


# ---------------------------------------------------------------------------------------------- main

def configs(rss_kb: int, budget_ms: float) -> list[tuple[str, dict | None, str]]:
    limit_mb = max(1, rss_kb // 1024 // 2)
    return [
        ("baseline", None, "nothing else running"),
        ("cpu control", "busy", "a busy-looping process, no /proc reads"),
        ("default capture", {}, "`memsnap record --pid TARGET` (every source)"),
        ("smaps_rollup only", {"sources": ["smaps_rollup"]}, "`--sources smaps_rollup`"),
        ("pagemap,kpage only", {"sources": ["pagemap", "kpage"]}, "`--sources pagemap,kpage` (maps + pagemap)"),
        ("--smaps-max-rss-mb", {"smaps_max_rss_kb": limit_mb * 1024}, f"`--smaps-max-rss-mb {limit_mb}` (below the "
                                                                       "target's RSS: maps instead of smaps)"),
        ("--smaps-max-rss-mb + --budget-ms", {"smaps_max_rss_kb": limit_mb * 1024, "process_budget_ms": budget_ms},
         f"`--smaps-max-rss-mb {limit_mb} --budget-ms {budget_ms:g}`"),
    ]


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_target":
        target_main(float(argv[1]), float(argv[2]), int(argv[3]) if argv[3] != "none" else None)
        return 0
    if argv and argv[0] == "_recorder":
        recorder_main(argv[1], int(argv[2]), argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gib", type=float, default=2.0, help="GiB mapped by the target (default 2)")
    ap.add_argument("--touch", type=float, default=0.9, help="fraction of it touched (default 0.9)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per phase (default 10)")
    ap.add_argument("--min-captures", type=int, default=2, help="recorder phases last until this many captures "
                                                                 "are done, even past --seconds (default 2)")
    ap.add_argument("--max-seconds", type=float, default=40.0, help="no new capture starts after this; a capture "
                                                                     "still running 30 s later is killed (default 40)")
    ap.add_argument("--budget-ms", type=float, default=20.0, help="--budget-ms of the last phase (default 20)")
    ap.add_argument("--target-nice", type=lambda v: None if v == "none" else int(v), default=None,
                    help="niceness of the target (default: unchanged, 0). At -20 the noise of a shared machine "
                         "disappears, but the nice-10 recorder then waits minutes for the target's mmap lock")
    ap.add_argument("--quick", action="store_true", help="1 GiB, 3 s per phase (for trying the script)")
    ap.add_argument("--out", default=str(HERE / "out"))
    a = ap.parse_args(argv)
    if a.quick:
        a.gib, a.seconds, a.min_captures, a.max_seconds = 1.0, 3.0, 1, 10.0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    tmp = tempfile.mkdtemp(prefix="memsnap-impact-")
    target = subprocess.Popen([sys.executable, __file__, "_target", str(a.gib), str(a.touch),
                               "none" if a.target_nice is None else str(a.target_nice)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    helpers: list[subprocess.Popen] = []
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "args": vars(a), "phases": []}
    try:
        info = json.loads(target.stdout.readline())
        result["target"] = info
        log(f"target pid {info['pid']}: {info['mapped_bytes'] / 2**30:.1f} GiB mapped, RSS {info['rss_kb'] / 1024:.0f} MiB")
        for name, cfg, desc in configs(info["rss_kb"], a.budget_ms):
            rec = None
            if cfg == "busy":
                rec = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                helpers.append(rec)
            elif cfg is not None:
                rec = subprocess.Popen([sys.executable, __file__, "_recorder", os.path.join(tmp, "store"),
                                        str(info["pid"]), json.dumps(cfg)], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, text=True, env=env)
                helpers.append(rec)
                if rec.stdout.readline().strip() != "ready":
                    raise RuntimeError("recorder loop failed to start")
            target.stdin.write(f"run {a.max_seconds + 60}\n")
            target.stdin.flush()
            if rec is not None and cfg != "busy":
                rec.stdin.write(f"go {a.seconds} {a.min_captures} {a.max_seconds}\n")
                rec.stdin.flush()
                ready, _, _ = select.select([rec.stdout], [], [], a.max_seconds + 30)
                if ready:
                    ph_rec = json.loads(rec.stdout.readline())
                else:  # one capture outlasted the phase: stop it; the stalls so far are still measured
                    rec.kill()
                    ph_rec = {"captures": 0, "capture_ms": [], "capture_ms_median": None, "sources_read": None,
                              "status": f"no capture finished within {a.max_seconds + 30:g} s: killed"}
            else:
                time.sleep(a.seconds)
                ph_rec = None
            target.send_signal(signal.SIGUSR1)
            stats = json.loads(target.stdout.readline())
            ph = {"name": name, "description": desc, "options": cfg if isinstance(cfg, dict) else None, **stats}
            if cfg == "busy":
                rec.kill()
                rec.wait()
            elif rec is not None:
                ph["recorder"] = ph_rec
                rec.wait()
            result["phases"].append(ph)
            r = ph.get("recorder") or {}
            log(f"{name:34s} calls {stats['calls']:>8,}  p50 {stats['p50_us']:6.1f} us  p99 {stats['p99_us']:7.1f} us  "
                f"p99.9 {stats['p999_us']:8.1f} us  max {stats['max_ms']:7.2f} ms  >1ms {stats['over_1ms']:4d}  "
                f">10ms {stats['over_10ms']:3d}" + (f"  captures {r['captures']} of {r['capture_ms_median'] or 0:.0f} ms, "
                                                    f"read {r['sources_read']}" if r else ""))
    finally:
        for h in helpers:
            if h.poll() is None:
                h.kill()
                h.wait()
        try:
            target.stdin.write("quit\n")
            target.stdin.close()
            target.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            target.kill()
            target.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    result["verdict"] = verdict(result)
    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    (out / "impact.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "impact.md").write_text(markdown(result))
    log(f"wrote {out / 'impact.json'}, {out / 'impact.md'} in {result['total_s']:.0f} s")
    return 0


def verdict(r: dict) -> dict:
    ph = {p["name"]: p for p in r["phases"]}
    gib = r["target"]["mapped_bytes"] / 2**30
    d, o = ph["default capture"], ph["--smaps-max-rss-mb"]
    ob = ph["--smaps-max-rss-mb + --budget-ms"]
    roll, pm, cpu = ph["smaps_rollup only"], ph["pagemap,kpage only"], ph["cpu control"]
    # What the options promise: the smaps walk is gone, so the stall is bounded by what is still read:
    # smaps_rollup (one page-table walk) and pagemap (short lock holds per 2 MiB window).
    bound_ms = max(roll["max_ms"], pm["max_ms"], cpu["max_ms"])
    opt_max = max(o["max_ms"], ob["max_ms"])
    noise = max(ph["baseline"]["max_ms"], cpu["max_ms"])
    return {"default_max_ms": d["max_ms"], "options_max_ms": opt_max, "bound_ms": bound_ms, "noise_floor_ms": noise,
            "rate_over_10ms_per_s": {p["name"]: p["over_10ms"] / p["seconds"] for p in r["phases"]},
            "bounded": opt_max <= 1.25 * bound_ms,
            "lower_than_default": opt_max < d["max_ms"],
            "design_smaps_estimate_ms": 12 * gib}


def markdown(r: dict) -> str:
    t = r["target"]
    a = r["args"]
    L = ["## Impact on the recorded process (`bench/impact_bench.py`)", ""]
    L.append(f"Target: one process with {t['mapped_bytes'] / 2**30:.1f} GiB of private anonymous memory in 4 KiB pages "
             f"({a['touch'] * 100:.0f} % touched, RSS {t['rss_kb'] / 1024:,.0f} MiB) running a tight "
             f"`mmap(64 KiB)` + `munmap` loop (both take its mmap lock for writing), each pair timed with "
             f"`time.perf_counter_ns`, {a['seconds']:g} s per phase (recorder phases: at least {a['min_captures']} "
             f"captures, no new one after {a['max_seconds']:g} s), target nice {t.get('nice') or 0}. In the recorder phases a child process runs "
             "`Recorder(Options(pids=(target,), ...)).capture()` back to back for the whole phase, at nice 10 "
             f"(the CLI default). Load average {r['loadavg_start']} at start, {r['loadavg_end']} at the end.")
    L += ["", "| phase | what runs alongside | calls | p50 µs | p99 µs | p99.9 µs | max ms | calls > 1 ms | > 10 ms | "
          "captures (median ms) | target's sources read |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in r["phases"]:
        rec = p.get("recorder")
        L.append(f"| {p['name']} | {p['description']} | {p['calls']:,} | {p['p50_us']:.1f} | {p['p99_us']:.1f} | "
                 f"{p['p999_us']:.1f} | **{p['max_ms']:.2f}** | {p['over_1ms']:,} | {p['over_10ms']:,} | "
                 + (f"{rec['captures']} ({rec['capture_ms_median'] or 0:,.0f}) | {rec['sources_read']}"
                    + (f" ({rec['status']})" if rec.get('status') and rec['status'] != 'ok' else "") + " |"
                    if rec else "– | – |"))
    v = r["verdict"]
    L += ["", "What the options promise: with `--smaps-max-rss-mb` below the target's RSS the recorder reads maps "
          "instead of smaps, so the smaps page-table walk under the mmap lock (docs/design.md: ~12 ms per GiB, "
          f"~{v['design_smaps_estimate_ms']:.0f} ms here) is avoided; what it still reads is smaps_rollup (its own "
          "walk of the whole page table) and pagemap, read in 8 MiB (1M-page) preads inside which the kernel takes "
          "the lock per 2 MiB window (`pagemap_read`, PAGEMAP_WALK_SIZE). `--budget-ms` is checked between "
          "sources: it skips sources not started in time but cannot shorten a read already in progress.", "",
          f"Max stall: default capture **{v['default_max_ms']:.1f} ms**; with the impact options "
          f"**{v['options_max_ms']:.1f} ms**; max of the phases reading only what the options still read "
          f"(smaps_rollup only, pagemap only) and of the CPU control {v['bound_ms']:.1f} ms → "
          f"{'✓' if v['bounded'] and v['lower_than_default'] else '✗'}: within that bound (tolerance 1.25×): "
          f"{'yes' if v['bounded'] else 'no'}; "
          f"{'lower' if v['lower_than_default'] else 'NOT lower'} than the default capture's. Noise floor of this machine "
          f"(max of the baseline and CPU-control phases): {v['noise_floor_ms']:.1f} ms; calls over 10 ms per second: "
          + ", ".join(f"{k} {x:.1f}" for k, x in v["rate_over_10ms_per_s"].items()) + "."]
    slow = [(p["name"], p["slowest"][:3]) for p in r["phases"] if p.get("slowest")]
    if slow:
        L += ["", "Slowest calls per phase (ms into the phase, stall ms): "
              + "; ".join(f"{n}: " + ", ".join(f"{t0:.0f}:{d:.1f}" for t0, d in s) for n, s in slow) + "."]
    L.append(f"\nTotal benchmark time {r['total_s']:.0f} s.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
