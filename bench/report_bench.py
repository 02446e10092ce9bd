#!/usr/bin/env python3
"""`memsnap report` against the sum of its sections' floors (issue 15): the report on a two-snapshot store,
timed section by section, and plain DuckDB queries computing each section's core figures.

    python bench/report_bench.py --store /tmp/memsnap-floor-store [--build] [--repeat 3] [--tree DIR ...]

Example (the store of ``bench/floor_bench.py --build``: two synthetic 5M-page snapshots of 1,000 processes;
the tree of main beside this one, interleaved in the same rounds):

    git archive main | tar -x -C /tmp/base
    python bench/report_bench.py --store /tmp/memsnap-floor-store --build --repeat 3 --tree /tmp/base

What it does:

1. The report: ``analyzer.open_store([STORE]).report()`` (the last two snapshots, ``--by command``, top 15: the
   CLI's defaults) in a fresh process per run, with this tree (and each ``--tree DIR``) first on PYTHONPATH;
   each section's time from the report's progress callback, the report's whole time (``build``: the sections
   and the page, not the interpreter, imports or opening the store), and a hash of the HTML (the trees must
   agree byte for byte).
2. The floors, in one fresh process (one DuckDB connection, memsnap's threads and memory limit), each a plain
   query over the Parquet files of the snapshot(s) it needs, computing a section's core figures:

   * ``sizes_after``, ``sizes_before``: rss/pss/uss per pid of each snapshot (``bench/floor_bench.py``'s sizes);
   * ``transitions``: became_private/new/gone ... per pid (``floor_bench.py``'s diff);
   * ``groups``: group USS by command name (``floor_bench.py``'s shared);
   * ``histogram``: distinct frames of the recorded processes by number of sharers;
   * ``pair_totals``: per pid the distinct frames it shares with another process (the ranking of the pairs);
   * ``reconcile``: distinct mapped frames by kind (anon, file, shmem).

   Sections and their floors: costs = groups; consumers = sizes_after; changes = sizes_before + sizes_after +
   transitions; sharing = groups + histogram + pair_totals; reconcile = reconcile.  The report's floor is the
   sum of the distinct floors (each computed once), the target ratio report / that sum ≤ 3.
3. Medians of ``--repeat`` interleaved rounds after one warm-up round (page cache).

Results: ``<out>/report.json`` and ``<out>/report.md``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from benchutil import loadavg, log, med, run  # noqa: E402  (bench/benchutil.py)
from floor_bench import FLOOR_SQL, MASK, PRESENT, build, files, parse_count, snapshot_ids  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

EXTRA_SQL = {
    "histogram": """
WITH fr AS (
    SELECT p.entry & {mask} AS pfn, count(DISTINCT p.pid) AS sharers, any_value(f.mapcount) AS mapcount
    FROM read_parquet({pages_a}) p JOIN read_parquet({frames_a}) f ON f.pfn = p.entry & {mask}
    WHERE p.entry >= {present} AND (f.flags >> 24) & 1 = 0 AND (f.flags >> 17) & 1 = 0
    GROUP BY 1
)
SELECT CASE WHEN sharers <= 2 THEN sharers ELSE CAST(2 ** ceil(log2(sharers)) AS BIGINT) END AS hi,
       count(*) * {ps} // 1024 AS kb
FROM fr GROUP BY hi ORDER BY hi
""",
    "pair_totals": """
WITH pf AS (
    SELECT DISTINCT p.pid, p.entry & {mask} AS pfn
    FROM read_parquet({pages_a}) p JOIN read_parquet({frames_a}) f ON f.pfn = p.entry & {mask}
    WHERE p.entry >= {present} AND (f.flags >> 24) & 1 = 0 AND (f.flags >> 17) & 1 = 0
),
fs AS (SELECT pfn, count(*) AS sharers FROM pf GROUP BY pfn HAVING count(*) >= 2)
SELECT pf.pid, count(*) AS shared_frames, sum(fs.sharers - 1)::BIGINT AS pair_frames
FROM pf JOIN fs USING (pfn) GROUP BY pf.pid ORDER BY shared_frames DESC, pf.pid
""",
    "reconcile": """
