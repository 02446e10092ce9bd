#!/usr/bin/env python3
"""Page-level commands against their floor (issue 15): `memsnap sizes --source pages`, `memsnap diff --source
pages` and `memsnap shared --groups command` each against a plain DuckDB query over the same Parquet files that
computes the same core figures, with the same DuckDB threads and memory limit.

    python bench/floor_bench.py --store /tmp/memsnap-floor-store --build [--pages 5M] [--procs 1000] [--seed 7]
                                [--repeat 5] [--ops sizes,diff,shared] [--out bench/out]

Example (builds a 5M-page, two-snapshot store on first use, about 20 s, then 5 interleaved runs of each):

    python bench/floor_bench.py --store /tmp/memsnap-floor-store --build --repeat 5

What it does:

1. The store (``--build``, when ``--store`` holds no snapshot yet): two snapshots of one synthetic machine
   with ``bench/synth.py``, exactly as ``bench/analyzer_bench.py`` makes them (same seed, hence the same
   boot id, processes, pids and start times; the first with ``--pages`` pages, the second 2 % bigger, PFNs
   renumbered).  ``sizes`` and ``shared`` read the latest snapshot, ``diff`` both.
2. The floors, each a plain DuckDB query over exactly the Parquet files of the snapshot(s) it needs (found by
   file name: the commit table's files are named by snapshot id, and ids sort by time), in a fresh process
   (``python -c``: interpreter start + ``import duckdb`` + connect + query + fetch):

   * sizes: present pages LEFT JOIN frames on the PFN, per pid: rss = pages counted, pss = the sum of each
     page's kernel fixed-point share ``(page_size << 12) // mapcount`` (``page_size << 12`` when mapcount < 2)
     shifted right by 22 once per pid, uss = pages with mapcount <= 1; counted = not the zero page (kpageflags
     bit 24) and not hugetlb (bit 17).  What memsnap's ``page_mapping_facts`` + process view compute.
   * diff: the pages of the two snapshots, each LEFT JOIN its frames, FULL JOIN on (pid, vpn), per pid of the
     processes with the same (pid, starttime) in both: became_private, became_shared, new, gone, swapped out,
     swapped in (kB), the rules of ``queries/page_transitions.sql``.
   * shared: present, counted pages of the non-kernel-thread processes JOIN frames, grouped by (command,
     pfn); a group's USS = frames whose mapcount all comes from the group (``queries/shared_groups.sql``).
     The command is memsnap's name for the process (``queries/process_commands.sql``, its text run over the
     snapshot's processes file: for an interpreter the program it runs, else comm), so both group the same
     processes under the same keys.

   The floors do not exclude pages of VM_PFNMAP/VM_IO/hugetlb mappings (VmFlags pf, io, ht), nor pages
   outside every mapping, as memsnap does with its page -> mapping join: on recorder (and synth.py) output no
   present page lies in such a mapping, and the results are checked equal to memsnap's, pid by pid (group by
   group), on every run.
3. memsnap: the CLI in a fresh process (``memsnap <command> STORE -f json``), whole process.
4. Medians of ``--repeat`` runs, interleaved (memsnap and floor alternate which goes first), after one
   unmeasured warm-up run of each (page cache).  Reported: memsnap wall (whole CLI process), floor query
   only (connect excluded: query + fetch), floor whole process, the ratios memsnap / floor for both, CPU
   seconds and peak RSS (``ru_maxrss`` from ``wait4``) of each child.  Threads and memory limit: what
   memsnap's ``Store`` sets (read from a store it opens; DuckDB's default thread count, the memory limit of
   ``MEMSNAP_MEMORY_LIMIT`` or ``common.settings.DEFAULT_MEMORY_LIMIT``), set the same in the floor.

Results: ``<out>/floor.json`` and ``<out>/floor.md``.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchutil import du, loadavg, log, med, memsnap_cmd, run  # noqa: E402  (bench/benchutil.py)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

OPS = ("sizes", "diff", "shared")
OP_LABEL = {"sizes": "`sizes --source pages`", "diff": "`diff --source pages`", "shared": "`shared --groups command`"}
MEMSNAP_ARGS = {"sizes": ["sizes", "--source", "pages"], "diff": ["diff", "--source", "pages"],
                "shared": ["shared", "--groups", "command"]}
#: the figures compared with memsnap's JSON output, per op (memsnap's column names)
FIGURES = {"sizes": ("rss", "pss", "uss"),
           "diff": ("became_private_kb", "became_shared_kb", "new_pages_kb", "gone_pages_kb", "swapped_out_kb",
                    "swapped_in_kb"),
           "shared": ("uss_kb",)}
KEY = {"sizes": "pid", "diff": "pid", "shared": "group"}

MASK = (1 << 55) - 1  # pagemap PFN bits (0-54)
PRESENT = 1 << 63  # pagemap bit 63: `entry >= PRESENT` is a range filter DuckDB pushes into the scan

# The floor queries.  {pages_a}, {frames_a}, ... are Parquet file lists; {ps} the page size in bytes.
FLOOR_SQL = {
    "sizes": """
