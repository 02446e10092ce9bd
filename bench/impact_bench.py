#!/usr/bin/env python3
"""Impact on the recorded process: latency of its mmap/munmap calls while the recorder captures it.

    python bench/impact_bench.py [--gib 2] [--seconds 10] [--quick] [--out bench/out]
    python bench/impact_bench.py --sizes 0.5,1,2,4,8,12 --seconds 8    # one target per size
    python bench/impact_bench.py --walk-test 0.5,1,2,4,8,12             # the kernel's lock holds, per size

A target process maps ``--gib`` GiB of private anonymous memory with 4 KiB pages (MADV_NOHUGEPAGE), touches
90 % of it (so its page table has ~470k PTEs per 2 GiB), then runs a tight loop of ``mmap(64 KiB)`` + ``munmap``
(Python's ``mmap.mmap(-1, 65536)`` + ``close()``: two syscalls that take the mmap lock for writing), timing
each pair with ``time.perf_counter_ns``, for ``--seconds`` seconds per phase (recorder phases last until
``--min-captures`` captures are done).  Phases (in this order, the target stays the same process):

* ``baseline``: nothing else running;
* ``cpu control``: a busy-looping process (no /proc reads): what CPU contention alone does on 2 cores;
* one phase per recorder configuration: a child process runs ``Recorder(Options(pids=(target,), ...))
  .capture()`` back to back against the target for the whole phase, at nice 10 like ``memsnap record``'s
  default (imports done before the phase starts).  Configurations: ``--impact full`` (every source); the
  default (``--impact auto``: low impact above ``--impact-threshold-mb``, 1024); ``smaps_rollup`` only;
  ``--impact low`` (maps, pagemap, kpage*) with pagemap read in preads of 64K pages (the default), 512 pages
  and 1M pages; the older ``--smaps-max-rss-mb`` below the target's RSS, with and without ``--budget-ms``.

Per phase: calls, p50, p99, p99.9 and max latency, calls slower than 1 ms and 10 ms, and captures done
(with their median duration and the sources the recorder actually read for the target).

The promise being checked (``memsnap record --help`` and docs/design.md): smaps and smaps_rollup each walk the
whole page table under the mmap lock (~12 ms per GiB of 4 KiB-mapped memory on a quiet machine), so a full
capture's stall grows with the process; ``--impact low`` reads neither: maps, then pagemap, inside whose
reads the kernel takes the lock per 2 MiB of address space whatever the read size (fs/proc/task_mmu.c
pagemap_read, PAGEMAP_WALK_SIZE), then kpage* (no lock of the target), so its stall does not grow with the
process.  ``--sizes`` runs baseline, ``--impact full`` and ``--impact low`` on one target per size (a size
that would leave less than ``--spare-gib`` of MemAvailable is skipped); ``--walk-test`` times the reads
themselves on an idle target (the fastest of 5): one smaps_rollup read (the whole walk, one lock hold) and
pagemap per 2 MiB (one lock hold); ``--nice-test`` runs ``--impact low`` at recorder nice 10, 0 and -10.

``--quick`` (used by nothing else): 1 GiB, 3 s per phase, one capture at least.  Results: ``<out>/impact.json``,
``<out>/impact.md`` (``impact_sizes.*``, ``impact_walk.json``, ``impact_nice.json`` for the other modes).
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
    # run_delay (ns spent runnable but waiting for a CPU), updated whenever this thread gets a CPU: a slow call's
    # time minus its growth is the time it was off the CPU not by the scheduler's choice (its mmap lock)
    sfd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
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
        blocked = []  # per slow call: its time minus the time it waited for a CPU (schedstat run_delay)
        rd = os.pread
        while n < cap and not stop[0]:
            t0 = pc()
            d0 = rd(sfd, 64, 0)
            x = mm(-1, 65536)
            x.close()
            t1 = pc()
            d = t1 - t0
            if d > 1_000_000:
                d1 = rd(sfd, 64, 0)
                t2 = pc()
                off_cpu = (t2 - t0) - (int(d1.split()[1]) - int(d0.split()[1]))
                slow.append(((t0 - t_start) / 1e6, d / 1e6))
                blocked.append(((t0 - t_start) / 1e6, max(off_cpu, 0) / 1e6))
            lat[n] = d
            n += 1
            if t1 > end:
                break
        lat = lat[:n]
        q = np.percentile(lat, [50, 99, 99.9]) / 1000.0
        bl = sorted((b for _, b in blocked), reverse=True)
        print(json.dumps({"calls": n, "seconds": (pc() - t_start) / 1e9, "p50_us": q[0], "p99_us": q[1],
                          "p999_us": q[2], "max_ms": float(lat.max()) / 1e6, "mean_us": float(lat.mean()) / 1000,
                          "over_1ms": int((lat > 1_000_000).sum()), "over_10ms": int((lat > 10_000_000).sum()),
                          "slowest": sorted(slow, key=lambda s: -s[1])[:10],
                          "blocked_max_ms": bl[0] if bl else 1.0, "blocked_over_10ms": sum(b > 10 for b in bl),
                          "blocked_slowest": sorted(blocked, key=lambda s: -s[1])[:10]}), flush=True)


# ---------------------------------------------------------------------------------------------- recorder loop

def recorder_main(store: str, pid: int, opts_json: str) -> None:
    sys.path.insert(0, str(ROOT))
    from recorder.capture import Options, Recorder

    kw = json.loads(opts_json)
    if "window" in kw:  # pagemap pread size in pages (recorder.capture.PAGEMAP_CHUNK_PAGES)
        from recorder import capture
        capture.PAGEMAP_CHUNK_PAGES = kw.pop("window")
    if "sources" in kw:
        kw["sources"] = tuple(kw["sources"])
    # memsnap record's default --nice 10, or the phase's "nice" (a niceness, not an increment)
    os.setpriority(os.PRIO_PROCESS, 0, kw.pop("nice", os.getpriority(os.PRIO_PROCESS, 0) + 10))
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
        ("full capture", {"impact": "full"}, "`memsnap record --pid TARGET --impact full` (every source)"),
        ("default capture", {}, "`memsnap record --pid TARGET` (`--impact auto`: low impact above "
                                "`--impact-threshold-mb`, default 1024)"),
        ("smaps_rollup only", {"sources": ["smaps_rollup"]}, "`--sources smaps_rollup`"),
        ("--impact low", {"impact": "low"}, "`--impact low`: maps, pagemap in preads of 64K pages (the default "
                                            "window), kpage*"),
        ("--impact low, window 512", {"impact": "low", "window": 512}, "the same, pagemap in preads of 512 pages "
                                                                         "(one PMD: 2 MiB of address space)"),
        ("--impact low, window 1M", {"impact": "low", "window": 1 << 20}, "the same, pagemap in preads of 1M pages "
                                                                            "(4 GiB of address space)"),
        ("--smaps-max-rss-mb", {"impact": "full", "smaps_max_rss_kb": limit_mb * 1024},
         f"`--impact full --smaps-max-rss-mb {limit_mb}` (below the target's RSS: maps instead of smaps, "
         "smaps_rollup still read)"),
        ("--smaps-max-rss-mb + --budget-ms", {"impact": "full", "smaps_max_rss_kb": limit_mb * 1024,
                                              "process_budget_ms": budget_ms},
         f"`--impact full --smaps-max-rss-mb {limit_mb} --budget-ms {budget_ms:g}`"),
    ]


def walk_times(a, gib: float, env: dict) -> dict:
    """How long the kernel holds a ``gib`` GiB target's mmap lock per read: smaps_rollup walks the whole page
    table under it (the read's duration), pagemap takes it per 2 MiB of address space (the read's duration
    divided by the PMDs read).  The fastest of 5 reads: the lock hold without the machine's noise."""
    target = subprocess.Popen([sys.executable, __file__, "_target", str(gib), str(a.touch), "none"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        info = json.loads(target.stdout.readline())
        pid = info["pid"]
        roll = []
        for _ in range(5):
            t = time.perf_counter()
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                f.read()
            roll.append((time.perf_counter() - t) * 1000)
        with open(f"/proc/{pid}/maps") as f:
            spans = [[int(x, 16) for x in ln.split()[0].split("-")] for ln in f]
        lo, hi = max(spans, key=lambda s: s[1] - s[0])  # the big mapping
        pm = []
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
        try:
            for _ in range(5):
                t = time.perf_counter()
                for off in range(lo // PAGE * 8, hi // PAGE * 8, 8 << 16):
                    os.pread(fd, min(8 << 16, hi // PAGE * 8 - off), off)
                pm.append((time.perf_counter() - t) * 1000)
        finally:
            os.close(fd)
        pmds = (hi - lo) / (2 << 20)
        return {"gib": gib, "rss_kb": info["rss_kb"], "smaps_rollup_ms": min(roll), "pagemap_ms": min(pm),
                "pagemap_us_per_pmd": min(pm) * 1000 / pmds, "smaps_rollup_ms_per_gib": min(roll) / gib}
    finally:
        target.stdin.write("quit\n")
        target.stdin.close()
        target.wait(timeout=30)


def nice_configs() -> list[tuple[str, dict | None, str]]:
    """--nice-test: the low-impact phase at several recorder priorities (the reader's wake-up latency while
    the target waits for its lock)."""
    return [("baseline", None, "nothing else running")] + [
        (f"--impact low, nice {n}", {"impact": "low", "nice": n}, f"`--impact low`, recorder at nice {n}")
        for n in (10, 0, -10)] + [("full capture, nice 0", {"impact": "full", "nice": 0}, "`--impact full` at nice 0")]


def size_configs() -> list[tuple[str, dict | None, str]]:
    """Phases of each target in --sizes mode."""
    return [("baseline", None, "nothing else running"),
            ("full capture", {"impact": "full"}, "`--impact full`"),
            ("--impact low", {"impact": "low"}, "`--impact low`")]


def run_target(a, gib: float, phases_of, env: dict, tmp: str) -> tuple[dict, list[dict]]:
    """One target of ``gib`` GiB through the phases ``phases_of(target info)`` (configs()): its info and each
    phase's figures.  The target exits before this returns (its memory is freed)."""
    target = subprocess.Popen([sys.executable, __file__, "_target", str(gib), str(a.touch),
                               "none" if a.target_nice is None else str(a.target_nice)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)
    helpers: list[subprocess.Popen] = []
    out = []
    try:
        info = json.loads(target.stdout.readline())
        log(f"target pid {info['pid']}: {info['mapped_bytes'] / 2**30:.1f} GiB mapped, RSS {info['rss_kb'] / 1024:.0f} MiB")
        for name, cfg, desc in phases_of(info):
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
            out.append(ph)
            r = ph.get("recorder") or {}
            log(f"{gib:g} GiB {name:34s} calls {stats['calls']:>8,}  p50 {stats['p50_us']:6.1f} us  p99 "
                f"{stats['p99_us']:7.1f} us  max {stats['max_ms']:7.2f} ms  >1ms {stats['over_1ms']:4d}  "
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
            target.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            target.kill()
            target.wait()
    return info, out


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
    ap.add_argument("--sizes", default=None, help="comma-separated GiB (e.g. 0.5,1,2,8,16): instead of the phases "
                    "of one target, one target per size through baseline, --impact full and --impact low "
                    "(results: <out>/impact_sizes.json, .md)")
    ap.add_argument("--spare-gib", type=float, default=3.0, help="--sizes: skip a target that would leave less than "
                    "this much MemAvailable (default 3)")
    ap.add_argument("--walk-test", default=None, help="comma-separated GiB: per target size, how long one "
                    "smaps_rollup read and one pagemap PMD hold the lock (results: <out>/impact_walk.json)")
    ap.add_argument("--nice-test", action="store_true", help="one target (--gib) through --impact low at recorder "
                    "nice 10, 0 and -10 (results: <out>/impact_nice.json)")
    a = ap.parse_args(argv)
    if a.quick:
        a.gib, a.seconds, a.min_captures, a.max_seconds = 1.0, 3.0, 1, 10.0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    tmp = tempfile.mkdtemp(prefix="memsnap-impact-")
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "commit": _commit(), "args": vars(a)}
    try:
        if a.walk_test:
            result["walks"] = [walk_times(a, float(g), env) for g in a.walk_test.split(",")]
            for w in result["walks"]:
                log(json.dumps(w))
        elif a.nice_test:
            result["target"], result["phases"] = run_target(a, a.gib, lambda info: nice_configs(), env, tmp)
        elif a.sizes:
            result["targets"] = []
            for gib in (float(x) for x in a.sizes.split(",")):
                need = gib * a.touch * 2**30 + a.spare_gib * 2**30
                avail = _mem_available()
                if avail < need:  # other work on the machine: never push it into the OOM killer
                    log(f"skipped {gib:g} GiB: MemAvailable {avail / 2**30:.1f} GiB < {need / 2**30:.1f} GiB needed")
                    result.setdefault("skipped", []).append(
                        f"{gib:g} GiB (MemAvailable {avail / 2**30:.1f} GiB, needed {need / 2**30:.1f} GiB with "
                        f"--spare-gib {a.spare_gib:g})")
                    continue
                info, phases = run_target(a, gib, lambda info: size_configs(), env, tmp)
                result["targets"].append({"gib": gib, "target": info, "phases": phases,
                                          "loadavg": loadavg()})
        else:
            result["target"], result["phases"] = run_target(
                a, a.gib, lambda info: configs(info["rss_kb"], a.budget_ms), env, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    name = "impact_walk" if a.walk_test else "impact_nice" if a.nice_test else "impact_sizes" if a.sizes else "impact"
    if a.nice_test or a.walk_test:
        (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        return 0
    result["verdict"] = sizes_verdict(result) if a.sizes else verdict(result)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / f"{name}.md").write_text(sizes_markdown(result) if a.sizes else markdown(result))
    log(f"wrote {out / (name + '.json')}, {out / (name + '.md')} in {result['total_s']:.0f} s")
    return 0


def _mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _fifth(p: dict) -> float:
    """The 5th slowest call (ms): less sensitive than the max to one hiccup of a shared machine."""
    s = sorted((d for _, d in p.get("slowest") or []), reverse=True)
    return s[4] if len(s) >= 5 else 1.0  # fewer than 5 calls over 1 ms: at most 1 ms


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def verdict(r: dict) -> dict:
    ph = {p["name"]: p for p in r["phases"]}
    gib = r["target"]["mapped_bytes"] / 2**30
    full, low, d = ph["full capture"], ph["--impact low"], ph["default capture"]
    roll, cpu = ph["smaps_rollup only"], ph["cpu control"]
    opt_max = max(ph["--smaps-max-rss-mb"]["max_ms"], ph["--smaps-max-rss-mb + --budget-ms"]["max_ms"])
    noise = max(ph["baseline"]["max_ms"], cpu["max_ms"])
    windows = {n: ph[n]["max_ms"] for n in ("--impact low, window 512", "--impact low", "--impact low, window 1M")}
    # The promise: without the smaps/smaps_rollup walks the stall is what pagemap's per-PMD lock holds and
    # the CPU contention cost: well below a full capture's, whatever the window.
    return {"full_max_ms": full["max_ms"], "default_max_ms": d["max_ms"], "low_max_ms": low["max_ms"],
            "rollup_max_ms": roll["max_ms"], "options_max_ms": opt_max, "noise_floor_ms": noise,
            "window_max_ms": windows,
            "rate_over_10ms_per_s": {p["name"]: p["over_10ms"] / p["seconds"] for p in r["phases"]},
            "low_below_half_of_full": max(low["max_ms"], d["max_ms"]) < 0.5 * full["max_ms"],
            "design_smaps_estimate_ms": 12 * gib}


def markdown(r: dict) -> str:
    t = r["target"]
    a = r["args"]
    L = ["## Impact on the recorded process, one target (`bench/impact_bench.py`)", ""]
    L.append(f"Command: `python bench/impact_bench.py --gib {a['gib']:g} --seconds {a['seconds']:g} --min-captures "
             f"{a['min_captures']} --max-seconds {a['max_seconds']:g}`, commit "
             f"{r.get('commit')}. Target: one process with {t['mapped_bytes'] / 2**30:.1f} GiB of private anonymous "
             f"memory in 4 KiB pages (MADV_NOHUGEPAGE, {a['touch'] * 100:.0f} % touched, RSS "
             f"{t['rss_kb'] / 1024:,.0f} MiB) running a tight `mmap(64 KiB)` + `munmap` loop (both take its mmap "
             f"lock for writing), each pair timed with `time.perf_counter_ns`, {a['seconds']:g} s per phase "
             f"(recorder phases: at least {a['min_captures']} captures, no new one after {a['max_seconds']:g} s), "
             f"target nice {t.get('nice') or 0}. In the recorder phases a child process runs "
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
    L += ["", f"Max stall: full capture **{v['full_max_ms']:.1f} ms** (smaps_rollup alone {v['rollup_max_ms']:.1f} ms; "
          f"docs/design.md's ~12 ms per GiB predicts ~{v['design_smaps_estimate_ms']:.0f} ms per walk); "
          f"`--impact low` **{v['low_max_ms']:.1f} ms**; the default (`--impact auto`, low above 1 GiB) "
          f"**{v['default_max_ms']:.1f} ms**; the older `--smaps-max-rss-mb` (± `--budget-ms`) {v['options_max_ms']:.1f} ms; "
          f"noise floor of this machine (max of the baseline and CPU-control phases) {v['noise_floor_ms']:.1f} ms → "
          f"{'✓' if v['low_below_half_of_full'] else '✗'} low impact below half of the full capture's stall. "
          "Pagemap window (pages per pread) vs max stall: "
          + ", ".join(f"{k.replace('--impact low, ', '').replace('--impact low', 'window 64K')} {x:.1f} ms"
                      for k, x in v["window_max_ms"].items())
          + " (the kernel takes the lock per 2 MiB of address space inside one read, whatever its size). Calls over "
          "10 ms per second: " + ", ".join(f"{k} {x:.1f}" for k, x in v["rate_over_10ms_per_s"].items()) + "."]
    slow = [(p["name"], p["slowest"][:3]) for p in r["phases"] if p.get("slowest")]
    if slow:
        L += ["", "Slowest calls per phase (ms into the phase, stall ms): "
              + "; ".join(f"{n}: " + ", ".join(f"{t0:.0f}:{d:.1f}" for t0, d in s) for n, s in slow) + "."]
    L.append(f"\nTotal benchmark time {r['total_s']:.0f} s.")
    return "\n".join(L) + "\n"


def sizes_verdict(r: dict) -> dict:
    rows = []
    for t in r["targets"]:
        ph = {p["name"]: p for p in t["phases"]}
        rows.append({"gib": t["gib"], "rss_mib": t["target"]["rss_kb"] / 1024, "baseline_ms": ph["baseline"]["max_ms"],
                     "full_ms": ph["full capture"]["max_ms"], "low_ms": ph["--impact low"]["max_ms"],
                     "baseline_5th_ms": _fifth(ph["baseline"]), "full_5th_ms": _fifth(ph["full capture"]),
                     "low_5th_ms": _fifth(ph["--impact low"]),
                     "baseline_blocked_ms": ph["baseline"].get("blocked_max_ms"),
                     "full_blocked_ms": ph["full capture"].get("blocked_max_ms"),
                     "low_blocked_ms": ph["--impact low"].get("blocked_max_ms"),
                     "full_capture_ms": (ph["full capture"].get("recorder") or {}).get("capture_ms_median"),
                     "low_capture_ms": (ph["--impact low"].get("recorder") or {}).get("capture_ms_median")})
    small, big = rows[0], rows[-1]
    noise = max(x["baseline_ms"] for x in rows)
    # flat: the largest target's low-impact stall is within the smallest one's, give or take the noise floor
    flat = big["low_ms"] <= max(1.5 * small["low_ms"], small["low_ms"] + noise)
    # the same on the time off the CPU only (lock waits; CPU contention taken out): within 1.5x or 5 ms
    flat_blocked = None
    if big.get("low_blocked_ms") is not None and small.get("low_blocked_ms") is not None:
        flat_blocked = big["low_blocked_ms"] <= max(1.5 * small["low_blocked_ms"], small["low_blocked_ms"] + 5)
    return {"rows": rows, "noise_floor_ms": noise, "low_flat": flat, "low_blocked_flat": flat_blocked,
            "full_growth": big["full_ms"] / small["full_ms"] if small["full_ms"] else None,
            "low_growth": big["low_ms"] / small["low_ms"] if small["low_ms"] else None}


def sizes_markdown(r: dict) -> str:
    a, v = r["args"], r["verdict"]
    L = ["## Impact by target size (`bench/impact_bench.py --sizes`)", "",
         f"Command: `python bench/impact_bench.py --sizes {a['sizes']} --seconds {a['seconds']:g} --min-captures "
         f"{a['min_captures']}`, commit "
         f"{r.get('commit')}, load average {r['loadavg_start']} at start, {r['loadavg_end']} at the end. One target "
         f"per size (private anonymous memory, MADV_NOHUGEPAGE, {a['touch'] * 100:.0f} % touched), the same "
         "mmap/munmap loop and recorder loop as above, each target freed before the next starts.", "",
         "Max stall (in parentheses, the 5th slowest call: less sensitive to one hiccup of a shared machine), and "
         "the max stall off the CPU: a slow call's time minus the time it waited for a CPU (the growth of its "
         "thread's schedstat run_delay), i.e. the wait for the mmap lock with the machine's CPU contention "
         "taken out:", "", "| target GiB | RSS MiB | baseline ms | `--impact full` ms | `--impact low` ms | off the "
         "CPU: baseline / full / low ms | capture ms full / low (median) | the default picks |",
         "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for x in v["rows"]:
        def b(k):
            return "–" if x.get(k) is None else f"{x[k]:.1f}"
        L.append(f"| {x['gib']:g} | {x['rss_mib']:,.0f} | {x['baseline_ms']:.1f} ({x['baseline_5th_ms']:.1f}) | "
                 f"**{x['full_ms']:.1f}** ({x['full_5th_ms']:.1f}) | **{x['low_ms']:.1f}** ({x['low_5th_ms']:.1f}) | "
                 f"{b('baseline_blocked_ms')} / **{b('full_blocked_ms')}** / **{b('low_blocked_ms')}** | "
                 f"{x['full_capture_ms'] or 0:,.0f} / {x['low_capture_ms'] or 0:,.0f} | "
                 f"{'low' if x['rss_mib'] > 1024 else 'full'} |")
    if r.get("skipped"):
        L += ["", "Not run (memory of the shared machine): " + "; ".join(r["skipped"]) + "."]
    L += ["", f"From the smallest to the largest target the full capture's max stall grows "
          f"{v['full_growth']:.1f}×, the low-impact one's {v['low_growth']:.2f}× → "
          f"{'✓' if v['low_flat'] else '✗'} low-impact stall independent of the size (within 1.5× or the noise "
          f"floor, {v['noise_floor_ms']:.1f} ms, of the smallest target's); off the CPU "
          + ("–" if v.get("low_blocked_flat") is None else "✓" if v["low_blocked_flat"] else "✗")
          + f" (within 1.5× or 5 ms). Total benchmark time {r['total_s']:.0f} s."]
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
