#!/usr/bin/env python3
"""Analyzer scaling: sizes --source pages, diff --source pages and shared --groups command on synthetic
stores of 1M, 5M (and, with --full, 50M) pages; then the largest store out of core (DuckDB memory_limit).

    python bench/analyzer_bench.py [--sizes 1M,5M] [--full] [--repeat 3] [--repeat-big 1]
                                   [--memory-limit 500MB] [--quick] [--out bench/out] [--workdir DIR] [--keep]

What it does:

1. For each size, two snapshots of one synthetic machine with ``bench/synth.py`` (same seed, hence the same
   boot id, processes, pids and start times): the first with N pages, the second with N * 1.02 (every
   process a little bigger: the generator scales anonymous memory; frame ids are renumbered, so most PFNs
   differ between the two snapshots, the worst case for page-level transitions).  Both are valid,
   self-consistent snapshots (frames.mapcount = pages referencing the frame, smaps = pages, ...).
2. Each operation runs through the library in a fresh subprocess (``open_store`` + the function, exactly
   what the CLI calls, without formatting): ``sizes(source="pages")`` on the latest snapshot,
   ``diff(source="pages")`` between the two, ``shared("groups", groups="command")`` on the latest.  Wall
   time of the operation (imports excluded; store opening included), wall time of the whole child, and
   the child's peak RSS (``ru_maxrss`` from ``wait4``).  Medians of ``--repeat`` runs (``--repeat-big``
   at the largest size).  Cost per million pages = operation seconds / (pages rows of the snapshot(s)
   read, in millions): for diff, both snapshots count.
3. Out of core: the same three operations on the largest store with ``open_store(memory_limit=...)``
   (default 500MB; DuckDB spills to ``<workdir>/.tmp``), against the unlimited runs of step 2.

``--full`` adds 50M pages (5,000 processes; generating the two snapshots takes about 4 minutes and the
analysis several more).  ``--quick`` (used by nothing else): 1M and 2M pages, one run each.

Results: ``<out>/analyzer.json`` and ``<out>/analyzer.md``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from benchutil import du, loadavg, log, med, run  # noqa: E402  (bench/benchutil.py)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

OPS = ("sizes", "diff", "shared")
OP_LABEL = {"sizes": "`sizes --source pages`", "diff": "`diff --source pages`", "shared": "`shared --groups command`"}


def parse_count(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9}.get(s[-1:], 1)
    return int(float(s[:-1] if s[-1:] in "KMG" else s) * mult)


def label(n: int) -> str:
    return f"{n / 1e6:g}M"


# ---------------------------------------------------------------------------------------------- the child

def child_op(store: str, op: str, memory_limit: str) -> None:
    t0 = time.perf_counter()
    from analyzer import open_store
    import_s = time.perf_counter() - t0
    t = time.perf_counter()
    with open_store([store], memory_limit=memory_limit or None) as st:
        open_s = time.perf_counter() - t
        if op == "sizes":
            r = st.sizes(source="pages")  # the latest snapshot
        elif op == "diff":
            r = st.diff(source="pages")  # the host's last two snapshots
        else:
            r = st.shared("groups", groups="command")  # the latest snapshot
        rows = len(r.rows)
        limit = st.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
    op_s = time.perf_counter() - t
    print(json.dumps({"import_s": import_s, "open_s": open_s, "op_s": op_s, "rows": rows, "memory_limit": limit}))


# ---------------------------------------------------------------------------------------------- main

def measure(store: str, op: str, memory_limit: str, repeat: int, cwd: str) -> dict:
    runs = []
    for _ in range(repeat):
        r = run([sys.executable, __file__, "--child", store, op, memory_limit], cwd=cwd)
        d = json.loads(r["stdout"].strip().splitlines()[-1])
        d.update(wall_s=r["wall_s"], maxrss_kb=r["maxrss_kb"], cpu_s=r["cpu_s"])
        runs.append(d)
        log(f"   {op:6s} limit={memory_limit or 'default':>7}: op {d['op_s']:.2f} s, child {r['wall_s']:.2f} s, "
            f"peak RSS {r['maxrss_kb'] / 1024:.0f} MiB, {d['rows']} rows")
    return {"runs": runs, "op_s": med([r["op_s"] for r in runs]), "wall_s": med([r["wall_s"] for r in runs]),
            "cpu_s": med([r["cpu_s"] for r in runs]), "maxrss_kb": med([r["maxrss_kb"] for r in runs]),
            "maxrss_kb_max": max(r["maxrss_kb"] for r in runs), "rows": runs[-1]["rows"],
            "memory_limit_setting": runs[-1]["memory_limit"]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=None, help="pages per store, comma separated (default 1M,5M; 1M,5M,50M with "
                                                  "--full)")
    ap.add_argument("--full", action="store_true", help="add the 50M-page store (several more minutes)")
    ap.add_argument("--quick", action="store_true", help="1M and 2M pages, one run each (for trying the script)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per operation (default 3)")
    ap.add_argument("--repeat-big", type=int, default=1, help="runs per operation on the largest store (default 1)")
    ap.add_argument("--memory-limit", default="500MB", help="DuckDB memory_limit for the out-of-core runs")
    ap.add_argument("--pages-per-proc", type=int, default=5000, help="processes = pages / this (default 5000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        child_op(*a.child)
        return 0
    if a.quick:
        sizes_list = [parse_count(x) for x in (a.sizes or "1M,2M").split(",")]
        a.repeat = a.repeat_big = 1
    else:
        sizes_list = [parse_count(x) for x in (a.sizes or ("1M,5M,50M" if a.full else "1M,5M")).split(",")]
    sizes_list.sort()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="memsnap-analyzer-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "args": {k: v for k, v in vars(a).items() if k != "child"}, "stores": {}, "ops": {},
                    "out_of_core": {}}
    try:
        import duckdb
        result["duckdb"] = duckdb.__version__
    except ImportError:
        pass
    try:
        for n in sizes_list:
            key = label(n)
            store = work / f"store-{key}"
            shutil.rmtree(store, ignore_errors=True)
            procs = max(50, n // a.pages_per_proc)
            gens = []
            for i, pages in enumerate((n, int(n * 1.02))):
                log(f"== generating {key} store, snapshot {i + 1}: {procs} processes, ~{pages:,} pages")
                r = run([sys.executable, str(HERE / "synth.py"), "--procs", str(procs), "--pages", str(pages),
                         "--seed", str(a.seed), "--out", str(store), "--quiet"])
                info = json.loads(r["stdout"].strip().splitlines()[-1])
                info.update(generate_wall_s=r["wall_s"], generate_maxrss_kb=r["maxrss_kb"])
                gens.append(info)
                log(f"   {info['pages_rows']:,} pages rows, {info['frames_rows']:,} frames, {r['wall_s']:.1f} s, "
                    f"peak {r['maxrss_kb'] / 1024:.0f} MiB")
            result["stores"][key] = {"pages_target": n, "procs": procs, "snapshots": gens,
                                     "pages_latest": gens[-1]["pages_rows"],
                                     "pages_both": gens[0]["pages_rows"] + gens[1]["pages_rows"],
                                     "store_bytes": du(str(store)), "path": str(store)}
            rep = a.repeat_big if n == sizes_list[-1] else a.repeat
            # warm the page cache (the store was just written, but not by this reader)
            run([sys.executable, __file__, "--child", str(store), "sizes", ""], cwd=str(work))
            res = {}
            for op in OPS:
                res[op] = measure(str(store), op, "", rep, str(work))
                pages_read = result["stores"][key]["pages_both" if op == "diff" else "pages_latest"]
                res[op]["pages_read"] = pages_read
                res[op]["s_per_mpage"] = res[op]["op_s"] / (pages_read / 1e6)
            result["ops"][key] = res
            # keep stores only as long as needed: the largest is used out of core below
            if n != sizes_list[-1] and not a.keep:
                shutil.rmtree(store, ignore_errors=True)

        big = label(sizes_list[-1])
        log(f"== out of core: {big} store with memory_limit={a.memory_limit}")
        store = result["stores"][big]["path"]
        for op in OPS:
            d = measure(store, op, a.memory_limit, a.repeat_big, str(work))
            base = result["ops"][big][op]
            d["time_vs_unlimited"] = d["op_s"] / base["op_s"]
            d["rss_vs_unlimited"] = d["maxrss_kb"] / base["maxrss_kb"]
            d["same_rows"] = d["rows"] == base["rows"]
            result["out_of_core"][op] = d
    finally:
        if not a.keep and not a.workdir:
            shutil.rmtree(work, ignore_errors=True)
    # linearity: cost per million pages at the largest size against the smallest
    keys = list(result["ops"])
    result["growth"] = {}
    for op in OPS:
        lo, hi = result["ops"][keys[0]][op], result["ops"][keys[-1]][op]
        result["growth"][op] = {
            "pages_ratio": hi["pages_read"] / lo["pages_read"], "time_ratio": hi["op_s"] / lo["op_s"],
            "s_per_mpage_ratio": hi["s_per_mpage"] / lo["s_per_mpage"], "rss_ratio": hi["maxrss_kb"] / lo["maxrss_kb"]}
    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    (out / "analyzer.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "analyzer.md").write_text(markdown(result))
    log(f"wrote {out / 'analyzer.json'}, {out / 'analyzer.md'} in {result['total_s']:.0f} s")
    return 0


def markdown(r: dict) -> str:
    a = r["args"]
    L = ["## Analyzer scaling and out-of-core (`bench/analyzer_bench.py`)", ""]
    L.append("Synthetic stores (`bench/synth.py`, seed %d, %d pages per process), each with two snapshots of the same "
             "machine (the second 2 %% bigger; PFNs renumbered, so page-level transitions are the worst case). "
             "Each operation runs through the library in a fresh subprocess: `open_store()` + the function the CLI "
             "calls (no output formatting). Op = seconds of open + operation (imports excluded); child = the whole "
             "subprocess; peak RSS = `ru_maxrss` of the child. Medians of %d runs (%d on the largest store). "
             "Load average %s at start, %s at the end." % (a["seed"], a["pages_per_proc"], a["repeat"],
                                                           a["repeat_big"], r["loadavg_start"], r["loadavg_end"]))
    L += ["", "| store | processes | pages rows (latest / both) | frames (latest) | store on disk | generated in |",
          "|---|---:|---:|---:|---:|---:|"]
    for k, s in r["stores"].items():
        g = s["snapshots"]
        L.append(f"| {k} | {s['procs']:,} | {s['pages_latest']:,} / {s['pages_both']:,} | {g[-1]['frames_rows']:,} | "
                 f"{s['store_bytes'] / 1e6:.0f} MB | {sum(x['generate_wall_s'] for x in g):.0f} s |")
    L += ["", "### Time and peak RSS by store size", "",
          "| operation | store | op s | child s | CPU s | s per M pages | peak RSS MiB | result rows |",
          "|---|---|---:|---:|---:|---:|---:|---:|"]
    for op in OPS:
        for k, res in r["ops"].items():
            d = res[op]
            L.append(f"| {OP_LABEL[op]} | {k} | {d['op_s']:.2f} | {d['wall_s']:.2f} | {d['cpu_s']:.1f} | "
                     f"{d['s_per_mpage']:.2f} | {d['maxrss_kb'] / 1024:,.0f} | {d['rows']:,} |")
    keys = list(r["ops"])
    L += ["", f"Growth from {keys[0]} to {keys[-1]} (pages read × ratio; time ratio; cost per page ratio, 1.0 = "
          "linear; peak RSS ratio):", ""]
    L += ["| operation | pages × | time × | cost per page × | peak RSS × |", "|---|---:|---:|---:|---:|"]
    for op, g in r["growth"].items():
        L.append(f"| {OP_LABEL[op]} | {g['pages_ratio']:.1f} | {g['time_ratio']:.1f} | {g['s_per_mpage_ratio']:.2f} | "
                 f"{g['rss_ratio']:.2f} |")
    big = keys[-1]
    L += ["", f"### Out of core: the {big} store with `open_store(memory_limit='{a['memory_limit']}')`", "",
          "| operation | op s (limited) | op s (default limit) | time × | peak RSS MiB (limited) | peak RSS MiB "
          "(default) | same result rows |", "|---|---:|---:|---:|---:|---:|---|"]
    for op, d in r["out_of_core"].items():
        base = r["ops"][big][op]
        L.append(f"| {OP_LABEL[op]} | {d['op_s']:.2f} | {base['op_s']:.2f} | {d['time_vs_unlimited']:.2f} | "
                 f"{d['maxrss_kb'] / 1024:,.0f} | {base['maxrss_kb'] / 1024:,.0f} | "
                 f"{'yes' if d['same_rows'] else 'NO'} |")
    if r["out_of_core"]:
        L.append(f"\nDuckDB settings seen by the children: limited `{next(iter(r['out_of_core'].values()))['memory_limit_setting']}`, "
                 f"default `{r['ops'][big]['sizes']['memory_limit_setting']}`; DuckDB {r.get('duckdb', '?')}. "
                 "Peak RSS includes the Python interpreter, pyarrow and the analyzer's imports (about 100 MiB).")
    if "50M" not in r["ops"]:
        L.append("\n50M pages: not run by default (`--full`).")
    L.append(f"\nTotal benchmark time {r['total_s']:.0f} s.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