SELECT p.pid,
       count(*) * {ps} // 1024 AS rss,
       CAST(sum(CASE WHEN f.mapcount >= 2 THEN ({ps} << 12) // f.mapcount ELSE {ps} << 12 END) AS BIGINT) >> 22
           AS pss,
       count(*) FILTER (WHERE coalesce(f.mapcount, 0) <= 1) * {ps} // 1024 AS uss
FROM read_parquet({pages_a}) p LEFT JOIN read_parquet({frames_a}) f ON f.pfn = p.entry & {mask}
WHERE p.entry >= {present} AND coalesce((f.flags >> 24) & 1 = 0 AND (f.flags >> 17) & 1 = 0, true)
GROUP BY p.pid
""",
    "diff": """
WITH same AS (
    SELECT pid FROM read_parquet({processes_b}) b JOIN read_parquet({processes_a}) a USING (pid, starttime_ticks)
),
b AS (SELECT p.pid, p.vpn, p.entry, f.mapcount FROM read_parquet({pages_b}) p
      LEFT JOIN read_parquet({frames_b}) f ON p.entry >= {present} AND f.pfn = p.entry & {mask}),
a AS (SELECT p.pid, p.vpn, p.entry, f.mapcount FROM read_parquet({pages_a}) p
      LEFT JOIN read_parquet({frames_a}) f ON p.entry >= {present} AND f.pfn = p.entry & {mask}),
j AS (SELECT coalesce(a.pid, b.pid) AS pid, b.entry AS be, a.entry AS ae, b.mapcount AS bm, a.mapcount AS am
      FROM b FULL JOIN a ON a.pid = b.pid AND a.vpn = b.vpn)
SELECT pid,
    count(*) FILTER (WHERE be >= {present} AND ae >= {present} AND (be & {mask}) <> (ae & {mask})
                     AND bm > 1 AND am <= 1) * {ps} // 1024 AS became_private_kb,
    count(*) FILTER (WHERE be >= {present} AND ae >= {present} AND bm <= 1 AND am > 1) * {ps} // 1024
        AS became_shared_kb,
    count(*) FILTER (WHERE be IS NULL) * {ps} // 1024 AS new_pages_kb,
    count(*) FILTER (WHERE ae IS NULL) * {ps} // 1024 AS gone_pages_kb,
    count(*) FILTER (WHERE be >= {present} AND (ae >> 62) & 1 = 1) * {ps} // 1024 AS swapped_out_kb,
    count(*) FILTER (WHERE (be >> 62) & 1 = 1 AND ae >= {present}) * {ps} // 1024 AS swapped_in_kb
FROM j WHERE pid IN (SELECT pid FROM same)
GROUP BY pid
""",
    "shared": """
WITH cmds AS (
{commands_a}
),
named AS (
    SELECT p.pid, coalesce(c.command, p.comm, '?') AS grp
    FROM read_parquet({processes_a}) p LEFT JOIN cmds c USING (pid)
    WHERE NOT coalesce(p.kernel_thread, false) AND p.status IN ('ok', 'partial')
),
-- each group as a small number (the (group, frame) aggregate then hashes integers, not names)
mem AS (SELECT pid, grp, dense_rank() OVER (ORDER BY grp) AS g FROM named),
fr AS (
    SELECT mem.g, p.entry & {mask} AS pfn, count(*) AS n, any_value(f.mapcount) AS mapcount
    FROM read_parquet({pages_a}) p JOIN mem USING (pid) JOIN read_parquet({frames_a}) f ON f.pfn = p.entry & {mask}
    WHERE p.entry >= {present} AND (f.flags >> 24) & 1 = 0 AND (f.flags >> 17) & 1 = 0
    GROUP BY mem.g, p.entry & {mask}
)
SELECT (SELECT any_value(grp) FROM mem WHERE mem.g = fr.g) AS "group",
       count(*) FILTER (WHERE n >= mapcount) * {ps} // 1024 AS uss_kb
FROM fr GROUP BY g
""",
}


def parse_count(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9}.get(s[-1:], 1)
    return int(float(s[:-1] if s[-1:] in "KMG" else s) * mult)


def snapshot_ids(store: str) -> list[str]:
    """Committed snapshot ids, oldest first: the commit table's file names (ids sort by capture time)."""
    return sorted(os.path.basename(p)[:-len(".parquet")] for p in glob.glob(os.path.join(store, "snapshots", "*", "*",
                                                                                          "[0-9]*.parquet")))


def files(store: str, table: str, sid: str) -> list[str]:
    return sorted(glob.glob(os.path.join(store, table, "*", "*", sid + ".parquet")))


def floor_sql(store: str, op: str, ps: int) -> str:
    ids = snapshot_ids(store)
    b, a = ids[-2] if len(ids) > 1 else None, ids[-1]
    lists = {}
    for t in ("pages", "frames", "processes"):
        for side, sid in (("a", a), ("b", b)):
            if sid:
                lists[f"{t}_{side}"] = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files(store, t, sid)) + "]"
    # the group names of `shared --groups command`: memsnap's own rule (queries/process_commands.sql: the program
    # an interpreter runs, else comm), its text run over the snapshot's processes file, so the keys are the same
    rule = (ROOT / "queries" / "process_commands.sql").read_text()
    assert rule.count("FROM processes\n") == 1, "queries/process_commands.sql: expected one `FROM processes`"
    lists["commands_a"] = rule.replace("FROM processes\n", f"FROM read_parquet({lists['processes_a']}, "
                                                          "hive_partitioning = true)\n")
    return FLOOR_SQL[op].format(ps=ps, mask=MASK, present=PRESENT, **lists)


# ---------------------------------------------------------------------------------------------- children

def floor_child(op: str, store: str, threads: str, memory_limit: str, out: str) -> None:
    """A whole floor process: import duckdb, connect, set threads and memory limit, query, fetch."""
    t0 = time.perf_counter()
    import duckdb
    import_s = time.perf_counter() - t0
    con = duckdb.connect(":memory:")
    con.execute("SET threads = ?", [int(threads)])
    con.execute("SET memory_limit = ?", [memory_limit])
    t = time.perf_counter()
    ids = snapshot_ids(store)
    ps = con.execute("SELECT page_size_bytes FROM read_parquet(?)", [files(store, "snapshots", ids[-1])]).fetchone()[0]
    cur = con.execute(floor_sql(store, op, ps))
    names = [d[0] for d in cur.description]
    rows = cur.fetchall()
    query_s = time.perf_counter() - t
    Path(out).write_text(json.dumps([dict(zip(names, r)) for r in rows]))
    print(json.dumps({"import_s": import_s, "query_s": query_s, "rows": len(rows),
                      "threads": con.execute("SELECT current_setting('threads')").fetchone()[0],
                      "memory_limit": con.execute("SELECT current_setting('memory_limit')").fetchone()[0]}))


def settings_child(store: str) -> None:
    """The DuckDB settings memsnap's analyzer runs with (its Store, opened as the CLI opens it)."""
    from analyzer import open_store
    with open_store([store]) as st:
        th, ml = st.con.execute("SELECT current_setting('threads'), current_setting('memory_limit')").fetchone()
    from common.settings import memory_limit
    import duckdb
    print(json.dumps({"threads": th, "memory_limit_setting": ml, "memory_limit": memory_limit(),
                      "duckdb": duckdb.__version__}))


# ---------------------------------------------------------------------------------------------- comparison

def compare(op: str, memsnap_rows: list[dict], floor_rows: list[dict]) -> dict:
    """Every figure of the floor against memsnap's, key by key (memsnap's diff rows without transitions, i.e.
    new or exited processes, have none to compare)."""
    key, figs = KEY[op], FIGURES[op]
    ms = {r[key]: r for r in memsnap_rows if all(r.get(f) is not None for f in figs)}
    fl = {r[key]: r for r in floor_rows}
    diffs = [k for k in ms.keys() & fl.keys() if any(ms[k][f] != fl[k][f] for f in figs)]
    return {"keys_memsnap": len(ms), "keys_floor": len(fl), "only_memsnap": len(ms.keys() - fl.keys()),
            "only_floor": len(fl.keys() - ms.keys()), "different": len(diffs), "examples": [
                {"key": k, "memsnap": {f: ms[k][f] for f in figs}, "floor": {f: fl[k][f] for f in figs}}
                for k in sorted(diffs, key=str)[:3]],
            "equal": not diffs and ms.keys() == fl.keys()}


# ---------------------------------------------------------------------------------------------- main

def build(store: Path, pages: int, procs: int, seed: int) -> list[dict]:
    gens = []
    for i, n in enumerate((pages, int(pages * 1.02))):
        log(f"== generating snapshot {i + 1} in {store}: {procs} processes, ~{n:,} pages")
        r = run([sys.executable, str(HERE / "synth.py"), "--procs", str(procs), "--pages", str(n),
                 "--seed", str(seed), "--out", str(store), "--quiet"])
        info = json.loads(r["stdout"].strip().splitlines()[-1])
        info.update(generate_wall_s=r["wall_s"], generate_maxrss_kb=r["maxrss_kb"])
        gens.append(info)
        log(f"   {info['pages_rows']:,} pages rows, {info['frames_rows']:,} frames, {r['wall_s']:.1f} s")
    return gens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:4]))
    ap.add_argument("--store", required=False, help="store with at least two snapshots of one host (with --build: "
                                                    "made there when it holds none)")
    ap.add_argument("--build", action="store_true", help="generate the two-snapshot store if --store has none")
    ap.add_argument("--pages", type=parse_count, default=parse_count("5M"), help="pages of the first snapshot "
                                                                                 "(--build; default 5M)")
    ap.add_argument("--procs", type=int, default=1000, help="processes (--build; default 1000)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ops", default=",".join(OPS), help="comma separated: sizes,diff,shared")
    ap.add_argument("--repeat", type=int, default=5, help="measured runs of each (default 5)")
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--floor-child", nargs=5, help=argparse.SUPPRESS)
    ap.add_argument("--settings-child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.floor_child:
        floor_child(*a.floor_child)
        return 0
    if a.settings_child:
        settings_child(a.settings_child)
        return 0
    if not a.store:
        ap.error("--store is required")
    ops = [o.strip() for o in a.ops.split(",") if o.strip()]
    bad = [o for o in ops if o not in OPS]
    if bad:
        ap.error(f"unknown op(s) {', '.join(bad)}: choose from {', '.join(OPS)}")
    store = Path(a.store).resolve()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "args": {k: v for k, v in vars(a).items() if not k.endswith("child")}, "ops": {}}
    if not snapshot_ids(str(store)):
        if not a.build:
            ap.error(f"{store} holds no snapshot: pass --build to generate one")
        result["generated"] = build(store, a.pages, a.procs, a.seed)
    ids = snapshot_ids(str(store))
    if "diff" in ops and len(ids) < 2:
        ap.error(f"{store} holds {len(ids)} snapshot(s); diff needs two")
    result["store"] = {"path": str(store), "snapshots": ids, "bytes": du(str(store)),
                       "pages_files_bytes": {s: sum(os.path.getsize(f) for f in files(str(store), "pages", s))
                                             for s in ids[-2:]}}
    st = json.loads(run([sys.executable, __file__, "--settings-child", str(store)])["stdout"].strip().splitlines()[-1])
    result["settings"] = st
    log(f"== memsnap's DuckDB settings: threads {st['threads']}, memory limit {st['memory_limit']} "
        f"({st['memory_limit_setting']}); DuckDB {st['duckdb']}")

    work = Path(tempfile.mkdtemp(prefix="memsnap-floor-bench-"))
    ms_out, fl_out = work / "memsnap.json", work / "floor.json"

    def memsnap_run(op: str) -> dict:
        r = run(memsnap_cmd() + MEMSNAP_ARGS[op] + [str(store), "-f", "json"], cwd=str(work))
        ms_out.write_text(r["stdout"])
        return {"wall_s": r["wall_s"], "cpu_s": r["cpu_s"], "maxrss_kb": r["maxrss_kb"]}

    def floor_run(op: str) -> dict:
        r = run([sys.executable, __file__, "--floor-child", op, str(store), str(st["threads"]), st["memory_limit"],
                 str(fl_out)], cwd=str(work))
        d = json.loads(r["stdout"].strip().splitlines()[-1])
        d.update(wall_s=r["wall_s"], cpu_s=r["cpu_s"], maxrss_kb=r["maxrss_kb"])
        return d

    try:
        for op in ops:
            log(f"== {op}: warm-up")
            memsnap_run(op)
            floor_run(op)
            result["ops"][op] = {"memsnap": [], "floor": [], "checks": []}
        for i in range(a.repeat):
            for op in ops:
                res = result["ops"][op]
                pair = [("memsnap", memsnap_run), ("floor", floor_run)]
                for who, fn in (pair if i % 2 == 0 else pair[::-1]):
                    res[who].append(fn(op))
                chk = compare(op, json.loads(ms_out.read_text()), json.loads(fl_out.read_text()))
                res["checks"].append(chk)
                m, f = res["memsnap"][-1], res["floor"][-1]
                log(f"   run {i + 1} {op:6s}: memsnap {m['wall_s']:.2f} s ({m['maxrss_kb'] / 1024:.0f} MiB), floor "
                    f"query {f['query_s']:.2f} s, process {f['wall_s']:.2f} s ({f['maxrss_kb'] / 1024:.0f} MiB); "
                    f"{'equal' if chk['equal'] else 'DIFFERENT: ' + json.dumps(chk)}")
    finally:
        for p in (ms_out, fl_out):
            p.unlink(missing_ok=True)
        work.rmdir()

    for op, res in result["ops"].items():
        ms, fl = res["memsnap"], res["floor"]
        s = {"memsnap_s": med([r["wall_s"] for r in ms]), "memsnap_cpu_s": med([r["cpu_s"] for r in ms]),
             "memsnap_maxrss_kb": med([r["maxrss_kb"] for r in ms]),
             "floor_query_s": med([r["query_s"] for r in fl]), "floor_process_s": med([r["wall_s"] for r in fl]),
             "floor_cpu_s": med([r["cpu_s"] for r in fl]), "floor_import_s": med([r["import_s"] for r in fl]),
             "floor_maxrss_kb": med([r["maxrss_kb"] for r in fl]),
             "equal": all(c["equal"] for c in res["checks"]), "keys": res["checks"][-1]["keys_floor"]}
        s["ratio_query"] = s["memsnap_s"] / s["floor_query_s"]
        s["ratio_process"] = s["memsnap_s"] / s["floor_process_s"]
        res["summary"] = s
    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    (out / "floor.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "floor.md").write_text(markdown(result))
    log(f"wrote {out / 'floor.json'}, {out / 'floor.md'} in {result['total_s']:.0f} s")
    sys.stdout.write(markdown(result))
    return 0


def markdown(r: dict) -> str:
    a, st = r["args"], r["settings"]
    ids = r["store"]["snapshots"]
    L = ["## Page-level commands against their floor (`bench/floor_bench.py`, issue 15)", ""]
    L.append(f"Store `{r['store']['path']}` ({len(ids)} snapshots, {r['store']['bytes'] / 1e6:.0f} MB; pages files of "
             "the last two: " + ", ".join(f"{b / 1e6:.1f} MB" for b in r["store"]["pages_files_bytes"].values()) +
             "). memsnap = the CLI in a fresh process (`memsnap <command> STORE -f json`). Floor = a plain DuckDB "
             "query over the same Parquet files computing the same core figures (sizes: rss/pss/uss per pid; diff: "
             "the six page transitions per pid; shared: group USS by command), results checked equal to memsnap's "
             "key by key on every run; *query* = query + fetch, *process* = the whole floor child (python start, "
             f"`import duckdb`, connect, query). Both with DuckDB {st['duckdb']}, threads {st['threads']}, "
             f"memory limit {st['memory_limit']} (memsnap's settings). Medians of {a['repeat']} interleaved runs "
             f"after a warm-up. Load average {r['loadavg_start']} at start, {r['loadavg_end']} at the end.")
    L += ["", "| command | memsnap s | floor query s | floor process s | memsnap / floor query | memsnap / floor "
          "process | CPU s memsnap / floor | peak RSS MiB memsnap / floor | equal results |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for op, res in r["ops"].items():
        s = res["summary"]
        L.append(f"| {OP_LABEL[op]} | {s['memsnap_s']:.2f} | {s['floor_query_s']:.2f} | {s['floor_process_s']:.2f} | "
                 f"{s['ratio_query']:.1f}x | {s['ratio_process']:.1f}x | {s['memsnap_cpu_s']:.1f} / "
                 f"{s['floor_cpu_s']:.1f} | {s['memsnap_maxrss_kb'] / 1024:,.0f} / {s['floor_maxrss_kb'] / 1024:,.0f} | "
                 f"{'yes' if s['equal'] else 'NO'} ({s['keys']:,} {'groups' if op == 'shared' else 'pids'}) |")
    L.append("\nTarget (issue 15): memsnap <= 2x its floor.")
    L.append(f"\nTotal benchmark time {r['total_s']:.0f} s.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
