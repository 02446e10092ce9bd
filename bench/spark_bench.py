"""Spark (local[N]) against DuckDB on a synthetic store: sizes (pages, smaps), diff --source pages, shared.

    python bench/spark_bench.py --store /tmp/synth5m [--master local[2]] [--ops sizes,diff,shared,sizes_smaps]
                                [--repeat 1] [--timeout 1800] [--json out.json]

Build the store with bench/synth.py: two snapshots of one host (the second 2 % larger, the same seed), as
bench/analyzer_bench.py and bench/floor_bench.py --build make them, so that ``diff`` compares them.

Each engine runs the CLI in its own child process (``python -m cli ... -f json``), timed from outside.  Its peak
memory is the peak of the **sum** of the RSS of the child's whole process tree (the Python CLI and, on Spark,
the driver JVM it starts: a child of the CLI), sampled every 0.1 s from /proc (``ru_maxrss`` of children would
give the largest single process, not the sum of the Python and the JVM running together).  The two engines' stdout must be byte-identical (and
the JSON equal); Spark's stderr is checked for JVM log lines (log4j ``INFO``/``WARN``).  A run over
``--timeout`` seconds is killed and reported as a lower bound (``>N``).  CPU seconds (user + system) of the
tree are sampled from /proc too: on a shared machine, rows per CPU-second is the figure least bent by others' load.  Rows read: page rows of the latest
snapshot (sizes, shared) or of both (diff); per-core throughput = rows / (wall seconds x cores of the master).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = {
    "sizes": ["sizes", "--source", "pages", "-f", "json"],
    "diff": ["diff", "--source", "pages", "-f", "json"],
    "shared": ["shared", "--groups", "command", "-f", "json"],
    "sizes_smaps": ["sizes", "--source", "smaps", "-f", "json"],
}
LOG4J = re.compile(r"^\S+ \S+ (INFO|WARN|ERROR|DEBUG)\b|^(WARNING|INFO): |log4j|SLF4J|Using Spark's default", re.M)


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (clock ticks), from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def run(engine_args: list[str], op: list[str], store: str, timeout: float) -> dict:
    """Wall seconds, peak summed RSS of the process tree (MiB), return code, outputs."""
    cmd = [sys.executable, "-m", "cli", *engine_args, *op, "-S", store]
    env = {**os.environ, "PYTHONPATH": ROOT}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    peak = [0]
    done = threading.Event()

    cpu: dict[int, int] = {}

    def sample():
        while not done.is_set():
            tree = _tree(p.pid)
            peak[0] = max(peak[0], sum(_rss_kib(q) for q in tree))
            for q in tree:
                cpu[q] = max(cpu.get(q, 0), _cpu_ticks(q))
            done.wait(0.1)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out, err = p.communicate(timeout=timeout)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        killed = True
    dt = time.perf_counter() - t
    done.set()
    th.join()
    return {"s": dt, "peak_mib": peak[0] // 1024, "cpu_s": sum(cpu.values()) / os.sysconf("SC_CLK_TCK"),
            "rc": p.returncode,
            "killed": killed, "out": out.decode(), "err": err.decode()}


def rows_read(store: str) -> dict:
    import duckdb

    con = duckdb.connect()
    rows = con.execute(f"SELECT pages_rows FROM read_parquet('{store}/snapshots/**/*.parquet', hive_partitioning=1) "
                       "ORDER BY capture_start").fetchall()
    latest, both = rows[-1][0], rows[-1][0] + rows[-2][0]
    return {"sizes": latest, "shared": latest, "diff": both, "sizes_smaps": latest}


def cores_of(master: str) -> int:
    m = re.fullmatch(r"local\[(\d+)\]", master)
    return int(m[1]) if m else os.cpu_count()


def load() -> str:
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--ops", default="sizes,diff,shared,sizes_smaps")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run before it is killed (a lower bound)")
    ap.add_argument("--json", help="write every measurement here")
    a = ap.parse_args()
    cores = cores_of(a.master)
    rows = rows_read(a.store)
    print(f"store {a.store}; page rows read: {rows}; master {a.master} ({cores} cores); loadavg {load()}", flush=True)
    print("| operation | page rows read | DuckDB s | DuckDB peak MiB | Spark s | Spark peak MiB (tree: Python + JVM) "
          "| Spark rows/core-s | same JSON | load (1, 5, 15 min) after |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = []
    for name in a.ops.split(","):
        d = run([], OPS[name], a.store, a.timeout)
        s = run(["--engine", "spark", "--spark-master", a.master], OPS[name], a.store, a.timeout)
        for who, r in (("duckdb", d), ("spark", s)):
            if r["rc"] and not r["killed"]:
                print(f"{who} {name} failed (rc {r['rc']}): {r['err'][-2000:]}", file=sys.stderr)
        if d["killed"] or s["killed"] or d["rc"] or s["rc"]:
            same = "n/a"
        else:
            same = "yes (bytes)" if d["out"] == s["out"] else \
                ("yes (JSON)" if json.loads(d["out"]) == json.loads(s["out"]) else "NO")
        noise = [ln for ln in s["err"].splitlines() if LOG4J.search(ln)]
        tput = rows[name] / (s["s"] * cores) if name != "sizes_smaps" else float("nan")
        fmt = (lambda r: f">{r['s']:.0f} (killed)" if r["killed"] else f"{r['s']:.1f}")
        print(f"| {name} | {rows[name]:,} | {fmt(d)} | {d['peak_mib']} | {fmt(s)} | {s['peak_mib']} | "
              f"{'<' if s['killed'] else ''}{tput:,.0f} | {same} | {load()} |", flush=True)
        print(f"  CPU seconds of the process tree (sampled every 0.1 s): DuckDB {d['cpu_s']:.1f}, Spark "
              f"{s['cpu_s']:.1f}" + (f"; Spark page rows per CPU-second {rows[name] / s['cpu_s']:,.0f}"
                                     if name != "sizes_smaps" and s["cpu_s"] else ""), flush=True)
        if noise:
            print(f"  Spark stderr: {len(noise)} JVM log lines, e.g. {noise[0][:160]!r}", flush=True)
        results.append({"op": name, "rows": rows[name], "cores": cores, "duckdb": {k: d[k] for k in
                        ("s", "peak_mib", "cpu_s", "rc", "killed")}, "spark": {k: s[k] for k in ("s", "peak_mib", "cpu_s", "rc",
                                                                                 "killed")},
                        "same": same, "spark_stderr_log_lines": len(noise), "load": load(),
                        "spark_rows_per_core_s": tput})
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"store": a.store, "master": a.master, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
