#!/usr/bin/env python3
"""Set sizes benchmark: `memsnap sizes` against smem on the same capture, and --source pages against smaps.

    python bench/sizes_bench.py [--procs 100,1000] [--pages-per-proc 5000] [--repeat 5] [--repeat-big 3]
                                [--out bench/out] [--workdir DIR] [--keep] [--no-profile]

What it does, in one run (about 3-4 minutes on 2 cores):

1. Generates synthetic stores with ``bench/synth.py`` (a subprocess each; wall time and peak RSS are
   reported): one per ``--procs`` value with ``procs * pages-per-proc`` pages rows (100 -> 0.5M,
   1,000 -> 5M), each also written as an smem tree (``DIR/proc/<pid>/smaps``...).
2. **memsnap vs smem** at each process count: ``smem -S DIR`` and ``memsnap sizes STORE --format json``
   (both with their default columns), interleaved, ``--repeat`` times each after one warm-up, in fresh
   subprocesses; ratio = median smem / median memsnap (target >= 10x at 1,000 processes).  Also the
   library: ``open_store()`` + ``sizes()`` timed inside one child process (imports excluded), ``--repeat``
   times.
3. **--source pages vs --source smaps** on the largest store (about 5M pages): the CLI with
   ``--format json``, ``--repeat-big`` times each, interleaved, in subprocesses; wall time and peak RSS
   (``ru_maxrss`` of each child from ``wait4``).
4. **Correctness**: on every store, ``sizes --source pages`` per process must equal the generator's
   smaps_rollup values (rss, pss, uss, swap, swappss, pss_anon/file/shmem: the generator's consistency
   and the analyzer's kernel rules), each mapping's page-derived figures must equal its smaps numbers
   (floored per mapping), and memsnap's smaps-based pss/rss/uss/swap/vss per process must equal smem's
   (``smem -S DIR -c 'pid pss rss uss swap vss' -H``).  Mismatches are counted, with examples.
5. **Analyzer profile** (``--no-profile`` skips it): ``queries/page_mapping_facts.sql`` under DuckDB's
   profiler on the largest store (operator CPU times), and the same for the restructured prototype
   ``bench/page_mapping_facts_alt.sql`` (checked to give the identical result).

Results: ``<out>/sizes.json``, ``<out>/sizes.md`` (the section ``bench/run.py`` puts into BENCHMARKS.md)
and ``<out>/sizes_profile.txt``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from benchutil import child_env, du, loadavg, log, med, memsnap_cmd, run  # noqa: E402  (bench/benchutil.py)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

CHECK_COLS = ["pid", "rss", "pss", "uss", "swap", "swappss", "pss_anon", "pss_file", "pss_shmem"]
ROLLUP_OF = {"rss": "rollup_rss_kb", "pss": "rollup_pss_kb",
             "uss": "rollup_private_clean_kb + rollup_private_dirty_kb", "swap": "rollup_swap_kb",
             "swappss": "rollup_swap_pss_kb", "pss_anon": "rollup_pss_anon_kb", "pss_file": "rollup_pss_file_kb",
             "pss_shmem": "rollup_pss_shmem_kb"}
SMEM_COLS = ["pid", "pss", "rss", "uss", "swap", "vss"]


# ---------------------------------------------------------------------------------------------- helpers

# ---------------------------------------------------------------------------------------------- children

def child_lib(store: str, source: str, repeat: int) -> None:
    """Library timing: imports first (not timed), then open_store + sizes, `repeat` times."""
    t0 = time.perf_counter()
    from analyzer import open_store
    import_s = time.perf_counter() - t0
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, rows = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        with open_store([store]) as st:
            r = st.sizes(source=source)
            rows = len(r.rows)
        times.append(time.perf_counter() - t)
    print(json.dumps({"import_s": import_s, "times_s": times, "rows": rows, "baseline_kb": base_kb,
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def _profile_tree(path: str, min_s: float = 0.02) -> tuple[list[str], list[tuple[float, str]]]:
    """Readable operator tree (operators with CPU time >= min_s, or with such descendants) and the top list."""
    p = json.load(open(path))
    lines, flat = [], []

    def walk(n, d):
        ex = n.get("extra_info", {}) or {}
        keep = {k: ex[k] for k in ("Join Type", "Conditions", "Groups", "Projections", "Expression", "Function")
                if k in ex}
        desc = "; ".join(f"{k}: {v if len(str(v)) < 140 else str(v)[:137] + '...'}" for k, v in keep.items())
        t = float(n.get("timing", 0) or 0)
        label = f"{n.get('name')} {t:.3f}s rows={n.get('intermediate_rows')}" + (f"  [{desc}]" if desc else "")
        sub = []
        for c in n.get("children", []):
            sub += walk(c, d + 1)
        flat.append((t, f"{n.get('name')} rows={n.get('intermediate_rows')}" + (f" [{desc[:160]}]" if desc else "")))
        if t >= min_s or sub:
            return ["  " * d + label] + sub
        return []

    for c in p.get("operator", p.get("children", [])):
        lines += walk(c, 0)
    flat.sort(key=lambda x: -x[0])
    return lines, flat[:8]


def child_analyze(store: str, alt_sql: str | None, profile_to: str | None) -> None:
    """page_mapping_facts on the store: timed (profiled if asked), per-mapping check against the smaps numbers,
    and the alternative SQL (timed, profiled, compared row for row)."""
    from analyzer import queries
    from analyzer.store import open_store

    out: dict = {}
    st = open_store([store])
    con = st.con
    ids = [s.snapshot_id for s in st.resolve()]
    variants = [("page_mapping_facts", queries.get("page_mapping_facts").sql)]
    if alt_sql:
        variants.append(("page_mapping_facts_alt", Path(alt_sql).read_text()))
    texts = []
    for name, sql in variants:
        prof = None
        if profile_to:
            prof = os.path.join(os.path.dirname(profile_to), f".{name}.profile.json")
            con.execute("PRAGMA enable_profiling='json'")
            con.execute(f"PRAGMA profiling_output='{prof}'")  # our own temp path, not user input
        t = time.perf_counter()
        con.execute(f"CREATE OR REPLACE TEMP TABLE f_{name} AS {sql}", {"snapshot_ids": ids})
        dt = time.perf_counter() - t
        if profile_to:
            con.execute("PRAGMA disable_profiling")
            tree, top = _profile_tree(prof)
            os.unlink(prof)
            texts.append(f"=== {name}: {dt:.2f} s wall (profiling on)\n\nTop operators by CPU time (summed over "
                         "threads):\n" + "\n".join(f"  {t:8.3f}s  {d}" for t, d in top)
                         + "\n\nOperator tree (operators >= 0.02 s and their ancestors):\n" + "\n".join(tree) + "\n")
            out.setdefault("top", {})[name] = [[round(t, 3), d] for t, d in top]
        out.setdefault("seconds", {})[name] = dt
    # per mapping: pages-derived figures (floored per mapping) against the smaps numbers of the same mapping
    q = """
        SELECT f.pid, f.idx, m.path, f.rss_pages * 4 AS rss, m.rss_kb, f.pss_fp >> 22 AS pss, m.pss_kb,
               f.uss_pages * 4 AS uss, m.private_clean_kb + m.private_dirty_kb AS uss_kb,
               f.swap_pages * 4 AS swap, m.swap_kb, f.swap_pss_fp >> 22 AS swappss, m.swap_pss_kb
        FROM f_page_mapping_facts f JOIN mappings m USING (snapshot_id, pid, idx)
        WHERE f.rss_pages * 4 IS DISTINCT FROM m.rss_kb OR f.pss_fp >> 22 IS DISTINCT FROM m.pss_kb
           OR f.uss_pages * 4 IS DISTINCT FROM m.private_clean_kb + m.private_dirty_kb
           OR f.swap_pages * 4 IS DISTINCT FROM m.swap_kb OR f.swap_pss_fp >> 22 IS DISTINCT FROM m.swap_pss_kb
        ORDER BY f.pid, f.idx"""
    cur = con.execute(q)
    names = [d[0] for d in cur.description]
    bad = [dict(zip(names, r)) for r in cur.fetchall()]
    out["mapping_rows"] = con.execute("SELECT count(*) FROM f_page_mapping_facts").fetchone()[0]
    out["mapping_mismatches"] = len(bad)
    out["mapping_examples"] = bad[:3]
    if alt_sql:
        cols = ", ".join(f'"{d[0]}"' for d in con.execute("SELECT * FROM f_page_mapping_facts LIMIT 0").description)
        diff = con.execute(f"SELECT (SELECT count(*) FROM (SELECT {cols} FROM f_page_mapping_facts EXCEPT ALL "
                           f"SELECT {cols} FROM f_page_mapping_facts_alt)), (SELECT count(*) FROM (SELECT {cols} "
                           f"FROM f_page_mapping_facts_alt EXCEPT ALL SELECT {cols} FROM f_page_mapping_facts))"
                           ).fetchone()
        out["alt_differences"] = list(diff)
    if profile_to:
        Path(profile_to).write_text("\n".join(texts))
    out["maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    st.close()
    print(json.dumps(out, default=str))


# ---------------------------------------------------------------------------------------------- checks

def rollup_values(store: str) -> dict[int, dict]:
    sys.path.insert(0, str(ROOT))
    import duckdb
    con = duckdb.connect()
    files = [str(p) for p in Path(store, "processes").rglob("*.parquet")]
    sel = ", ".join(f"{v} AS {k}" for k, v in ROLLUP_OF.items())
    rows = con.execute(f"SELECT pid, {sel} FROM read_parquet(?) WHERE NOT kernel_thread", [files]).fetchall()
    con.close()
    return {r[0]: dict(zip(ROLLUP_OF, r[1:])) for r in rows}


def compare(expected: dict[int, dict], got: dict[int, dict], cols: list[str]) -> dict:
    mism, examples = 0, []
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    for pid in sorted(set(expected) & set(got)):
        e, g = expected[pid], got[pid]
        diff = {c: {"expected": e.get(c), "memsnap": g.get(c)} for c in cols if e.get(c) != g.get(c)}
        if diff:
            mism += 1
            if len(examples) < 3:
                examples.append({"pid": pid, **diff})
    return {"processes": len(set(expected) & set(got)), "mismatches": mism, "missing_in_memsnap": missing[:10],
            "n_missing": len(missing), "extra_in_memsnap": extra[:10], "n_extra": len(extra), "examples": examples}


def parse_smem(text: str) -> dict[int, dict]:
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == len(SMEM_COLS) and f[0].isdigit():
            out[int(f[0])] = dict(zip(SMEM_COLS[1:], map(int, f[1:])))
    return out


# ---------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", default="100,1000", help="process counts, comma separated (default 100,1000)")
    ap.add_argument("--pages-per-proc", type=int, default=5000, help="pages rows per process (default 5000: "
                                                                      "1,000 processes -> 5M pages)")
    ap.add_argument("--repeat", type=int, default=5, help="repeats for memsnap vs smem (default 5)")
    ap.add_argument("--repeat-big", type=int, default=3, help="repeats for pages vs smaps (default 3)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--workdir", default=None, help="where stores are generated (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the generated stores")
    ap.add_argument("--no-profile", action="store_true", help="skip the EXPLAIN ANALYZE-style profile")
    ap.add_argument("--budget-s", type=float, default=300, help="soft time budget: fewer pages-vs-smaps repeats and no "
                                                                "profile when the machine is too slow (default 300)")
    ap.add_argument("--quick", action="store_true", help="100 and 500 processes, 2 + 1 repeats, no profile (for "
                                                         "trying the script)")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.quick and not a.child:
        a.procs, a.repeat, a.repeat_big, a.no_profile = "100,500", 2, 1, True

    if a.child:
        if a.child[0] == "lib":
            child_lib(a.child[1], a.child[2], int(a.child[3]))
        elif a.child[0] == "analyze":
            child_analyze(a.child[1], a.child[2] or None, a.child[3] or None)
        return 0

    t_all = time.perf_counter()
    procs_list = [int(x) for x in a.procs.split(",") if x.strip()]
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="memsnap-sizes-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    smem = shutil.which("smem") or ("/usr/bin/smem" if os.path.exists("/usr/bin/smem") else None)
    env = child_env()
    ms = memsnap_cmd()
    result: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_start": loadavg(),
                    "cpus": len(os.sched_getaffinity(0)), "smem": smem, "memsnap": " ".join(ms),
                    "repeat": a.repeat, "repeat_big": a.repeat_big, "stores": {}, "vs_smem": {},
                    "pages_vs_smaps": {}, "correctness": {}, "notes": []}
    try:
        import duckdb
        result["duckdb"] = duckdb.__version__
    except ImportError:
        pass
    if not smem:
        result["notes"].append("smem not found: smem comparisons skipped (apt-get install smem)")

    try:
        # ---------------------------------------------------------------- 1. stores
        for n in procs_list:
            store, sdir = work / f"store-{n}", work / f"smem-{n}"
            pages = n * a.pages_per_proc
            log(f"== generating {n} processes, ~{pages:,} pages")
            shutil.rmtree(store, ignore_errors=True)
            shutil.rmtree(sdir, ignore_errors=True)
            r = run([sys.executable, str(HERE / "synth.py"), "--procs", str(n), "--pages", str(pages), "--seed",
                     str(a.seed), "--out", str(store), "--smem-dir", str(sdir), "--quiet"], env=env)
            info = json.loads(r["stdout"].strip().splitlines()[-1])
            info.update(generate_wall_s=round(r["wall_s"], 2), generate_maxrss_kb=r["maxrss_kb"],
                        store_bytes=du(str(store)), smem_tree_bytes=du(str(sdir)), store=str(store),
                        smem_dir=str(sdir))
            result["stores"][n] = info
            log(f"   {info['pages_rows']:,} pages rows, {info['mappings_rows']:,} mappings, {info['frames_rows']:,} "
                f"frames, {r['wall_s']:.1f} s, peak {r['maxrss_kb'] / 1024:.0f} MiB")

        # ---------------------------------------------------------------- 2. memsnap vs smem
        for n in procs_list:
            info = result["stores"][n]
            store, sdir = info["store"], info["smem_dir"]
            cli = ms + ["sizes", store, "--format", "json"]
            sm = [smem, "-S", sdir] if smem else None
            log(f"== memsnap vs smem, {n} processes")
            run(cli, env=env, cwd=str(work))  # warm-up (page cache, .pyc)
            if sm:
                run(sm, env=env, cwd=str(work))
            t_cli, t_smem, rss_cli, rss_smem = [], [], [], []
            for _ in range(a.repeat):
                if sm:
                    r = run(sm, env=env, cwd=str(work))
                    t_smem.append(r["wall_s"])
                    rss_smem.append(r["maxrss_kb"])
                r = run(cli, env=env, cwd=str(work))
                t_cli.append(r["wall_s"])
                rss_cli.append(r["maxrss_kb"])
            rows_cli = len(json.loads(r["stdout"]))
            lib = json.loads(run([sys.executable, __file__, "--child", "lib", store, "smaps", str(a.repeat)],
                                 env=env, cwd=str(work))["stdout"])
            d = {"smem_s": t_smem, "memsnap_cli_s": t_cli, "memsnap_lib_s": lib["times_s"],
                 "memsnap_lib_import_s": lib["import_s"], "smem_median_s": med(t_smem),
                 "memsnap_cli_median_s": med(t_cli), "memsnap_lib_median_s": med(lib["times_s"]),
                 "smem_maxrss_kb": max(rss_smem) if rss_smem else None, "memsnap_cli_maxrss_kb": max(rss_cli),
                 "rows_memsnap": rows_cli}
            if sm:
                d["ratio_cli"] = d["smem_median_s"] / d["memsnap_cli_median_s"]
                d["ratio_lib"] = d["smem_median_s"] / d["memsnap_lib_median_s"]
            result["vs_smem"][n] = d
            log(f"   smem {d['smem_median_s'] or 0:.2f} s, memsnap CLI {d['memsnap_cli_median_s']:.2f} s, "
                f"library {d['memsnap_lib_median_s']:.3f} s (imports {lib['import_s']:.2f} s)")

        # ---------------------------------------------------------------- 3. pages vs smaps on the largest store
        big_n = max(procs_list)
        big = result["stores"][big_n]
        log(f"== --source pages vs smaps on {big['pages_rows']:,} pages ({big_n} processes)")
        cmds = {src: ms + ["sizes", big["store"], "--source", src, "--format", "json", "-c", " ".join(CHECK_COLS)]
                for src in ("smaps", "pages")}
        runs = {src: [] for src in cmds}
        last_out = {}
        for i in range(a.repeat_big):
            for src, cmd in cmds.items():
                r = run(cmd, env=env, cwd=str(work))
                runs[src].append(r)
                last_out[src] = r["stdout"]
                log(f"   {src}: {r['wall_s']:.2f} s, peak {r['maxrss_kb'] / 1024:.0f} MiB")
            # what is left after this loop: the correctness runs (~1 smaps CLI + smem per store) and the profile
            # (about one pages run for the shipped query, a third of one for the prototype)
            per_round = sum(r["wall_s"] for r in (runs["pages"][-1], runs["smaps"][-1]))
            rest = 15 + (0 if a.no_profile else 1.4 * runs["pages"][-1]["wall_s"])
            if i + 1 < a.repeat_big and time.perf_counter() - t_all + per_round + rest > a.budget_s:
                result["notes"].append(f"time budget: pages vs smaps stopped after {i + 1} of {a.repeat_big} repeats "
                                       f"(--budget-s {a.budget_s:g}; the machine was slow: load {loadavg()})")
                break
        result["repeat_big_done"] = len(runs["pages"])
        for src, rs in runs.items():
            result["pages_vs_smaps"][src] = {
                "wall_s": [r["wall_s"] for r in rs], "median_s": med([r["wall_s"] for r in rs]),
                "maxrss_kb": [r["maxrss_kb"] for r in rs], "median_maxrss_kb": med([r["maxrss_kb"] for r in rs])}
        p, s = result["pages_vs_smaps"]["pages"], result["pages_vs_smaps"]["smaps"]
        result["pages_vs_smaps"]["time_ratio_pages_over_smaps"] = p["median_s"] / s["median_s"]
        result["pages_vs_smaps"]["pages_rows"] = big["pages_rows"]
        result["pages_vs_smaps"]["pages_us_per_page"] = p["median_s"] / big["pages_rows"] * 1e6

        # ---------------------------------------------------------------- 4. correctness
        log("== correctness")
        for n in procs_list:
            info = result["stores"][n]
            c: dict = {}
            expected = rollup_values(info["store"])
            if n == big_n:
                pages_rows = json.loads(last_out["pages"])
            else:
                pages_rows = json.loads(run(ms + ["sizes", info["store"], "--source", "pages", "--format", "json",
                                                  "-c", " ".join(CHECK_COLS)], env=env, cwd=str(work))["stdout"])
            got = {r["pid"]: r for r in pages_rows}
            c["pages_vs_rollup"] = compare(expected, got, CHECK_COLS[1:])
            if smem:
                sm_out = run([smem, "-S", info["smem_dir"], "-c", " ".join(SMEM_COLS), "-H"], env=env,
                             cwd=str(work))["stdout"]
                sm_vals = parse_smem(sm_out)
                ms_rows = json.loads(run(ms + ["sizes", info["store"], "--format", "json", "-c", " ".join(SMEM_COLS)],
                                         env=env, cwd=str(work))["stdout"])
                c["smaps_vs_smem"] = compare(sm_vals, {r["pid"]: r for r in ms_rows}, SMEM_COLS[1:])
            result["correctness"][n] = c
            log(f"   {n} processes: pages vs rollup {c['pages_vs_rollup']['mismatches']} mismatches of "
                f"{c['pages_vs_rollup']['processes']}" + (f"; smaps vs smem {c['smaps_vs_smem']['mismatches']} of "
                                                          f"{c['smaps_vs_smem']['processes']}" if smem else ""))

        # ---------------------------------------------------------------- 5. analyzer query profile
        # The shipped query runs anyway (per-mapping check); profiling it costs little.  The prototype costs
        # about a third of a pages run more: skipped when the budget is already spent.
        alt = HERE / "page_mapping_facts_alt.sql"
        with_alt = not a.no_profile and alt.exists()
        pages_s = result["pages_vs_smaps"]["pages"]["median_s"]
        if with_alt and time.perf_counter() - t_all + 1.4 * pages_s > a.budget_s * 1.05:
            with_alt = False
            result["notes"].append(f"time budget: the prototype query was not run (--budget-s {a.budget_s:g}; load "
                                   f"{loadavg()})")
        log("== page_mapping_facts: per-mapping check" + ("" if a.no_profile else ", profile")
            + (", prototype" if with_alt else ""))
        prof_txt = out_dir / "sizes_profile.txt"
        r = run([sys.executable, __file__, "--child", "analyze", big["store"], str(alt) if with_alt else "",
                 "" if a.no_profile else str(prof_txt)], env=env, cwd=str(work))
        an = json.loads(r["stdout"])
        an["wall_s"] = r["wall_s"]
        result["analyze"] = an
        result["correctness"][big_n]["pages_per_mapping"] = {
            "mappings": an["mapping_rows"], "mismatches": an["mapping_mismatches"], "examples": an["mapping_examples"]}
        log(f"   {an['mapping_mismatches']} per-mapping mismatches of {an['mapping_rows']}; "
            + ", ".join(f"{k} {v:.2f} s" for k, v in an["seconds"].items()))
    finally:
        if not a.keep and not a.workdir:
            shutil.rmtree(work, ignore_errors=True)

    result["loadavg_end"] = loadavg()
    result["total_s"] = time.perf_counter() - t_all
    (out_dir / "sizes.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out_dir / "sizes.md").write_text(markdown(result))
    log(f"wrote {out_dir / 'sizes.json'}, {out_dir / 'sizes.md'} in {result['total_s']:.0f} s")
    return 0


def _ms(s):
    return f"{s * 1000:,.0f}" if s is not None else "n/a"


def _mib(kb):
    return f"{kb / 1024:,.0f}" if kb is not None else "n/a"


def markdown(r: dict) -> str:
    L = ["## Set sizes (`bench/sizes_bench.py`)", ""]
    stores = r["stores"]
    L.append("Synthetic stores from `bench/synth.py` (seeded; services of forked workers sharing libraries, "
             "COW anonymous memory and shmem, private heaps, swap), each also written as an smem tree "
             "(`proc/<pid>/smaps` with the same numbers) so smem and memsnap read the same capture. "
             f"Medians of {r['repeat']} interleaved runs (memsnap vs smem) and {r.get('repeat_big_done', r['repeat_big'])} "
             "(pages vs smaps), "
             "each in a fresh subprocess after one warm-up; peak RSS is `ru_maxrss` of the child. "
             f"Load average {r['loadavg_start']} at start, {r.get('loadavg_end')} at the end.")
    L += ["", "| processes | pages rows | mappings | frames | store on disk | smem tree | generated in | generator peak RSS |",
          "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, s in stores.items():
        L.append(f"| {int(n):,} | {s['pages_rows']:,} | {s['mappings_rows']:,} | {s['frames_rows']:,} | "
                 f"{s['store_bytes'] / 1e6:.1f} MB | {s['smem_tree_bytes'] / 1e6:.0f} MB | {s['generate_wall_s']:.1f} s | "
                 f"{_mib(s['generate_maxrss_kb'])} MiB |")
    L += ["", "### memsnap sizes against smem -S on the same capture (target ≥ 10× at 1,000 processes)", "",
          "| processes | smem -S ms | memsnap CLI ms | library ms | smem / CLI | smem / library | smem peak MiB | "
          "CLI peak MiB |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n, d in r["vs_smem"].items():
        ok = lambda x: "" if x is None else (" ✓" if x >= 10 else " ✗")
        rc, rl = d.get("ratio_cli"), d.get("ratio_lib")
        L.append(f"| {int(n):,} | {_ms(d['smem_median_s'])} | {_ms(d['memsnap_cli_median_s'])} | "
                 f"{_ms(d['memsnap_lib_median_s'])} | **{rc:.1f}×**{ok(rc) if int(n) >= 1000 else ''} | "
                 f"{rl:.1f}×{ok(rl) if int(n) >= 1000 else ''} | {_mib(d['smem_maxrss_kb'])} | "
                 f"{_mib(d['memsnap_cli_maxrss_kb'])} |" if rc is not None else
                 f"| {int(n):,} | n/a | {_ms(d['memsnap_cli_median_s'])} | {_ms(d['memsnap_lib_median_s'])} | n/a | n/a "
                 f"| n/a | {_mib(d['memsnap_cli_maxrss_kb'])} |")
    imp = [d["memsnap_lib_import_s"] for d in r["vs_smem"].values()]
    L += ["", "CLI: `memsnap sizes STORE --format json`; smem: `smem -S DIR`; both with their default columns "
          "(pid, user, command, swap, uss, pss, rss). Library: `open_store()` + `sizes()` in one warm process, "
          f"imports excluded (importing the analyzer took {min(imp):.2f}–{max(imp):.2f} s of each CLI run)."]
    pv = r["pages_vs_smaps"]
    if pv:
        L += ["", f"### --source pages against --source smaps ({pv['pages_rows']:,} pages rows)", "",
              "| source | CLI wall ms (median) | min–max ms | peak RSS MiB (median) |", "|---|---:|---:|---:|"]
        for src in ("smaps", "pages"):
            d = pv[src]
            L.append(f"| {src} | {_ms(d['median_s'])} | {_ms(min(d['wall_s']))}–{_ms(max(d['wall_s']))} | "
                     f"{_mib(d['median_maxrss_kb'])} |")
        L += ["", f"pages / smaps: {pv['time_ratio_pages_over_smaps']:.1f}× the time; "
              f"{pv['pages_us_per_page']:.2f} µs per pages row. Command: `memsnap sizes STORE --source SRC "
              f"--format json -c '{' '.join(CHECK_COLS)}'`."]
    an = r.get("analyze")
    if an:
        secs = an["seconds"]
        L += ["", "### Analyzer hotspot: `queries/page_mapping_facts.sql`", ""]
        if "top" in an:
            L.append("DuckDB profiler on the largest store (CPU seconds summed over threads; full trees in "
                     "`sizes_profile.txt`):")
            L += ["", "| query | wall s (profiling on) | top operators (CPU s) |", "|---|---:|---|"]
            for name, top in an["top"].items():
                tops = "; ".join(f"{d.split(' rows=')[0]} {t:.1f}" for t, d in top[:4])
                L.append(f"| {name} | {secs[name]:.2f} | {tops} |")
            if "alt_differences" in an:
                d = an["alt_differences"]
                L += ["", f"`bench/page_mapping_facts_alt.sql` (prototype: swap references counted by a GROUP BY "
                      f"over swapped rows instead of a window over every row; integer snapshot key; UBIGINT vpn "
                      f"bounds; boolean kinds) returned {'the identical result' if d == [0, 0] else f'DIFFERENT rows {d}'}"
                      f" in {secs['page_mapping_facts_alt']:.2f} s against {secs['page_mapping_facts']:.2f} s "
                      f"({secs['page_mapping_facts'] / secs['page_mapping_facts_alt']:.1f}× faster)."]
    L += ["", "### Correctness", "", "| processes | check | compared | mismatches |", "|---:|---|---:|---:|"]
    for n, c in r["correctness"].items():
        for key, label in (("pages_vs_rollup", "`--source pages` per process = generator's smaps_rollup "
                                                "(rss pss uss swap swappss pss_anon/file/shmem)"),
                           ("pages_per_mapping", "page-derived figures per mapping = its smaps numbers"),
                           ("smaps_vs_smem", "`--source smaps` pid pss rss uss swap vss = `smem -S`")):
            if key in c:
                x = c[key]
                cnt = x.get("processes", x.get("mappings"))
                extra = ""
                if x.get("n_missing") or x.get("n_extra"):
                    extra = f" (+{x.get('n_missing', 0)} missing, {x.get('n_extra', 0)} extra)"
                L.append(f"| {int(n):,} | {label} | {cnt:,} | {x['mismatches']}{extra} |")
    ex = [(n, k, c[k]["examples"][0]) for n, c in r["correctness"].items() for k in c if c[k].get("examples")]
    for n, k, e in ex[:3]:
        L.append(f"\nExample ({n} processes, {k}): `{json.dumps(e, default=str)}`")
    for note in r.get("notes", []):
        L.append(f"\nNote: {note}")
    L.append(f"\nTotal benchmark time {r['total_s']:.0f} s.")
    return "\n".join(L) + "\n"


if __name__ == "__main__":
    sys.exit(main())