WITH fr AS (
    SELECT DISTINCT p.entry & {mask} AS pfn FROM read_parquet({pages_a}) p WHERE p.entry >= {present}
)
SELECT CASE WHEN (f.flags >> 12) & 1 = 1 THEN 'anon' WHEN (f.flags >> 14) & 1 = 1 THEN 'shmem' ELSE 'file' END
           AS kind, count(*) * {ps} // 1024 AS kb
FROM fr JOIN read_parquet({frames_a}) f USING (pfn) GROUP BY kind
""",
}
#: floor name -> (SQL template, which snapshot is "a")
FLOORS = {"sizes_after": (FLOOR_SQL["sizes"], "after"), "sizes_before": (FLOOR_SQL["sizes"], "before"),
          "transitions": (FLOOR_SQL["diff"], "after"), "groups": (FLOOR_SQL["shared"], "after"),
          **{k: (v, "after") for k, v in EXTRA_SQL.items()}}
SECTION_FLOORS = {"costs": ("groups",), "consumers": ("sizes_after",),
                  "changes": ("sizes_before", "sizes_after", "transitions"),
                  "sharing": ("groups", "histogram", "pair_totals"), "reconcile": ("reconcile",)}


def _lists(store: str, a: str, b: str | None) -> dict:
    out = {}
    for t in ("pages", "frames", "processes"):
        for side, sid in (("a", a), ("b", b)):
            if sid:
                out[f"{t}_{side}"] = "[" + ", ".join("'" + f.replace("'", "''") + "'"
                                                     for f in files(store, t, sid)) + "]"
    return out


def floors_child(store: str, threads: str, memory_limit: str) -> None:
    import duckdb
    con = duckdb.connect(":memory:")
    con.execute("SET threads = ?", [int(threads)])
    con.execute("SET memory_limit = ?", [memory_limit])
    ids = snapshot_ids(store)
    before, after = ids[-2], ids[-1]
    ps = con.execute("SELECT page_size_bytes FROM read_parquet(?)", [files(store, "snapshots", after)]).fetchone()[0]
    out = {}
    for name, (sql, a) in FLOORS.items():
        lists = _lists(store, after, before) if a == "after" else _lists(store, before, None)
        t = time.perf_counter()
        rows = con.execute(sql.format(ps=ps, mask=MASK, present=PRESENT, **lists)).fetchall()
        out[name] = {"s": time.perf_counter() - t, "rows": len(rows)}
    print(json.dumps(out))


def report_child(store: str) -> None:
    t0 = time.perf_counter()
    import matplotlib
    matplotlib.rcParams["svg.hashsalt"] = "report_bench"  # the charts' ids (and, SOURCE_DATE_EPOCH, their date)
    from analyzer import open_store                         # fixed: the trees' HTML compared byte for byte
    marks: list[tuple[int, float]] = []
    with open_store([store]) as st:
        t_open = time.perf_counter()
        t = time.perf_counter()
        rep = st.report(progress=lambda d, total: marks.append((d, time.perf_counter())))
        build_s = time.perf_counter() - t
    from analyzer.report import STEPS
    sections = {}
    for (d, t1), (_, t2) in zip(marks, marks[1:]):
        if d < len(STEPS):
            sections[STEPS[d]] = sections.get(STEPS[d], 0.0) + (t2 - t1)
    print(json.dumps({"build_s": build_s, "open_s": t_open - t0, "sections": sections,
                      "html_sha256": hashlib.sha256(rep.html.encode()).hexdigest(), "html_bytes": len(rep.html)}))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:4]))
    ap.add_argument("--store", help="store with at least two snapshots of one host")
    ap.add_argument("--build", action="store_true", help="generate the two-snapshot store (floor_bench's) if none")
    ap.add_argument("--pages", type=parse_count, default=parse_count("5M"))
    ap.add_argument("--procs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tree", action="append", default=[], help="another source tree to time in the same rounds")
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--floors-child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--report-child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.floors_child:
        floors_child(*a.floors_child)
        return 0
    if a.report_child:
        report_child(a.report_child)
        return 0
    if not a.store:
        ap.error("--store is required")
    store = str(Path(a.store).resolve())
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "args": {k: v for k, v in vars(a).items() if not k.endswith("child")}}
    if not snapshot_ids(store):
        if not a.build:
            ap.error(f"{store} holds no snapshot: pass --build to generate one")
        result["generated"] = build(Path(store), a.pages, a.procs, a.seed)
    st = json.loads(run([sys.executable, str(HERE / "floor_bench.py"), "--settings-child", store])["stdout"]
                    .strip().splitlines()[-1])
    result["settings"] = st
    trees = {"this": str(ROOT), **{f"tree{i + 1}": str(Path(t).resolve()) for i, t in enumerate(a.tree)}}
    result["trees"] = trees

    def report_run(tree: str) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("MEMSNAP_STORE", "PYTHONDONTWRITEBYTECODE")}
        env.update(PYTHONPATH=tree, SOURCE_DATE_EPOCH="0")
        r = run([sys.executable, __file__, "--report-child", store], env=env, cwd=tree)
        d = json.loads(r["stdout"].strip().splitlines()[-1])
        d.update(wall_s=r["wall_s"], cpu_s=r["cpu_s"], maxrss_kb=r["maxrss_kb"])
        return d

    def floors_run() -> dict:
        r = run([sys.executable, __file__, "--floors-child", store, str(st["threads"]), st["memory_limit"]])
        return json.loads(r["stdout"].strip().splitlines()[-1])

    runs: dict = {name: [] for name in trees}
    floor_runs: list = []
    for i in range(a.repeat + 1):
        order = list(trees.items())
        order = order if i % 2 == 0 else order[::-1]
        for name, tree in order:
            r = report_run(tree)
            log(f"round {i} {name}: build {r['build_s']:.1f} s; " +
                ", ".join(f"{k} {v:.1f}" for k, v in r["sections"].items()) + f"; {r['html_sha256'][:12]}")
            if i:
                runs[name].append(r)
        f = floors_run()
        log(f"round {i} floors: " + ", ".join(f"{k} {v['s']:.2f}" for k, v in f.items()))
        if i:
            floor_runs.append(f)
    fl = {k: med([f[k]["s"] for f in floor_runs]) for k in FLOORS}
    floor_sum = sum(fl.values())
    summary = {"floors_s": fl, "floor_sum_s": floor_sum,
               "section_floor_s": {s: sum(fl[k] for k in ks) for s, ks in SECTION_FLOORS.items()}}
    for name in trees:
        rs = runs[name]
        secs = {k: med([r["sections"].get(k, 0.0) for r in rs]) for k in rs[0]["sections"]}
        summary[name] = {"build_s": med([r["build_s"] for r in rs]), "wall_s": med([r["wall_s"] for r in rs]),
                         "maxrss_kb": med([r["maxrss_kb"] for r in rs]), "sections_s": secs,
                         "html_sha256": sorted({r["html_sha256"] for r in rs})}
        summary[name]["ratio"] = summary[name]["build_s"] / floor_sum
    result.update(runs=runs, floor_runs=floor_runs, summary=summary, loadavg_end=loadavg())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    md = markdown(result)
    (out / "report.md").write_text(md)
    sys.stdout.write(md)
    return 0


def markdown(r: dict) -> str:
    s, trees = r["summary"], list(r["trees"])
    L = [f"load average {r['loadavg_start']} at the start, {r['loadavg_end']} at the end; "
         f"medians of {r['args']['repeat']} rounds", "",
         "| section | floor queries | floor s | " + " | ".join(f"{t} s" for t in trees) + " |",
         "|---|---|---:|" + "---:|" * len(trees)]
    for sec in s[trees[0]]["sections_s"]:
        fk = SECTION_FLOORS.get(sec, ())
        L.append(f"| {sec} | {', '.join(fk) or '-'} | {s['section_floor_s'].get(sec, 0):.2f} | " +
                 " | ".join(f"{s[t]['sections_s'].get(sec, 0):.2f}" for t in trees) + " |")
    L.append(f"| **report (build)** | every floor once | **{s['floor_sum_s']:.2f}** | " +
             " | ".join(f"**{s[t]['build_s']:.2f}** ({s[t]['ratio']:.1f}×)" for t in trees) + " |")
    L.append("| whole process | | | " + " | ".join(f"{s[t]['wall_s']:.2f}" for t in trees) + " |")
    L += ["", "floors: " + ", ".join(f"{k} {v:.2f} s" for k, v in s["floors_s"].items()),
          "html: " + ", ".join(f"{t} {','.join(h[:12] for h in s[t]['html_sha256'])}" for t in trees), ""]
    return "\n".join(L)


if __name__ == "__main__":
    sys.exit(main())
