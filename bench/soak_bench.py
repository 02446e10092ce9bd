#!/usr/bin/env python3
"""Steady state: does the recorder grow over thousands of captures?  (issue 18, part 3)

    python bench/soak_bench.py [--count 2000] [--interval 0.2] [--keep 200] [--periodic compact:100]
                               [--churn-size 12] [--seed 1] [--match REGEX] [--out bench/out]

Starts a churning set of processes (bench/churn.py: started and killed at random throughout, seeded), then
runs ``memsnap record STORE --interval I --count N --keep K --format json`` in a child, the whole machine by
default.  The recorder prints one JSON line per committed snapshot; after each line, once the recorder sleeps
its interval (its system call, /proc/<pid>/syscall, is clock_nanosleep), the bench reads the recorder's
/proc/<pid>: RSS and peak RSS (status VmRSS, VmHWM), open fds (fd/), threads (status Threads) and CPU (stat
utime+stime).  So there is one sample per capture, taken between captures, with nothing of a capture open.  ``--periodic CMD:EVERY`` also runs a separate ``memsnap CMD STORE`` every
EVERY captures (wall, peak RSS and CPU of each run, from wait4), concurrently with the recorder.

Growth figures (the target of issue 18: RSS after 2,000 captures within 5 % of RSS after 100; fds and threads
constant): RSS is the median of the 20 captures ending at capture 100 and of the last 20 (single captures are
noisy: what the machine's processes need changes from one capture to the next); fds and threads are their
range after a warm-up of 10 captures.  The baseline is the same run's capture 100.

Writes <out>/soak.json, <out>/soak.md and <out>/soak.png (RSS, fds, threads and CPU per capture; needs
matplotlib, from the analyze extra).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from benchutil import ROOT, child_env, du, loadavg, log, med, memsnap_cmd, run  # noqa: E402

#: the commands --periodic may run against the store, as separate processes (e.g. --periodic compact:100
#: --periodic push:50); their runs are measured like the recorder (wall, CPU, peak RSS per run).
PERIODIC = {
    "compact": lambda store: ["compact", store],
    # to a central store beside it (a directory: the same code path as s3:// but the filesystem), which keeps
    # every snapshot: the push's listing grows with it, as a central store's does
    "push": lambda store: ["push", store, store + "-central"],
}

TICK = os.sysconf("SC_CLK_TCK")
WARMUP = 70   # captures before fds and threads must be constant: past the first in-loop compaction (at 60
              # loose snapshots), which starts Arrow's pool threads (one each, cli/record.py _one_arrow_thread)
WINDOW = 20   # captures per RSS median


#: time.sleep's system calls (clock_nanosleep, nanosleep), by machine: a recorder in one of them is between
#: captures (its --interval sleep), with no capture's files or threads open
SLEEP_SYSCALLS = {"x86_64": {230, 35}, "aarch64": {115, 101}}.get(os.uname().machine, set())


def in_sleep(pid: int) -> bool | None:
    """Whether ``pid``'s main thread is in time.sleep (/proc/<pid>/syscall, root); None if that cannot be
    told (or the process is gone)."""
    try:
        nr = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return None
    if not SLEEP_SYSCALLS:
        return None
    return nr.lstrip("-").isdigit() and int(nr) in SLEEP_SYSCALLS


def _voluntary_switches(pid: int) -> int | None:
    """The main thread's voluntary context switches: a sleeper that wakes up and sleeps again adds one."""
    try:
        return int(Path(f"/proc/{pid}/status").read_text().split("voluntary_ctxt_switches:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None


def idle_sample(pid: int, timeout: float = 120.0) -> dict | None:
    """A :func:`proc_sample` taken while the recorder sleeps between captures: polled until it is in its
    sleep before and after the sample, with no context switch in between (so fds and threads are those of the idle recorder, not of a capture or
    compaction in progress).  Without /proc/<pid>/syscall, a plain sample."""
    deadline = time.monotonic() + timeout
    while True:
        before = in_sleep(pid)
        if before is None:
            return proc_sample(pid)
        if before:
            switches = _voluntary_switches(pid)
            s = proc_sample(pid)
            if s is None:
                return s
            if in_sleep(pid) and switches is not None and _voluntary_switches(pid) == switches:
                return dict(s, idle=True)  # asleep throughout: it never woke up while it was read
        if time.monotonic() > deadline:
            s = proc_sample(pid)
            return None if s is None else dict(s, idle=False)
        time.sleep(0.005)


def proc_sample(pid: int) -> dict | None:
    """RSS/peak (kB), fds, threads and CPU seconds of ``pid`` from /proc; None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        stat = Path(f"/proc/{pid}/stat").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    kv = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    f = stat[stat.rindex(")") + 2:].split()  # fields from 3 (state) on
    return {"rss_kb": int(kv["VmRSS"].split()[0]), "hwm_kb": int(kv["VmHWM"].split()[0]),
            "threads": int(kv["Threads"]), "fds": fds, "cpu_s": (int(f[11]) + int(f[12])) / TICK}


def growth(samples: list[dict]) -> dict:
    """The figures of the docstring, from the per-capture samples."""
    n = len(samples)
    at = min(100, n)
    early = samples[max(0, at - WINDOW):at]
    late = samples[max(0, n - WINDOW):]
    steady = [s for s in samples[min(WARMUP, n - 1):] if s.get("idle", True)] or samples[-1:]
    rss_early, rss_late = med([s["rss_kb"] for s in early]), med([s["rss_kb"] for s in late])
    cpu = [s["cpu_capture_s"] for s in samples if s.get("cpu_capture_s") is not None]
    cpu_early = med(cpu[max(0, at - 100):at]) if cpu else None
    cpu_late = med(cpu[-100:]) if cpu else None
    return {
        "captures": n, "early_at": at, "idle_samples": sum(1 for s in samples if s.get("idle", True)),
        "rss_early_kb": rss_early, "rss_late_kb": rss_late,
        "rss_growth": rss_late / rss_early - 1 if rss_early else None,
        "hwm_early_kb": samples[at - 1]["hwm_kb"], "hwm_late_kb": samples[-1]["hwm_kb"],
        "fds_min": min(s["fds"] for s in steady), "fds_max": max(s["fds"] for s in steady),
        "threads_min": min(s["threads"] for s in steady), "threads_max": max(s["threads"] for s in steady),
        "cpu_capture_early_s": cpu_early, "cpu_capture_late_s": cpu_late,
        "capture_s_early": med([s["seconds"] for s in early]), "capture_s_late": med([s["seconds"] for s in late]),
        "pages_early": med([s["pages"] for s in samples[max(0, at - 100):at]]),
        "pages_late": med([s["pages"] for s in samples[-100:]]),
        "fds_counts": {str(k): sum(1 for s in steady if s["fds"] == k) for k in sorted({s["fds"] for s in steady})},
    }


class Periodic:
    """Runs ``memsnap CMD STORE`` every ``every`` captures, one run at a time, in a thread."""

    def __init__(self, name: str, every: int, store: str):
        self.name, self.every, self.store = name, every, store
        self.runs: list[dict] = []
        self._due: list[int] = []
        self._cv = threading.Condition()
        self._done = False
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def captured(self, n: int) -> None:
        if n % self.every == 0:
            with self._cv:
                self._due.append(n)
                self._cv.notify()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._due and not self._done:
                    self._cv.wait()
                if not self._due:
                    return
                n = self._due.pop(0)
            r = run([*memsnap_cmd(), *PERIODIC[self.name](self.store)], check=False)
            self.runs.append({"at_capture": n, "wall_s": r["wall_s"], "maxrss_kb": r["maxrss_kb"],
                              "cpu_s": r["cpu_s"], "rc": r["rc"],
                              "stderr": r["stderr"][-500:] if r["rc"] else ""})
            if r["rc"]:
                log(f"  {self.name} at capture {n} exited {r['rc']}: {r['stderr'].strip()[-300:]}")

    def finish(self) -> None:
        with self._cv:
            self._done = True
            self._cv.notify()
        self._thread.join()


def soak(store: str, count: int, interval: float, keep: int, periodic: list[tuple[str, int]],
         match: str | None, extra: list[str], progress_every: int = 100, partial: Path | None = None,
         partial_meta: dict | None = None) -> dict:
    argv = [*memsnap_cmd(), "record", store, "--interval", str(interval), "--count", str(count),
            "--keep", str(keep), "--format", "json", *(["--match", match] if match else []), *extra]
    jobs = [Periodic(name, every, store) for name, every in periodic]
    samples: list[dict] = []
    errors = tempfile.TemporaryFile()
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors, env=child_env(), text=True, bufsize=1)
    try:
        prev_cpu = None
        for line in p.stdout:
            s = idle_sample(p.pid) if len(samples) + 1 < count else proc_sample(p.pid)  # no sleep after the last
            if s is None:
                break
            s.setdefault("idle", len(samples) + 1 == count)
            res = json.loads(line)
            s.update(capture=len(samples) + 1, t=round(time.monotonic() - t0, 3), seconds=res["seconds"],
                     processes=res["processes"]["ok"] + res["processes"]["partial"], pages=res["pages"],
                     cpu_capture_s=None if prev_cpu is None else round(s["cpu_s"] - prev_cpu, 4))
            prev_cpu = s["cpu_s"]
            samples.append(s)
            for j in jobs:
                j.captured(len(samples))
            if len(samples) % progress_every == 0:
                if partial:
                    partial.write_text(json.dumps({
                        "argv": argv[len(memsnap_cmd()):], "samples": samples, "wall_s": time.monotonic() - t0,
                        "periodic": {j.name: {"every": j.every, "runs": list(j.runs)} for j in jobs},
                        "meta": dict(partial_meta or {}, loadavg_end=loadavg(), store_bytes=du(store))}))
                log(f"  capture {len(samples)}: RSS {s['rss_kb'] // 1024} MiB, {s['fds']} fds, "
                    f"{s['threads']} threads, {s['seconds']:.2f} s, load {loadavg()}")
        rc = p.wait()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for j in jobs:
            j.finish()
    errors.seek(0)
    err_text = errors.read().decode(errors="replace")
    if rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {rc}:\n{err_text[-3000:]}")
    warnings = [ln for ln in err_text.splitlines() if ln.strip()]
    return {"argv": argv[len(memsnap_cmd()):], "samples": samples, "wall_s": time.monotonic() - t0,
            "periodic": {j.name: {"every": j.every, "runs": j.runs} for j in jobs},
            "recorder_stderr_lines": len(warnings),
            "recorder_stderr_kinds": sorted({w.split(":", 1)[0][:60] for w in warnings})[:20]}


def periodic_growth(runs: list[dict]) -> dict | None:
    if not runs:
        return None
    k = max(1, len(runs) // 4)
    first, last = runs[:k], runs[-k:]
    return {"runs": len(runs), "failed": sum(1 for r in runs if r["rc"]),
            "maxrss_first_kb": med([r["maxrss_kb"] for r in first]), "maxrss_last_kb": med([r["maxrss_kb"] for r in last]),
            "cpu_first_s": med([r["cpu_s"] for r in first]), "cpu_last_s": med([r["cpu_s"] for r in last]),
            "wall_first_s": med([r["wall_s"] for r in first]), "wall_last_s": med([r["wall_s"] for r in last])}


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = res["samples"]
    x = [r["capture"] for r in s]
    fig, ax = plt.subplots(4, 1, figsize=(9, 8.5), sharex=True)
    ax[0].plot(x, [r["rss_kb"] / 1024 for r in s], lw=0.7, label="RSS between captures")
    ax[0].plot(x, [r["hwm_kb"] / 1024 for r in s], lw=1.0, label="peak RSS so far (VmHWM)")
    ax[0].set_ylabel("MiB")
    ax[0].set_ylim(bottom=0)
    ax[0].legend(loc="lower right", fontsize=8)
    ax[1].plot(x, [r["fds"] for r in s], lw=0.8, drawstyle="steps-post")
    ax[1].set_ylabel("open fds")
    ax[2].plot(x, [r["threads"] for r in s], lw=0.8, drawstyle="steps-post")
    ax[2].set_ylabel("threads")
    cx = [r["capture"] for r in s if r["cpu_capture_s"] is not None]
    cy = [r["cpu_capture_s"] * 1000 for r in s if r["cpu_capture_s"] is not None]
    ax[3].plot(cx, cy, lw=0.4, alpha=0.6, label="per capture")
    w = 50
    if len(cy) > w:
        roll = [med(cy[i - w:i]) for i in range(w, len(cy) + 1)]
        ax[3].plot(cx[w - 1:], roll, lw=1.2, label=f"median of {w}")
    ax[3].set_ylabel("CPU ms")
    ax[3].set_ylim(bottom=0)
    ax[3].legend(loc="upper right", fontsize=8)
    for name, p in res["periodic"].items():
        for r in p["runs"]:
            ax[1].axvline(r["at_capture"], color="grey", lw=0.3, alpha=0.4)
    for a in ax:
        a.grid(alpha=0.3)
        for side in ("top", "right"):
            a.spines[side].set_visible(False)
    ax[1].set_ylim(0, max(r["fds"] for r in s) * 1.3 + 1)
    ax[2].set_ylim(0, max(r["threads"] for r in s) * 1.3 + 1)
    ax[-1].set_xlabel("capture")
    per = ", ".join(f"{n} every {p['every']}" for n, p in res["periodic"].items())
    fig.suptitle(f"memsnap record {' '.join(res['argv'][2:])}" + (f"; {per} (grey lines)" if per else ""),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict) -> str:
    g = res["growth"]
    kb = lambda v: f"{v / 1024:.1f}"  # noqa: E731
    churn = (res.get("churn") or {}).get("started")
    wall = f" in {res['wall_s'] / 60:.1f} min" if res.get("wall_s") else ""
    store = f", store {res['store_bytes'] / 1e6:.1f} MB at the end" if res.get("store_bytes") else ""
    lines = [
        f"`python bench/soak_bench.py {' '.join(res.get('bench_args') or [])}`, commit {res.get('commit')}, "
        f"load average {res.get('loadavg_start')} at the start, {res.get('loadavg_end')} at the end; "
        f"{g['captures']} captures{wall}{store}" + (f"; churn: {churn} processes started." if churn else "."),
        "",
        "| | after capture " + str(g["early_at"]) + f" | after capture {g['captures']} | growth |",
        "|---|---:|---:|---:|",
        f"| recorder RSS, MiB (median of {WINDOW} captures) | {kb(g['rss_early_kb'])} | {kb(g['rss_late_kb'])} | "
        f"{g['rss_growth'] * 100:+.1f} % |",
        f"| recorder peak RSS (VmHWM), MiB | {kb(g['hwm_early_kb'])} | {kb(g['hwm_late_kb'])} | "
        f"{(g['hwm_late_kb'] / g['hwm_early_kb'] - 1) * 100:+.1f} % |",
        f"| open fds (range after capture {WARMUP}) | {g['fds_min']}-{g['fds_max']} | | "
        f"{'constant' if g['fds_min'] == g['fds_max'] else 'varies: ' + ', '.join(f'{k} in {v}' for k, v in g['fds_counts'].items())} |",
        f"| threads (range after capture {WARMUP}) | {g['threads_min']}-{g['threads_max']} | | "
        f"{'constant' if g['threads_min'] == g['threads_max'] else 'varies'} |",
        f"| CPU per capture, ms (median of 100) | {g['cpu_capture_early_s'] * 1000:.0f} | "
        f"{g['cpu_capture_late_s'] * 1000:.0f} | {(g['cpu_capture_late_s'] / g['cpu_capture_early_s'] - 1) * 100:+.0f} % |",
        f"| capture wall time, s (median of {WINDOW}) | {g['capture_s_early']:.2f} | {g['capture_s_late']:.2f} | |",
        f"| pages recorded per capture (median of 100) | {g['pages_early']:,.0f} | {g['pages_late']:,.0f} | |",
    ]
    for name, pg in res["periodic_growth"].items():
        if pg is None:
            continue
        lines.append(f"| `memsnap {name}` (separate process, {pg['runs']} runs, {pg['failed']} failed): peak RSS "
                     f"MiB, first / last quarter of runs | {kb(pg['maxrss_first_kb'])} | {kb(pg['maxrss_last_kb'])} | "
                     f"{(pg['maxrss_last_kb'] / pg['maxrss_first_kb'] - 1) * 100:+.1f} % |")
        lines.append(f"| `memsnap {name}`: CPU s per run, first / last quarter | {pg['cpu_first_s']:.2f} | "
                     f"{pg['cpu_last_s']:.2f} | |")
    return "\n".join(lines) + "\n"


def render(src: Path, out: Path) -> int:
    res = json.loads(src.read_text())
    res.setdefault("periodic", {})
    res.setdefault("argv", ["record", "STORE"])
    for k in ("bench_args", "commit", "loadavg_start", "loadavg_end", "wall_s", "store_bytes", "churn"):
        res.setdefault(k, res.get("meta", {}).get(k))
    res["growth"] = growth(res["samples"])
    res["periodic_growth"] = {n: periodic_growth(p["runs"]) for n, p in res["periodic"].items()}
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(res)
    (out / "soak.md").write_text(md)
    plot(res, out / "soak.png")
    print(md)
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--interval", type=float, default=0.2)
    ap.add_argument("--keep", type=int, default=200, help="retention (--keep): the store stays bounded")
    ap.add_argument("--periodic", action="append", default=None,
                    help=f"CMD:EVERY, repeatable; CMD one of {', '.join(PERIODIC)} (default compact:100)")
    ap.add_argument("--churn-size", type=int, default=12)
    ap.add_argument("--churn-max-mib", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--match", default=None, help="record only these processes (default: the whole machine)")
    ap.add_argument("--record-arg", action="append", default=[], help="extra `memsnap record` argument")
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--render", metavar="JSON", help="only write soak.md and soak.png from a soak.json, or from the "
                    "soak.partial.json a run writes every 100 captures (a run stopped early)")
    a = ap.parse_args(argv)
    if a.render:
        return render(Path(a.render), Path(a.out))
    periodic = []
    for spec in a.periodic if a.periodic is not None else ["compact:100"]:
        name, _, every = spec.partition(":")
        if name not in PERIODIC or not every.isdigit():
            ap.error(f"--periodic {spec!r}: expected CMD:EVERY with CMD one of {', '.join(PERIODIC)}")
        periodic.append((name, int(every)))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip() or "n/a"
    tmp = Path(tempfile.mkdtemp(prefix="memsnap-soak-"))
    churn = subprocess.Popen([sys.executable, str(HERE / "churn.py"), "--seed", str(a.seed), "--size",
                              str(a.churn_size), "--max-mib", str(a.churn_max_mib)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert churn.stdout.readline().strip() == "ready"
        la0 = loadavg()
        log(f"soak: {a.count} captures, interval {a.interval}, keep {a.keep}, periodic {periodic}, load {la0}")
        res = soak(str(tmp / "store"), a.count, a.interval, a.keep, periodic, a.match, a.record_arg,
                   partial=out / "soak.partial.json",
                   partial_meta={"bench_args": list(argv if argv is not None else sys.argv[1:]), "commit": commit,
                                 "loadavg_start": la0, "churn": {"seed": a.seed, "size": a.churn_size, "started": None}})
        res["store_bytes"] = du(str(tmp / "store"))
    finally:
        _, churn_err = churn.communicate("quit\n", timeout=60)
        shutil.rmtree(tmp, ignore_errors=True)
    res.update(bench_args=list(argv if argv is not None else sys.argv[1:]), commit=commit, loadavg_start=la0,
               loadavg_end=loadavg(), churn={"seed": a.seed, "size": a.churn_size,
                                             "started": int(churn_err.split()[-1]) if churn_err.strip() else None})
    res["growth"] = growth(res["samples"])
    res["periodic_growth"] = {n: periodic_growth(p["runs"]) for n, p in res["periodic"].items()}
    (out / "soak.json").write_text(json.dumps(res, indent=1))
    md = markdown(res)
    (out / "soak.md").write_text(md)
    try:
        plot(res, out / "soak.png")
    except ImportError:
        log("matplotlib missing (pip install 'memsnap[analyze]'): no plot")
    print(md)
    g = res["growth"]
    ok = (abs(g["rss_growth"]) <= 0.05 and g["fds_min"] == g["fds_max"] and g["threads_min"] == g["threads_max"])
    log(f"steady state: {'yes' if ok else 'NO'} (RSS {g['rss_growth'] * 100:+.1f} %, fds {g['fds_min']}-"
        f"{g['fds_max']}, threads {g['threads_min']}-{g['threads_max']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
