#!/usr/bin/env python3
"""Run every benchmark in bench/ and write BENCHMARKS.md at the repository root.

    python bench/run.py [--only record] [--quick] [--full] [--out bench/out]

A benchmark is a ``bench/<name>_bench.py`` script that accepts ``--out DIR`` and writes
``DIR/<name>.json`` (every figure) and ``DIR/<name>.md`` (its section of BENCHMARKS.md).
Each runs in its own subprocess with the same Python; a failing one gets a failure note
in BENCHMARKS.md and makes this script exit non-zero.  ``make bench`` calls this.

``--quick`` passes ``--quick`` to every benchmark (small workloads, few repeats: for trying the
suite, not for figures); ``--full`` passes ``--full`` to the analyzer benchmark (adds 50M pages).
``install_bench.py`` (the Install size section) does the same work with ``--quick``: three real installs,
about 5 minutes.
The summary table at the top of BENCHMARKS.md checks every target of the issue against the JSON
results; a result not produced by this run (``--only``) is marked with its date.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _first(path: str, prefix: str) -> str | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _git(*args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def machine() -> list[tuple[str, str]]:
    mem_kb = _first("/proc/meminfo", "MemTotal")
    avail_kb = _first("/proc/meminfo", "MemAvailable")
    u = os.uname()
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()
    except OSError:
        thp = "n/a"
    try:
        load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        load = "n/a"
    versions = []
    for mod in ("numpy", "pyarrow"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            pass
    head = _git("rev-parse", "--short", "HEAD")
    dirty = _git("status", "--porcelain")
    rows = [
        ("CPUs (nproc)", f"{len(os.sched_getaffinity(0))} (of {os.cpu_count()} online)"),
        ("CPU model", _first("/proc/cpuinfo", "model name") or platform.processor() or "unknown"),
        ("memory", f"{int(mem_kb.split()[0]) / 2**20:.1f} GiB total, {int(avail_kb.split()[0]) / 2**20:.1f} GiB "
                   f"available at start" if mem_kb and avail_kb else "unknown"),
        ("kernel", f"{u.sysname} {u.release} {u.version} ({u.machine})"),
        ("THP", thp),
        ("load average at start", load),
        ("Python", f"{platform.python_version()} ({sys.executable}); {', '.join(versions)}"),
        ("running as", "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (not root: no PFNs, no kpage*)"),
        ("commit", f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"),
    ]
    return rows


def _load(out: Path, name: str, ran: set) -> tuple[dict | None, str]:
    p = out / f"{name}.json"
    if not p.exists():
        return None, ""
    try:
        d = json.loads(p.read_text())
    except ValueError:
        return None, ""
    note = "" if name in ran else f" _(from an earlier run, {datetime.fromtimestamp(p.stat().st_mtime, timezone.utc):%Y-%m-%d %H:%M})_"
    return d, note


def _mark(ok) -> str:
    return "–" if ok is None else ("✓" if ok else "✗")


def summary(out: Path, ran: set) -> list[str]:
    """One row per target of the issue, from the JSON results."""
    rows: list[tuple[str, str, str]] = []  # target, measured, mark
    rec, nrec = _load(out, "record", ran)
    live, nlive = _load(out, "live", ran)
    sz, nsz = _load(out, "sizes", ran)
    an, nan = _load(out, "analyzer", ran)
    imp, nimp = _load(out, "impact", ran)
    ins, nins = _load(out, "install", ran)
    mem, nmem = _load(out, "memory", ran)
    # 1. recorder vs floor
    if rec and rec.get("timing", {}).get("default"):
        t = rec["timing"]["default"]
        w = rec.get("workload", {})
        rows.append(("Recorder ≤ 1.5× the kernel floor (default capture, memhog "
                     f"{rec['args']['procs']} × {rec['args']['mib']} MiB)",
                     f"{t['ratio']:.2f}× ({t['recorder_ms_median']:.0f} ms vs {t['floor_ms_median']:.0f} ms; "
                     f"{w.get('distinct_pfns', 0):,} frames){nrec}", _mark(t["ratio"] <= 1.5)))
        for src in ("smaps_rollup", "smaps", "pagemap"):
            if src in rec["timing"]:
                x = rec["timing"][src]
                rows.append((f"… `--sources {src}` alone", f"{x['ratio']:.2f}×{nrec}", _mark(x["ratio"] <= 1.5)))
    if live and live.get("small_floor"):
        f = live["small_floor"]
        n = live["small_workload"]["processes"]
        rows.append((f"Recorder ≤ 1.5× the kernel floor ({n} small processes, default capture)",
                     f"{f['default']['ratio']:.2f}× ({f['default']['recorder_ms_median']:.0f} ms vs "
                     f"{f['default']['floor_ms_median']:.0f} ms); `--sources smaps` {f['smaps']['ratio']:.2f}×{nlive}",
                     _mark(f["default"]["ratio"] <= 1.5)))
    if live and live.get("small_vs_smem", {}).get("median_s"):
        v = live["small_vs_smem"]
        rows.append((f"memsnap vs `smem -P` live ({v['processes']} small processes; no target: smem / memsnap)",
                     f"`record --sources smaps` {v['ratio_smem_over_record']:.2f}×, `record` + `sizes` "
                     f"{v['ratio_smem_over_record_sizes']:.2f}× (smem {v['median_s']['smem']:.2f} s){nlive}", "–"))
    # 2. size
    if rec and rec.get("encodings"):
        e = rec["encodings"]
        rows.append(("Page data ≤ 0.5 B/page (`pages` file, default capture of the memhog workload)",
                     f"{e['recorder_file_b_per_page']:.3f} B/page ({e['pages_rows']:,} rows){nrec}",
                     _mark(e["recorder_file_b_per_page"] <= 0.5)))
    if live and live.get("store_size"):
        for name, d in live["store_size"].items():
            rows.append((f"Whole snapshot smaller than an smemcap tar.gz ({name})",
                         f"{d['snapshot_bytes']:,} B vs {d['smemcap_tar_gz_bytes']:,} B = "
                         f"{d['ratio_memsnap_over_smemcap']:.2f}× ({d['memsnap_b_per_resident_page']:.3f} vs "
                         f"{d['smemcap_b_per_resident_page']:.3f} B per resident page){nlive}",
                         _mark(d["ratio_memsnap_over_smemcap"] < 1)))
    # 3. sizes vs smem
    if sz and sz.get("vs_smem"):
        n = max(sz["vs_smem"], key=int)
        d = sz["vs_smem"][n]
        if d.get("ratio_cli") is not None:
            rows.append((f"`sizes` ≥ 10× faster than smem at 1,000 processes (measured at {int(n):,})",
                         f"{d['ratio_cli']:.1f}× CLI ({d['smem_median_s']:.2f} s vs {d['memsnap_cli_median_s']:.2f} s); "
                         f"library {d['ratio_lib']:.1f}×{nsz}", _mark(d["ratio_cli"] >= 10 if int(n) >= 1000 else None)))
    # 4. analyzer scaling
    if an and an.get("growth"):
        keys = list(an["ops"])
        for op, g in an["growth"].items():
            rows.append((f"Analyzer cost linear in pages: `{op}` ({keys[0]} → {keys[-1]}; cost per page ratio ≤ 1.5)",
                         f"cost per page × {g['s_per_mpage_ratio']:.2f} for × {g['pages_ratio']:.1f} pages "
                         f"({an['ops'][keys[-1]][op]['s_per_mpage']:.2f} s per M pages); peak RSS × "
                         f"{g['rss_ratio']:.2f}{nan}", _mark(g["s_per_mpage_ratio"] <= 1.5)))
        if "50M" in an["ops"]:
            peak = max(d["maxrss_kb"] for d in an["ops"]["50M"].values())
            rows.append(("Analyzer peak RSS ≤ 2 GiB at 50M pages", f"{peak / 1024:,.0f} MiB (max of the three){nan}",
                         _mark(peak <= 2 * 1024 * 1024)))
        else:
            big = keys[-1]
            peak = max(d["maxrss_kb"] for d in an["ops"][big].values())
            rows.append(("Analyzer peak RSS ≤ 2 GiB at 50M pages",
                         f"not measured (`--full`); at {big}: {peak / 1024:,.0f} MiB with DuckDB's default memory "
                         f"limit{nan}", "–"))
        if an.get("out_of_core"):
            oc = an["out_of_core"]
            peak = max(d["maxrss_kb"] for d in oc.values())
            ok = all(d["same_rows"] for d in oc.values())
            rows.append((f"Out of core: {keys[-1]} store with memory_limit {an['args']['memory_limit']} completes, "
                         "bounded RSS",
                         f"peak RSS {peak / 1024:,.0f} MiB (max of three), time × "
                         + "/".join(f"{d['time_vs_unlimited']:.2f}" for d in oc.values())
                         + f" (sizes/diff/shared) vs the default limit{nan}", _mark(ok)))
    # 5. impact
    if imp and (imp.get("verdict") or {}).get("full_max_ms") is not None:  # the format since --impact
        v = imp["verdict"]
        rows.append(("`--impact low` (and the default above 1 GiB) bounds the target's max mmap/munmap stall",
                     f"full capture {v['full_max_ms']:.1f} ms, `--impact low` {v['low_max_ms']:.1f} ms, default "
                     f"{v['default_max_ms']:.1f} ms; smaps_rollup alone {v['rollup_max_ms']:.1f} ms; machine noise "
                     f"floor {v.get('noise_floor_ms', float('nan')):.1f} ms{nimp}", _mark(v["low_below_half_of_full"])))
    # 6. footprint
    if live and live.get("footprint"):
        for name, d in live["footprint"].items():
            rows.append((f"Recorder footprint, `memsnap record` ({'whole machine' if name == 'machine' else name}; "
                         "no target)",
                         f"peak RSS {d['maxrss_kb_median'] / 1024:.0f} MiB, CPU {d['cpu_s_median']:.2f} s, wall "
                         f"{d['wall_s_median']:.2f} s for {d['pages_rows_median']:,.0f} pages{nlive}", "–"))
    if mem and mem.get("medians"):  # issue 18: bounded recorder memory
        m = mem["medians"]
        worst = max(d["after"]["maxrss_kb_max"] for d in m.values()) / 1024
        rows.append(("Recorder peak RSS ≤ 150 MiB whatever the machine's size (`memsnap record`; "
                     "`bench/memory_bench.py`)",
                     ", ".join(f"{c} {d['after']['maxrss_kb'] / 1024:.0f} MiB"
                               + (f" (was {d['before']['maxrss_kb'] / 1024:.0f})" if "before" in d else "")
                               for c, d in m.items()) + f"; max of all runs {worst:.0f} MiB{nmem}",
                     _mark(worst <= 150)))
    # 7. install size
    if ins and ins.get("ratios"):
        lean, full = ins["installs"]
        rows.append(("Plain install (the recorder) under half of the `[analyze]` install (site-packages)",
                     f"{ins['ratios']['site']:.2f} ({lean['site_mib']:.0f} / {full['site_mib']:.0f} MiB); zipapp "
                     f"{ins['zipapp']['file_mib']:.0f} MiB file, {ins['zipapp']['unpacked_mib']:.0f} MiB unpacked{nins}",
                     _mark(ins["ratios"]["site"] < 0.5)))
    if not rows:
        return []
    L = ["## Summary", "", "| target | measured | |", "|---|---|:-:|"]
    L += [f"| {t} | {m} | {k} |" for t, m, k in rows]
    L += ["", "Details and methods in the sections below.", ""]
    return L


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", help="run only this benchmark (name without _bench.py); repeatable")
    ap.add_argument("--out", default=str(HERE / "out"), help="directory for the JSON and markdown results")
    ap.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="the markdown file to write")
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark (not for real figures)")
    ap.add_argument("--full", action="store_true", help="pass --full to the analyzer benchmark (50M pages)")
    ap.add_argument("--assemble", action="store_true", help="run nothing: rebuild the markdown from the sections "
                                                            "and JSON already in --out")
    args = ap.parse_args(argv)

    benches = sorted(HERE.glob("*_bench.py"))
    if args.only:
        benches = [b for b in benches if b.name[:-len("_bench.py")] in args.only]
    if not benches:
        print("no benchmarks selected", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc)
    info = machine()
    sections, failed, ran = [], [], set()
    for b in benches:
        name = b.name[:-len("_bench.py")]
        md = out / f"{name}.md"
        if args.assemble:
            if md.exists():
                ran.add(name)
                sections.append(md.read_text().rstrip() + "\n")
            continue
        if md.exists():
            md.unlink()  # never assemble a stale section
        print(f"== {b.relative_to(ROOT)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        extra = (["--quick"] if args.quick else []) + (["--full"] if args.full and name == "analyzer" else [])
        rc = subprocess.run([sys.executable, str(b), "--out", str(out), *extra], cwd=ROOT).returncode
        dt = time.perf_counter() - t0
        if rc == 0 and md.exists():
            ran.add(name)
            sections.append(md.read_text().rstrip() + "\n")
        else:
            failed.append(name)
            sections.append(f"## {name} (`bench/{b.name}`)\n\n**FAILED** (exit status {rc} after {dt:.0f} s); "
                            f"run `python bench/{b.name}` to see why.\n")

    lines = ["# Benchmarks", "",
             "Generated by `python bench/run.py` (`make bench`); do not edit by hand. Raw figures: "
             f"`{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}/*.json`.", "",
             f"Date: {started:%Y-%m-%d %H:%M UTC}", "",
             "| machine | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info]
    lines += ["", "The machine is shared and noisy: figures are medians of interleaved repeats; compare ratios "
              "measured in the same run rather than absolute times across runs."
              + (" **Quick mode** (`--quick`): small workloads and few repeats; not figures to quote." if args.quick
                 else ""), ""]
    lines += summary(out, ran)
    text = "\n".join(lines) + "\n" + "\n".join(sections)
    dest = Path(args.output)
    tmp = dest.with_name("." + dest.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, dest)
    print(f"wrote {dest}" + (f"; FAILED: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
