#!/usr/bin/env python3
"""Recorder benchmark: wall time against the kernel floor, bytes on disk per page, peak RSS.

    python bench/record_bench.py [--procs 20 --mib 200 --repeat 5 --out bench/out]

What it does, in one run:

1. Starts ``bench/memhog.py``: ``--procs`` processes of about ``--mib`` MiB resident each, with
   COW-shared, shmem-shared, file-backed, private and THP memory.  They stay alive for the whole
   benchmark and are killed at the end (also on error or Ctrl-C).
2. For each source set (default capture, then each source alone) and each of ``--repeat`` rounds,
   interleaved floor, recorder, floor, recorder, ...:

   * **floor**: plain reads, with no parsing and no writing, of exactly the /proc files the
     recorder reads for those processes and that source set: ``/proc`` listing, meminfo, stat,
     uptime, boot_id, config.gz; per process stat, status, cmdline, cgroup, the exe and ns/pid
     readlinks, smaps_rollup, smaps (or maps when smaps is not read), pagemap (``os.pread`` over
     the merged VMA ranges in 8 MiB chunks, as the recorder does) and /proc/kpagecount,
     kpageflags, kpagecgroup at the distinct PFNs, read in clustered runs (PFNs closer than
     ``KPAGE_GAP`` share one pread).  The ranges and PFN clusters are computed once, before
     timing, from the same processes.  It runs in this process.
   * **recorder**: ``Recorder(Options(store=tmpdir, pids=..., sources=...)).capture()`` in a fresh
     subprocess, timed inside it around ``capture()`` (imports excluded), which also reports its
     peak RSS (``ru_maxrss`` and ``VmHWM``) and its RSS before the capture (after imports).

   Medians over the rounds; ratio = median recorder / median floor (target <= 1.5x).
3. Bytes on disk of one default capture: the ``pages`` file per pages row (target <= 0.5 B/page),
   every table, and the whole snapshot; and, from the same pages, the alternative encodings:
   run-length runs (vpn, entry, count; zstd + DELTA_BINARY_PACKED like the recorder) and plain
   pyarrow defaults (dictionary encoding, snappy).  The runs are checked to expand back to the
   exact rows.
4. A cProfile of one more default capture (``--no-profile`` skips it).

Results: ``<out>/record.json``, ``<out>/record.md`` (the section ``bench/run.py`` puts into
BENCHMARKS.md) and ``<out>/record_profile.txt``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from benchutil import med  # noqa: E402  (bench/benchutil.py)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The recorder's own read parameters (recorder/capture.py); the floor uses the same ones.
try:
    from recorder.capture import KPAGE_GAP, PAGEMAP_CHUNK_PAGES
except ImportError:
    PAGEMAP_CHUNK_PAGES, KPAGE_GAP = 1 << 20, 128
READ_SIZE = 1 << 20  # ProcFS.read reads in 1 MiB chunks until EOF

SOURCE_SETS = {
    "default": None,  # Options() default: every source
    "smaps_rollup": ("smaps_rollup",),
    "smaps": ("smaps",),
    "pagemap": ("pagemap",),
    "pagemap,kpage": ("pagemap", "kpage"),
    "maps": ("maps",),
}
DEFAULT_SOURCES = ("maps", "smaps", "smaps_rollup", "pagemap", "kpage")

PM_PRESENT = 1 << 63
PM_SWAP = 1 << 62
PFN_MASK = (1 << 55) - 1


# --------------------------------------------------------------------------- the kernel floor

def _read_all(path: str) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return 0
    n = 0
    try:
        while True:
            b = os.read(fd, READ_SIZE)
            if not b:
                break
            n += len(b)
    except OSError:
        pass
    finally:
        os.close(fd)
    return n


def merged_ranges(pid: int, page_size: int) -> list[tuple[int, int]]:
    """(first_vpn, last_vpn_exclusive) of the merged VMAs of ``pid``, as recorder.procfs.merge_ranges."""
    rs = []
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) > 5 and parts[5].strip() == "[vsyscall]":
                continue  # above TASK_SIZE: not in pagemap
            s, e = (int(x, 16) for x in parts[0].split("-"))
            rs.append((s // page_size, (e + page_size - 1) // page_size))
    out: list[list[int]] = []
    for s, e in sorted(rs):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def prepare_floor(pids: list[int]) -> dict:
    """Everything the floor needs that the recorder derives by parsing: VMA ranges and PFN clusters."""
    page_size = os.sysconf("SC_PAGE_SIZE")
    ranges = {pid: merged_ranges(pid, page_size) for pid in pids}
    pfns = []
    for pid in pids:
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
        try:
            for first, last in ranges[pid]:
                v = first
                while v < last:
                    n = min(last - v, PAGEMAP_CHUNK_PAGES)
                    a = np.frombuffer(os.pread(fd, n * 8, v * 8), dtype=np.uint64)
                    present = a[(a & np.uint64(PM_PRESENT)) != 0] & np.uint64(PFN_MASK)
                    pfns.append(present[present != 0])
                    v += n
        finally:
            os.close(fd)
    p = np.unique(np.concatenate(pfns)) if pfns else np.empty(0, np.uint64)
    clusters = []
    if p.size:
        breaks = np.flatnonzero(np.diff(p) > KPAGE_GAP) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [p.size]))
        clusters = [(int(p[s]), int(p[e - 1])) for s, e in zip(starts.tolist(), ends.tolist())]
    return {"ranges": ranges, "clusters": clusters, "distinct_pfns": int(p.size),
            "pfn_span_read": sum(hi - lo + 1 for lo, hi in clusters)}


def floor_once(pids: list[int], prep: dict, sources: tuple[str, ...]) -> float:
    """Milliseconds of plain reads of the files the recorder reads for ``sources``."""
    want = set(sources)
    ranges, clusters = prep["ranges"], prep["clusters"]
    t0 = time.perf_counter()
    os.listdir("/proc")
    for p in ("/proc/stat", "/proc/uptime", "/proc/sys/kernel/random/boot_id", "/proc/config.gz",
              "/proc/meminfo"):
        _read_all(p)
    for pid in pids:
        base = f"/proc/{pid}/"
        for f in ("stat", "status", "cmdline", "cgroup"):
            _read_all(base + f)
        for f in ("exe", "ns/pid"):
            try:
                os.readlink(base + f)
            except OSError:
                pass
        if "smaps_rollup" in want:
            _read_all(base + "smaps_rollup")
        if "smaps" in want:
            _read_all(base + "smaps")
        elif want & {"maps", "pagemap"}:
            _read_all(base + "maps")
        if "pagemap" in want:
            fd = os.open(base + "pagemap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                for first, last in ranges[pid]:
                    v = first
                    while v < last:
                        n = min(last - v, PAGEMAP_CHUNK_PAGES)
                        os.pread(fd, n * 8, v * 8)
                        v += n
            finally:
                os.close(fd)
    if "kpage" in want:
        for f in ("/proc/kpagecount", "/proc/kpageflags", "/proc/kpagecgroup"):
            fd = os.open(f, os.O_RDONLY | os.O_CLOEXEC)
            try:
                for lo, hi in clusters:
                    os.pread(fd, (hi - lo + 1) * 8, lo * 8)
            finally:
                os.close(fd)
    return (time.perf_counter() - t0) * 1000


# --------------------------------------------------------------------------- the recorder, in a child

def _status_kb(key: str) -> int | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def _arrow_pool_peak() -> int | None:
    try:
        import pyarrow as pa
        return pa.default_memory_pool().max_memory()
    except Exception:
        return None


def child_main(argv: list[str]) -> None:
    """``record_bench.py _child STORE SOURCES PIDS [PROFILE]``: one capture, JSON on stdout."""
    import resource

    store, sources, pids = argv[0], argv[1], [int(p) for p in argv[2].split(",")]
    profile = argv[3] if len(argv) > 3 else None
    from recorder.capture import Options, Recorder

    kw = {"store": store, "pids": tuple(pids)}
    if sources != "default":
        kw["sources"] = tuple(sources.split(","))
    rec = Recorder(Options(**kw))
    rss_before = _status_kb("VmRSS")
    hwm_before = _status_kb("VmHWM")
    prof = None
    if profile:
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    t0 = time.perf_counter()
    res = rec.capture()
    ms = (time.perf_counter() - t0) * 1000
    if prof:
        prof.disable()
        prof.dump_stats(profile)
    print(json.dumps({
        "capture_ms": ms,
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "vm_hwm_kb": _status_kb("VmHWM"),
        "rss_before_kb": rss_before,
        "hwm_before_kb": hwm_before,
        "arrow_pool_peak_bytes": _arrow_pool_peak(),
        "snapshot_id": res.snapshot_id,
        "pages": res.pages,
        "frames": res.frames,
        "bytes_written": res.bytes_written,
        "counts": res.counts,
        "pfn_available": res.pfn_available,
        "warnings": res.warnings,
    }))


def run_recorder(pids: list[int], sources: str, store: str, profile: str | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_child", store, sources, ",".join(map(str, pids))]
    if profile:
        cmd.append(profile)
    t0 = time.perf_counter()
    cp = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = (time.perf_counter() - t0) * 1000
    if cp.returncode != 0:
        raise RuntimeError(f"recorder child failed ({cp.returncode}):\n{cp.stderr}")
    out = json.loads(cp.stdout.strip().splitlines()[-1])
    out["process_wall_ms"] = wall
    return out


# --------------------------------------------------------------------------- bytes on disk

def _files(store: str, table: str) -> list[Path]:
    return sorted((Path(store) / table).rglob("*.parquet"))


def store_bytes(store: str) -> dict[str, int]:
    from schema import TABLES
    return {t: sum(p.stat().st_size for p in _files(store, t)) for t in TABLES}


def runs_of(pid: np.ndarray, vpn: np.ndarray, entry: np.ndarray):
    """Run-length runs: consecutive vpn of one pid whose entry advances by one frame (present: PFN+1,
    swapped: swap offset+1) with identical flag bits.  Returns (starts, counts, steps)."""
    n = vpn.size
    step = np.where((entry & np.uint64(PM_PRESENT)) != 0, np.uint64(1), np.uint64(1 << 5))
    cont = np.zeros(n, dtype=bool)
    if n > 1:
        cont[1:] = ((pid[1:] == pid[:-1]) & (vpn[1:] == vpn[:-1] + np.uint64(1))
                    & (entry[1:] == entry[:-1] + step[:-1]) & (step[1:] == step[:-1]))
    starts = np.flatnonzero(~cont)
    counts = np.diff(np.append(starts, n))
    return starts, counts, step[starts]


def expand_runs(vpn0, entry0, counts, steps):
    idx = np.repeat(np.arange(counts.size), counts)
    within = (np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)).astype(np.uint64)
    return vpn0[idx] + within, entry0[idx] + within * steps[idx]


def encodings(store: str, outdir: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pages_files = _files(store, "pages")
    assert len(pages_files) == 1, pages_files
    src = pages_files[0]
    t = pq.read_table(src)
    rows = t.num_rows
    pid = t.column("pid").to_numpy()
    vpn = t.column("vpn").to_numpy()
    entry = t.column("entry").to_numpy()
    tmp = outdir / "encodings.tmp"
    tmp.mkdir(exist_ok=True)
    res: dict = {"pages_rows": rows}

    def size_of(table, name, **kw):
        p = tmp / f"{name}.parquet"
        pq.write_table(table, p, **kw)
        return p.stat().st_size

    recorder_kw = dict(compression="zstd", use_dictionary=["snapshot_id", "pid"],
                       column_encoding={"vpn": "DELTA_BINARY_PACKED", "entry": "DELTA_BINARY_PACKED"},
                       write_statistics=True, row_group_size=1 << 20)
    # 1. what the recorder wrote, and the same settings written in one pass for reference
    res["recorder_file_bytes"] = src.stat().st_size
    res["recorder_settings_rewrite_bytes"] = size_of(t, "delta", **recorder_kw)
    # 2. run-length runs with the same settings
    starts, counts, steps = runs_of(pid, vpn, entry)
    vx, ex = expand_runs(vpn[starts], entry[starts], counts, steps)
    assert np.array_equal(vx, vpn) and np.array_equal(ex, entry), "run-length encoding is not lossless"
    runs = pa.table({
        "snapshot_id": t.column("snapshot_id").take(pa.array(starts)),
        "pid": pa.array(pid[starts], pa.int32()),
        "vpn": pa.array(vpn[starts], pa.uint64()),
        "entry": pa.array(entry[starts], pa.uint64()),
        "count": pa.array(counts.astype(np.int32), pa.int32()),
    })
    res["runs_rows"] = runs.num_rows
    res["runs_bytes"] = size_of(runs, "runs", **dict(recorder_kw, column_encoding={
        "vpn": "DELTA_BINARY_PACKED", "entry": "DELTA_BINARY_PACKED", "count": "DELTA_BINARY_PACKED"}))
    # 3. pyarrow defaults: dictionary encoding, snappy
    res["dictionary_default_bytes"] = size_of(t, "dict_default")
    # extra: dictionary encoding with zstd, to separate the encoding from the codec
    res["dictionary_zstd_bytes"] = size_of(t, "dict_zstd", compression="zstd")
    shutil.rmtree(tmp)
    for k in ("recorder_file", "recorder_settings_rewrite", "runs", "dictionary_default", "dictionary_zstd"):
        res[k + "_b_per_page"] = res[k + "_bytes"] / rows if rows else None
    # how the present pages look (explains the ratios)
    present = (entry & np.uint64(PM_PRESENT)) != 0
    res["present_pages"] = int(present.sum())
    res["swapped_pages"] = int(((entry & np.uint64(PM_SWAP)) != 0).sum())
    res["mean_run_length"] = rows / runs.num_rows if runs.num_rows else None
    return res


# --------------------------------------------------------------------------- profile

def profile_summary(pstats_path: str, txt_path: Path, top: int = 30) -> list[dict]:
    import io
    import pstats

    buf = io.StringIO()
    st = pstats.Stats(pstats_path, stream=buf)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)
    txt_path.write_text(buf.getvalue())
    rows = []
    for (file, line, fn), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"function": f"{Path(file).name}:{line}({fn})" if line else fn,
                     "calls": nc, "tottime_ms": tt * 1000, "cumtime_ms": ct * 1000})
    rows.sort(key=lambda r: -r["tottime_ms"])
    return rows[:top]


# --------------------------------------------------------------------------- main

class Workload:
    def __init__(self, procs: int, mib: int):
        self.proc = subprocess.Popen([sys.executable, str(HERE / "memhog.py"), "--procs", str(procs),
                                      "--mib", str(mib)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            raise RuntimeError("bench/memhog.py failed to start")
        self.info = json.loads(line)
        self.pids = self.info["pids"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def markdown(r: dict) -> str:
    a = r["args"]
    L = []
    L.append("## Recorder (`bench/record_bench.py`)\n")
    w = r["workload"]
    L.append(f"Workload: {a['procs']} processes (`bench/memhog.py`) of about {a['mib']} MiB resident each "
             f"(30 % COW-shared anon, 15 % shmem, 15 % shared file mapping, 35 % private anon, 5 % THP): "
             f"{w['rss_total_mib']:.0f} MiB RSS in total, {w['pss_total_mib']:.0f} MiB PSS, "
             f"{w['distinct_pfns']:,} distinct frames. Medians of {a['repeat']} interleaved rounds "
             f"(floor, recorder, floor, recorder, ...); the recorder runs in a fresh subprocess each time "
             f"and is timed around `Recorder(...).capture()` (imports excluded; fsync of the store included). "
             f"The floor is plain reads of the same /proc files for the same processes, no parsing, no writing.\n")
    L.append("### Wall time against the kernel floor (target ≤ 1.5×)\n")
    L.append("| sources | floor ms | recorder ms | ratio | median of per-round ratios | recorder min–max ms | "
             "floor min–max ms | recorder process wall ms | peak RSS MiB |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, s in r["timing"].items():
        ok = "" if s["ratio"] <= 1.5 else " ✗"
        L.append(f"| {name} | {s['floor_ms_median']:.1f} | {s['recorder_ms_median']:.1f} | "
                 f"**{s['ratio']:.2f}×**{ok} | {s['ratio_per_round_median']:.2f}× | {min(s['recorder_ms']):.0f}–{max(s['recorder_ms']):.0f} | "
                 f"{min(s['floor_ms']):.0f}–{max(s['floor_ms']):.0f} | {s['process_wall_ms_median']:.0f} | "
                 f"{s['peak_rss_kb_max'] / 1024:.0f} |")
    L.append("")
    L.append("Files read per source set, by both: every set reads stat, status, cmdline, cgroup and the exe and "
             "ns/pid links of each process (plus /proc meminfo, stat, uptime, config.gz, boot_id once); "
             "`smaps_rollup` adds smaps_rollup; `smaps` adds smaps; `maps` adds maps; `pagemap` adds maps and "
             "pagemap; `kpage` adds kpagecount, kpageflags and kpagecgroup at the distinct PFNs "
             f"({w['distinct_pfns']:,} PFNs in {w['kpage_clusters']} clustered preads covering "
             f"{w['kpage_pfn_span_read']:,} PFNs per file); `default` is every source (smaps replaces maps). "
             "Recorder ms is `capture()` only; the process wall column adds interpreter start and imports.\n")
    e = r["encodings"]
    L.append("### Bytes on disk per page (target ≤ 0.5 B/page)\n")
    L.append(f"From one default capture: {e['pages_rows']:,} `pages` rows ({e['present_pages']:,} present, "
             f"{e['swapped_pages']:,} swapped), {e['runs_rows']:,} run-length runs "
             f"(mean run {e['mean_run_length']:.1f} pages).\n")
    L.append("| encoding of `pages` | bytes | B/page |")
    L.append("|---|---:|---:|")
    L.append(f"| recorder as written: zstd + DELTA_BINARY_PACKED (vpn, entry) | {e['recorder_file_bytes']:,} | "
             f"**{e['recorder_file_b_per_page']:.3f}** |")
    L.append(f"| run-length runs (vpn, entry, count), same settings | {e['runs_bytes']:,} | "
             f"**{e['runs_b_per_page']:.3f}** |")
    L.append(f"| pyarrow defaults (dictionary, snappy) | {e['dictionary_default_bytes']:,} | "
             f"**{e['dictionary_default_b_per_page']:.3f}** |")
    L.append(f"| _reference: recorder settings, rewritten in one pass_ | {e['recorder_settings_rewrite_bytes']:,} | "
             f"{e['recorder_settings_rewrite_b_per_page']:.3f} |")
    L.append(f"| _reference: dictionary + zstd_ | {e['dictionary_zstd_bytes']:,} | "
             f"{e['dictionary_zstd_b_per_page']:.3f} |")
    L.append("")
    sb = r["snapshot_bytes"]
    L.append("Whole snapshot on disk (default capture): "
             + ", ".join(f"{t} {b:,} B" for t, b in sb["by_table"].items())
             + f"; **total {sb['total']:,} B** ({sb['total'] / e['pages_rows']:.3f} B per pages row).\n")
    L.append("### Recorder memory\n")
    m = r["memory"]
    L.append(f"Peak RSS of the recorder process (default capture, `ru_maxrss`): median "
             f"**{m['peak_rss_kb_median'] / 1024:.0f} MiB**, max {m['peak_rss_kb_max'] / 1024:.0f} MiB; "
             f"RSS after imports, before `capture()`: {m['rss_before_kb_median'] / 1024:.0f} MiB, so the "
             f"capture itself adds about {(m['peak_rss_kb_median'] - m['rss_before_kb_median']) / 1024:.0f} MiB "
             f"for {e['pages_rows']:,} pages (of which the Arrow memory pool peaked at "
             f"{m['arrow_pool_peak_bytes_median'] / 2**20:.0f} MiB).\n")
    if r.get("profile"):
        L.append("### Where the recorder spends its time (cProfile of one default capture)\n")
        L.append(f"Profiled capture: {r['profile_capture_ms']:.0f} ms under cProfile. "
                 "Top functions by own time (full listing in `bench/out/record_profile.txt`):\n")
        L.append("| function | calls | own ms | cumulative ms |")
        L.append("|---|---:|---:|---:|")
        for p in r["profile"][:12]:
            L.append(f"| `{p['function']}` | {p['calls']:,} | {p['tottime_ms']:.1f} | {p['cumtime_ms']:.1f} |")
        L.append("")
    L.append(f"Benchmark took {r['elapsed_s']:.0f} s.\n")
    return "\n".join(L)


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "_child":
        child_main(argv[1:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--sources", default=";".join(SOURCE_SETS),
                    help="source sets to time, ';'-separated, among: %(default)s")
    ap.add_argument("--no-profile", action="store_true", help="skip the cProfile run")
    ap.add_argument("--quick", action="store_true", help="2 rounds, default and smaps_rollup only, no profile "
                                                         "(for trying the script)")
    args = ap.parse_args(argv)
    if args.quick:
        args.repeat, args.sources, args.no_profile = 2, "default;smaps_rollup", True
    if os.geteuid() != 0:
        print("warning: not root: pagemap PFNs read as 0 and kpage* cannot be read; "
              "the figures will not be representative", file=sys.stderr)
    sets = [s.strip() for s in args.sources.split(";") if s.strip()]
    bad = [s for s in sets if s not in SOURCE_SETS]
    if bad:
        ap.error(f"unknown source set(s) {bad}; choose among {'; '.join(SOURCE_SETS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    tmproot = tempfile.mkdtemp(prefix="memsnap-bench-")
    wl = Workload(args.procs, args.mib)
    # Ctrl-C / SIGTERM: still kill the workload
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        pids = wl.pids
        prep = prepare_floor(pids)
        rss = pss = 0
        for pid in pids:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        workload = {"pids": pids, "rss_total_mib": rss / 1024, "pss_total_mib": pss / 1024,
                    "distinct_pfns": prep["distinct_pfns"], "kpage_clusters": len(prep["clusters"]),
                    "kpage_pfn_span_read": prep["pfn_span_read"],
                    "vma_ranges": sum(len(v) for v in prep["ranges"].values())}
        print(f"workload: {len(pids)} processes, RSS {rss / 1024:.0f} MiB, PSS {pss / 1024:.0f} MiB, "
              f"{prep['distinct_pfns']:,} distinct PFNs in {len(prep['clusters'])} kpage runs", file=sys.stderr)

        def sources_of(name):
            return SOURCE_SETS[name] or DEFAULT_SOURCES

        # warm-up (not counted): imports in the page cache, dentries of /proc/<pid>
        floor_once(pids, prep, DEFAULT_SOURCES)
        run_recorder(pids, "default", os.path.join(tmproot, "warmup"))
        shutil.rmtree(os.path.join(tmproot, "warmup"), ignore_errors=True)

        samples = {s: {k: [] for k in ("floor_ms", "recorder_ms", "process_wall_ms", "peak_rss_kb", "rss_before_kb",
                                       "arrow_pool_peak_bytes", "pages", "frames", "bytes_written")} for s in sets}
        keep_store = os.path.join(tmproot, "keep")
        for r in range(args.repeat):
            for s in sets:
                fl = floor_once(pids, prep, sources_of(s))
                store = keep_store if (s == "default" and r == args.repeat - 1) else os.path.join(tmproot, "s")
                rec = run_recorder(pids, s, store)
                if store != keep_store:
                    shutil.rmtree(store, ignore_errors=True)
                d = samples[s]
                d["floor_ms"].append(fl)
                d["recorder_ms"].append(rec["capture_ms"])
                d["process_wall_ms"].append(rec["process_wall_ms"])
                d["peak_rss_kb"].append(rec["ru_maxrss_kb"])
                d["rss_before_kb"].append(rec["rss_before_kb"])
                d["arrow_pool_peak_bytes"].append(rec["arrow_pool_peak_bytes"] or 0)
                d["pages"].append(rec["pages"])
                d["frames"].append(rec["frames"])
                d["bytes_written"].append(rec["bytes_written"])
                if rec["warnings"]:
                    d.setdefault("warnings", []).extend(rec["warnings"])
                if sum(rec["counts"].values()) != len(pids) or rec["counts"].get("ok") != len(pids):
                    d.setdefault("anomalies", []).append(rec["counts"])
                print(f"round {r + 1}/{args.repeat} {s:>13}: floor {fl:7.1f} ms  recorder "
                      f"{rec['capture_ms']:7.1f} ms  ({rec['capture_ms'] / fl:.2f}x)  "
                      f"peak RSS {rec['ru_maxrss_kb'] / 1024:.0f} MiB", file=sys.stderr)
        timing = {}
        for s, d in samples.items():
            fm, rm = med(d["floor_ms"]), med(d["recorder_ms"])
            timing[s] = dict(d, sources=",".join(sources_of(s)), floor_ms_median=fm, recorder_ms_median=rm,
                             ratio=rm / fm,
                             ratio_per_round_median=med([a / b for a, b in zip(d["recorder_ms"], d["floor_ms"])]),
                             process_wall_ms_median=med(d["process_wall_ms"]),
                             peak_rss_kb_median=med(d["peak_rss_kb"]), peak_rss_kb_max=max(d["peak_rss_kb"]))

        enc = encodings(keep_store, out) if "default" in sets else None
        sb = store_bytes(keep_store) if "default" in sets else None
        result = {
            "args": vars(args),
            "workload": workload,
            "timing": timing,
            "encodings": enc,
            "snapshot_bytes": {"by_table": sb, "total": sum(sb.values())} if sb else None,
            "memory": {
                "peak_rss_kb_median": timing["default"]["peak_rss_kb_median"],
                "peak_rss_kb_max": timing["default"]["peak_rss_kb_max"],
                "rss_before_kb_median": med(timing["default"]["rss_before_kb"]),
                "arrow_pool_peak_bytes_median": med(timing["default"]["arrow_pool_peak_bytes"]),
            } if "default" in timing else None,
        }
        if not args.no_profile:
            prof_path = os.path.join(tmproot, "capture.pstats")
            rec = run_recorder(pids, "default", os.path.join(tmproot, "prof"), profile=prof_path)
            result["profile_capture_ms"] = rec["capture_ms"]
            result["profile"] = profile_summary(prof_path, out / "record_profile.txt")
    finally:
        wl.stop()
        shutil.rmtree(tmproot, ignore_errors=True)
    result["elapsed_s"] = time.perf_counter() - t_start
    (out / "record.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    if result["encodings"] and result["memory"]:
        (out / "record.md").write_text(markdown(result))
    print(f"wrote {out / 'record.json'} and {out / 'record.md'} in {result['elapsed_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
