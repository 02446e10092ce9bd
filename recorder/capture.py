"""Capturing one snapshot of the machine: /proc -> Arrow -> store.

The parts, in the order a capture (:meth:`Recorder._capture_with`) uses them:

- :func:`select_pids`, then :class:`_ProcessCapture` per process (identity, smaps/maps, pagemap);
- :class:`_MappingSink` and :class:`_PageSink` take each process's rows (mappings as columns, from
  :func:`recorder.procfs.parse_smaps_columns`; a small process's pagemap as read, filtered by
  :func:`filter_pagemap` together with other processes'); the page sink flushes batches of FLUSH_PAGE_ROWS
  rows through :class:`_WriterThread` (sort + Parquet encode overlap the next /proc reads) and spills each
  batch's distinct PFNs as a sorted run (:class:`_PfnRuns`, an external merge sort on unlinked temp files);
- :class:`_FramesWriter` takes the merged PFNs in ascending pieces, reads /proc/kpage* at them
  (:class:`_KpageRuns`) and writes ``frames``, FRAMES_WINDOW PFNs at a time;
- :func:`recorder.rows.snapshot_row` builds the ``snapshots`` row (shared with the smemcap import), and
  :class:`~recorder.store.SnapshotWriter` commits it last.

Memory is bounded by these sizes, not by the machine (docs/design.md, "Recorder memory"): what grows with the
machine goes to the store or to unlinked temporary files (the PFN runs; a big process's pages, held in a
:class:`_PageSpool` until the process is read whole, so that one that vanishes midway leaves no rows).

Nothing here prints: progress goes to a callback, warnings into the result.
"""
from __future__ import annotations

import errno
import os
import pwd
import re
import socket
import tempfile  # at import, not in _temp_file: see there
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
from pyarrow._compute import CastOptions, SetLookupOptions, call_function, get_function

from common import layout
from common.layout import new_snapshot_id, partition_date
from common.errors import AccessDenied, Interrupted, MemsnapError, NothingRecorded, ParseError, ProcessGone
from .procfs import (PF_KTHREAD, ProcFS, classify_oserror, merge_ranges, parse_cgroup, parse_cmdline,
                     parse_maps, parse_memory_cgroup, parse_meminfo, parse_smaps_columns, parse_smaps_rollup,
                     parse_stat, parse_status, parse_sysfs_choice, rows_to_columns)
from .memlimit import MemoryGuard
from .privacy import redact_cmdline, redact_path
from .rows import map_items, meminfo_columns, snapshot_row
from .store import SnapshotWriter, TableWriter, _storage_error, apply_retention, recover, safe_host

ALL_SOURCES = ("maps", "smaps", "smaps_rollup", "pagemap", "kpage", "physmem", "cgroups")
#: physmem (every frame of the machine, recorder/physmem.py) and cgroups (the memory cgroups) are opt-in;
#: physmem records cgroups too (its frames are charged to them)
DEFAULT_SOURCES = ("maps", "smaps", "smaps_rollup", "pagemap", "kpage")

# pagemap bits, https://docs.kernel.org/admin-guide/mm/pagemap.html
PM_PRESENT = 1 << 63
PM_SWAP = 1 << 62
PFN_MASK = (1 << 55) - 1
# the same as uint64 scalars: pyarrow.compute would otherwise infer int64 for a Python int, and mixing
# uint64 with int64 casts to a type that cannot hold bit 63
_U64 = pa.uint64()
_PRESENT = pa.scalar(PM_PRESENT, _U64)          # entry >= this  <=>  bit 63 set
_PRESENT_OR_SWAP = pa.scalar(PM_SWAP, _U64)     # entry >= this  <=>  bit 63 or bit 62 set
_PFN_MASK = pa.scalar(PFN_MASK, _U64)
_ZERO = pa.scalar(0, _U64)
_NO_MAP = pa.scalar(-1, pa.int32())  # a spilled map_idx not known; int32: fill_null here is coalesce, a Python -1 made it int64
CAP_SYS_ADMIN = 21


class _Compute:
    """Arrow compute functions by name (``pc.take(a, i)`` is ``call_function("take", [a, i])``), without
    importing pyarrow.compute: it builds a Python wrapper for each of its ~300 functions on import, about
    90 ms of every `memsnap record`.  (Array.cast/take/filter import it too: not used here.)"""

    _NAMES = {"or_": "or", "and_": "and", "fill_null": "coalesce"}

    def __getattr__(self, name):
        fname = self._NAMES.get(name, name)

        def fn(*args, options=None):
            return call_function(fname, list(args), options)
        setattr(self, name, fn)
        return fn

    @staticmethod
    def cast(a, to: pa.DataType):
        """Unchecked, like numpy's astype: uint64 -> int64 keeps the bits."""
        return call_function("cast", [a], CastOptions.unsafe(to))

    @staticmethod
    def has(name: str) -> bool:
        try:
            get_function(name)
            return True
        except Exception:  # ArrowKeyError: not in this pyarrow
            return False


pc = _Compute()

PAGEMAP_CHUNK_PAGES = 1 << 16   # 512 KiB per pread.  (The kernel itself drops the target's mmap lock every
                                # PMD of address space inside one read: fs/proc/task_mmu.c pagemap_read; the
                                # window size does not change the stall, bench/impact_bench.py --windows.)
IMPACT_MODES = ("auto", "low", "full")
#: --impact auto: processes whose VmRSS + VmSwap is above this (kB) are read in low-impact mode.  The walks of
#: smaps and smaps_rollup hold the mmap lock ~12-15 ms per GiB mapped in 4 KiB pages; 1 GiB bounds that stall
#: to about what the low-impact reads cost anyway (BENCHMARKS.md, Impact; docs/design.md).
DEFAULT_IMPACT_THRESHOLD_KB = 1 << 20
# Bounded recorder memory (docs/design.md, "Recorder memory"; sizes measured in bench/memory_bench.py): no
# buffer below grows with the machine, each is flushed or spilled at a fixed size.
FLUSH_PAGE_ROWS = 1 << 16       # page rows per batch (one row group); at most 3 batches are alive at once
FLUSH_MAPPING_ROWS = 10_000     # mapping rows kept as Python lists before they are written
FLUSH_PROCESS_ROWS = 1_000      # processes rows (dicts) kept before they are written
PFN_MERGE_FAN = 16              # sorted PFN runs merged at once (memory: PFN_MERGE_FAN x PFN_MERGE_CHUNK x 8 B)
PFN_MERGE_CHUNK = 1 << 15       # PFNs read from each run at a time during a merge
FRAMES_WINDOW = 1 << 17         # distinct PFNs read from kpage* and written to frames at a time
#: peak memory per page row held by the page sink until it is written (filter, PFN set, sort, Parquet encoding;
#: measured: 393k rows of 8 processes raise the recorder's cgroup anon by ~90 MiB, tests/test_memlimit.py), and
#: per frame read from kpage*: what the memory guard (recorder/memlimit.py) expects those steps to need
PAGE_ROW_PEAK_BYTES = 256
FRAME_PEAK_BYTES = 64
KPAGE_GAP = 128                 # PFNs closer than this share one pread (measured: 128 beat 8..512 here)
KPAGE_BATCH = 1 << 18           # PFNs of kpage* runs read into one buffer (2 MiB)


@dataclass
class Options:
    store: str = "./memsnap-store"
    host: str | None = None
    pids: tuple[int, ...] = ()
    match: str | None = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    #: above this VmRSS (kB), read maps instead of the full smaps (smaps_rollup and pagemap still read)
    smaps_max_rss_kb: int | None = None
    #: "low": read every process without smaps and smaps_rollup (maps + pagemap + kpage: the analyzer computes
    #: its sizes from pages); "auto": only those above ``impact_threshold_kb``; "full": none
    impact: str = "auto"
    #: with impact "auto": VmRSS + VmSwap (kB) above which a process is read in low-impact mode
    impact_threshold_kb: int | None = DEFAULT_IMPACT_THRESHOLD_KB
    #: per-process time budget (ms); sources not started before it ran out are skipped
    process_budget_ms: float | None = None
    procfs: str = "/proc"
    #: what to hide: "cmdline" (keyed hash of command lines), "paths" (keyed hash of non-system paths)
    redact: tuple[str, ...] = ()
    #: store keyed pseudonyms instead of physical frame numbers
    pseudonymize_pfns: bool = False
    key_file: str | None = None
    #: the memory cgroup hierarchy to record (a fake tree in tests); None: found from <procfs>/self/mounts
    cgroup_root: str | None = None
    #: retention after each commit: keep the newest N snapshots of the host / cap the store size
    keep: int | None = None
    max_store_bytes: int | None = None

    def validate(self) -> None:
        from .privacy import REDACT_CHOICES

        bad_r = [r for r in self.redact if r not in REDACT_CHOICES]
        if bad_r:
            raise MemsnapError(f"unknown --redact {', '.join(bad_r)}", hint="choose cmdline and/or paths")
        bad = [s for s in self.sources if s not in ALL_SOURCES]
        if bad:
            raise MemsnapError(f"unknown source(s) {', '.join(bad)}", hint=f"choose from {', '.join(ALL_SOURCES)}")
        if "kpage" in self.sources and "pagemap" not in self.sources:
            raise MemsnapError("source kpage needs pagemap", hint="add pagemap to --sources, or drop kpage")
        if self.impact not in IMPACT_MODES:
            raise MemsnapError(f"unknown --impact {self.impact!r}", hint=f"choose from {', '.join(IMPACT_MODES)}")
        if self.impact == "low" and not {"pagemap", "kpage"} <= set(self.sources):
            raise MemsnapError("--impact low reads pagemap and kpage instead of smaps and smaps_rollup, but --sources "
                               f"leaves out {' and '.join(s for s in ('pagemap', 'kpage') if s not in self.sources)}",
                               hint="keep pagemap,kpage in --sources, or drop --impact low")
        if self.match is not None:
            try:
                re.compile(self.match)
            except re.error as e:
                raise MemsnapError(f"--match {self.match!r} is not a valid regular expression: {e}",
                                   hint="quote the pattern; it is a Python regex matched against the command line")


@dataclass
class Result:
    snapshot_id: str
    store: str
    host: str
    counts: dict = field(default_factory=dict)
    pages: int = 0
    frames: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    pfn_available: bool | None = None
    warnings: list[str] = field(default_factory=list)


def u64_array(buf) -> pa.Array:
    """Bytes of native 64-bit words as an Arrow uint64 array, without a copy."""
    return pa.Array.from_buffers(_U64, len(buf) // 8, [None, pa.py_buffer(buf)])


def storage_order(entry: pa.Array) -> pa.Array:
    """Row order for a chunk of ``pages`` rows given in (pid, vpn) order (see schema PAGES, measured in
    bench/): rows whose entry occurs once (private pages) keep (pid, vpn) order, where PFNs run; rows whose
    entry repeats (a frame mapped several times, e.g. by forked processes) follow, grouped by entry, where
    the repeats cost nearly nothing."""
    n = len(entry)
    by_entry = pc.sort_indices(entry)  # stable: (pid, vpn) order kept among equal entries
    if n < 2:
        return by_entry
    es = pc.take(entry, by_entry)
    same = pc.equal(es.slice(1), es.slice(0, n - 1))
    no = pa.array([False])
    dup = pc.or_(pa.concat_arrays([no, same]), pa.concat_arrays([same, no]))  # equal to a neighbour
    if pc.has("scatter"):  # pyarrow >= 20: dup back in (pid, vpn) order, O(n)
        private = pc.indices_nonzero(pc.invert(pc.scatter(dup, pc.cast(by_entry, pa.int64()))))
    else:  # the same rows by sorting their positions (slower)
        private = pc.filter(by_entry, pc.invert(dup))
        private = pc.take(private, pc.sort_indices(private))
    return pa.concat_arrays([private, pc.filter(by_entry, dup)])


class _RawPagemap:
    """pagemap entries as read: ``buf`` holds the reads ``(first_vpn, pages)`` one after the other; ``maps`` the
    mappings they cover, as runs ``(slots, mappings.idx)`` in the same order (None: not known, map_idx NULL)."""
    __slots__ = ("buf", "reads", "slots", "maps")

    def __init__(self, buf, reads: list[tuple[int, int]], maps: list[tuple[int, int]] | None = None):
        self.buf, self.reads, self.maps = buf, reads, maps
        self.slots = len(buf) // 8


def mapping_runs(starts, ends, paths, page_size: int) -> list[tuple[int, int]]:
    """``(pages, idx)`` of each mapping (``idx`` its position, as ``mappings.idx``) in address order: the slots
    the pagemap reads of :func:`recorder.procfs.merge_ranges` cover, one mapping after the other (mappings of
    a process do not overlap)."""
    out = []
    for i in sorted(range(len(starts)), key=starts.__getitem__):
        s, e = starts[i] // page_size, (ends[i] + page_size - 1) // page_size
        if paths[i] != "[vsyscall]" and e > s:
            out.append((e - s, i))
    return out


def clip_runs(runs: list[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """The part of ``runs`` (``(slots, value)``, one after the other from slot 0) over slots ``lo`` to ``hi``."""
    out, off = [], 0
    for n, v in runs:
        a, b = max(off, lo), min(off + n, hi)
        if b > a:
            out.append((b - a, v))
        off += n
        if off >= hi:
            break
    return out


def filter_pagemap(raws: list[_RawPagemap]) -> list[tuple[pa.Array, pa.Array, pa.Array]]:
    """For each raw pagemap, ``(vpn, entry, map_idx)`` of its present or swapped pages, in vpn order (map_idx
    the ``mappings.idx`` of the page's mapping, from ``maps``).  All of them filtered at once: a dozen Arrow
    calls whatever the number of reads and processes."""
    if not raws:
        return []
    a = u64_array(raws[0].buf if len(raws) == 1 else b"".join(r.buf for r in raws))
    keep = pc.greater_equal(a, _PRESENT_OR_SWAP)  # present or swapped
    entry = pc.filter(a, keep)
    idx = pc.indices_nonzero(keep)  # the kept slots (not keep.true_count: it crashes pyarrow 15)
    run_ends, bases, ends, off = [], [], [], 0
    for r in raws:
        for v, n in r.reads:
            bases.append(v - off)  # the vpn of slot i of this read is i + (v - off)
            off += n
            run_ends.append(off)
        ends.append(off)
    if len(bases) == 1:
        vpn = pc.add(idx, pa.scalar(bases[0], _U64))
    else:  # each slot's base, by read: run-end encoded, decoded, then the kept slots' (int64: may be < 0)
        base = pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(pa.array(run_ends, pa.int32()),
                                                                   pa.array(bases, pa.int64())))
        vpn = pc.cast(pc.add(pc.cast(idx, pa.int64()), pc.filter(base, keep)), _U64)
    map_idx = _map_idx(raws, keep)
    if len(raws) == 1:
        return [(vpn, entry, map_idx)]
    # kept slots up to the end of each raw pagemap (none is empty): where its rows end
    kept = pc.cumulative_sum(pc.cast(keep, pa.int32()))
    cut = [0] + pc.take(kept, pa.array([e - 1 for e in ends], pa.int64())).to_pylist()
    return [(vpn.slice(lo, hi - lo), entry.slice(lo, hi - lo), map_idx.slice(lo, hi - lo)) for lo, hi in zip(cut, cut[1:])]


def _map_idx(raws: list[_RawPagemap], keep: pa.Array) -> pa.Array:
    """The kept slots' mappings.idx: each raw pagemap's mapping runs, run-end decoded, filtered like the slots
    (NULL for a raw pagemap whose runs are not known or do not cover exactly its slots)."""
    ends, vals, off = [], [], 0
    for r in raws:
        runs = r.maps if r.maps is not None and sum(n for n, _ in r.maps) == r.slots else [(r.slots, None)]
        for n, v in runs:
            if n:
                off += n
                ends.append(off)
                vals.append(v)
    if not ends:
        return pa.array([], pa.int32())
    slot_idx = pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(pa.array(ends, pa.int32()), pa.array(vals, pa.int32())))
    return pc.filter(slot_idx, keep)


def sorted_unique(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Sorted distinct values of non-negative integers below 2^63 (PFNs).  Dense enough (the span from the
    smallest to the largest below 8 per value), as a bitmap over that span: the values scattered onto their
    positions, whose indices are then the answer (pyarrow >= 20; on 128k PFNs 7x faster than hash + sort at
    one value per position, 2x at 4; even at 16, and it costs 8 B per position of the span: so 8 at most).
    Otherwise sort all, then keep each value that differs from the one before it: on the 64k-PFN batches of
    300 small processes (about 21k distinct each, spread over the machine) Arrow's hash ``unique`` took longer
    than sorting the whole batch, so this is about 1.5x faster than hash, then sort the distinct."""
    n = len(a)
    lo = hi = None
    if n:
        mm = pc.min_max(a)
        lo, hi = mm["min"].as_py(), mm["max"].as_py()
    if lo is not None and pc.has("scatter") and hi - lo < 8 * n:
        from pyarrow._compute import ScatterOptions  # pyarrow >= 20, like scatter

        base = pa.scalar(lo, a.type)
        idx = pc.cast(pc.subtract(a, base) if lo else a, pa.int64())
        if isinstance(idx, pa.ChunkedArray):
            idx = idx.combine_chunks()
        seen = pc.scatter(pa.repeat(pa.scalar(True), n), idx, options=ScatterOptions(max_index=hi - lo))  # else null
        out = pc.cast(pc.indices_nonzero(pc.fill_null(seen, pa.scalar(False))), a.type)
        return pc.add(out, base) if lo else out
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    s = pc.take(a, pc.array_sort_indices(a))
    if n < 2:
        return s
    later = s.slice(1)
    return pa.concat_arrays([s.slice(0, 1), pc.filter(later, pc.not_equal(later, s.slice(0, n - 1)))])


def _temp_file(spill_dir: str | None):
    """An unlinked temporary file for spilled data (in the store's in-progress directory when given).
    tempfile is imported with this module, before any process is read: imported here, mid-capture, it loaded
    extension modules (random's _random, _sha2, math) that the recorded Python processes map too, so their
    frames' kpagecount moved between a process's smaps_rollup and the kpage* read, and its PSS from pages
    differed from its rollup (tests/test_sizes_live.py caught it)."""
    try:
        return tempfile.TemporaryFile(dir=spill_dir)
    except OSError as e:
        raise _storage_error(e, spill_dir or tempfile.gettempdir()) from None


def _spill_write(f, a: pa.Array, where: str | None) -> None:
    """The raw values of ``a`` (fixed width, no nulls) appended to ``f``; a full disk or a file size limit is a
    StoreError."""
    w = a.type.byte_width
    try:
        f.write(memoryview(a.buffers()[1])[a.offset * w:(a.offset + len(a)) * w])
    except OSError as e:
        raise _storage_error(e, f"a temporary file in {where or 'the temporary directory'}") from None


class _PfnRuns:
    """The distinct PFNs seen, in bounded memory, for the frames table.  Each batch's distinct PFNs (sorted)
    are a *run*, spilled to an unlinked temporary file (nothing is left behind if the recorder dies);
    PFN_MERGE_FAN runs of one level are merged into one run of the next level (an external merge sort: the
    levels, not the memory, grow with the machine).  :meth:`sorted` merges what is left and gives the
    distinct PFNs in ascending pieces.  A merge holds at most PFN_MERGE_FAN x PFN_MERGE_CHUNK PFNs read
    from its runs (``max_held`` records the most, for the tests)."""

    def __init__(self, spill_dir: str | None):
        self.spill_dir = spill_dir
        self.levels: list[list[tuple]] = []   # per level, runs (file, number of PFNs)
        self.max_held = 0
        self.depth = 0  # levels used

    def add(self, pfns: pa.Array) -> None:
        """One run: sorted distinct PFNs (uint64)."""
        if len(pfns):
            self._push(0, self._spill([pfns]))

    def _spill(self, pieces) -> tuple:
        f = _temp_file(self.spill_dir)
        n = 0
        try:
            for p in pieces:
                if len(p):
                    _spill_write(f, p, self.spill_dir)
                    n += len(p)
            try:
                f.flush()
            except OSError as e:
                raise _storage_error(e, f"a temporary file in {self.spill_dir or 'the temporary directory'}") from None
        except BaseException:
            f.close()
            raise
        return f, n

    def _push(self, level: int, run: tuple) -> None:
        while len(self.levels) <= level:
            self.levels.append([])
        self.depth = max(self.depth, level + 1)
        self.levels[level].append(run)
        if len(self.levels[level]) >= PFN_MERGE_FAN:
            runs, self.levels[level] = self.levels[level], []
            self._push(level + 1, self._spill(self._merge(runs)))

    def _merge(self, runs: list[tuple]):
        """Sorted distinct PFNs of ``runs``, in ascending pieces; the runs' files are closed at the end.  Each
        run is read PFN_MERGE_CHUNK PFNs at a time; a piece is every PFN read up to the smallest last PFN of
        the runs not read to their end (no run can hold a smaller one later)."""
        cur = [[f, 0, n, pa.array([], _U64)] for f, n in runs]  # file, PFNs read, PFNs in all, read not merged
        try:
            while True:
                for c in cur:
                    if not len(c[3]) and c[1] < c[2]:
                        k = min(PFN_MERGE_CHUNK, c[2] - c[1])
                        c[3] = u64_array(os.pread(c[0].fileno(), k * 8, c[1] * 8))
                        if len(c[3]) != k:
                            raise OSError(errno.EIO, "short read of a spilled PFN run", getattr(c[0], "name", ""))
                        c[1] += k
                live = [c for c in cur if len(c[3])]
                if not live:
                    return
                self.max_held = max(self.max_held, sum(len(c[3]) for c in live))
                ends = [c[3][-1].as_py() for c in live if c[1] < c[2]]  # runs not read to their end
                bound = pa.scalar(min(ends), _U64) if ends else None
                take = []
                for c in live:
                    if bound is None:
                        k = len(c[3])
                    else:  # how many are <= bound (the run is sorted)
                        k = pc.sum(pc.cast(pc.less_equal(c[3], bound), pa.int64())).as_py() or 0
                    if k:
                        take.append(c[3].slice(0, k))
                        c[3] = c[3].slice(k)
                yield sorted_unique(pa.chunked_array(take, _U64))
        finally:
            for c in cur:
                c[0].close()

    def sorted(self):
        """All distinct PFNs, ascending, in pieces (of at most about PFN_MERGE_FAN x PFN_MERGE_CHUNK); the
        runs are consumed."""
        levels, self.levels = self.levels, []
        while sum(len(lv) for lv in levels) > PFN_MERGE_FAN:  # merge the lowest levels until FAN runs are left
            i = next(i for i, lv in enumerate(levels) if lv)
            runs, levels[i] = levels[i], []
            if i + 1 == len(levels):
                levels.append([])
            levels[i + 1].append(self._spill(self._merge(runs)))
        yield from self._merge([r for lv in levels for r in lv])

    def close(self) -> None:
        for lv in self.levels:
            for f, _ in lv:
                f.close()
        self.levels = []


def _read_opt(fs: ProcFS, *parts) -> str | None:
    try:
        return fs.read(*parts).decode().strip()
    except (OSError, MemsnapError):
        return None


def _has_cap(fs: ProcFS, cap: int) -> bool:
    try:
        for line in fs.read("self", "status").decode().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> cap & 1)
    except (OSError, MemsnapError):
        pass
    return False


def _mapcount_mode() -> str | None:
    import gzip
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_NO_PAGE_MAPCOUNT=y"):
                    return "folio"
                if line.startswith("CONFIG_PAGE_MAPCOUNT=y"):
                    return "per_page"
    except OSError:
        pass
    return None


def _int_or_none(s):
    try:
        return int(s)
    except (TypeError, ValueError):
        return None


_users: dict[int, str] = {}


def user_name(uid: int | None) -> str | None:
    if uid is None:
        return None
    if uid not in _users:
        try:
            _users[uid] = pwd.getpwuid(uid).pw_name
        except KeyError:
            _users[uid] = str(uid)
    return _users[uid]


def system_info(fs: ProcFS) -> dict:
    u = os.uname()
    stat = _read_opt(fs, "stat") or ""
    btime = next((int(ln.split()[1]) for ln in stat.splitlines() if ln.startswith("btime ")), None)
    uptime = _read_opt(fs, "uptime")
    mm = "/sys/kernel/mm"

    def sysfs(p):
        try:
            with open(os.path.join(mm, p)) as f:
                return f.read().strip()
        except OSError:
            return None

    thp = {k: sysfs(f"transparent_hugepage/{k}") for k in ("enabled", "defrag", "shmem_enabled")}
    return {
        "boot_id": _read_opt(fs, "sys", "kernel", "random", "boot_id") or "unknown",
        "hostname": socket.gethostname(),
        "kernel_release": u.release,
        "machine": u.machine,
        "page_size_bytes": os.sysconf("SC_PAGE_SIZE"),
        "clock_ticks_hz": os.sysconf("SC_CLK_TCK"),
        "boot_time": datetime.fromtimestamp(btime, timezone.utc) if btime else None,
        "uptime_s": float(uptime.split()[0]) if uptime else None,
        "mapcount_mode": _mapcount_mode(),
        "thp_enabled": parse_sysfs_choice(thp["enabled"]) if thp["enabled"] else None,
        "thp_defrag": parse_sysfs_choice(thp["defrag"]) if thp["defrag"] else None,
        "thp_shmem_enabled": parse_sysfs_choice(thp["shmem_enabled"]) if thp["shmem_enabled"] else None,
        "ksm_run": _int_or_none(sysfs("ksm/run")),
        "ksm_pages_sharing": _int_or_none(sysfs("ksm/pages_sharing")),
        "ksm_pages_shared": _int_or_none(sysfs("ksm/pages_shared")),
    }


class _PageSpool:
    """A big process's pages as read (``vpn``, ``entry`` parts in vpn order), held until the process has been
    read whole (one that vanishes midway leaves no rows): in memory up to FLUSH_PAGE_ROWS rows, beyond that in
    an unlinked temporary file (bounded memory whatever the process's size).  :meth:`parts` gives them back in
    order, a part at a time (at most PAGEMAP_CHUNK_PAGES rows each)."""

    def __init__(self, spill_dir: str | None):
        self.spill_dir = spill_dir if spill_dir and os.path.isdir(spill_dir) else None
        self.rows = 0
        self._mem: list[tuple[pa.Array, pa.Array]] = []
        self._mem_rows = 0
        self._file = None
        self._sizes: list[int] = []  # rows of each part in the file

    def add(self, vpn: pa.Array, entry: pa.Array, map_idx: pa.Array) -> None:
        if not len(vpn):
            return
        self.rows += len(vpn)
        self._mem.append((vpn, entry, map_idx))
        self._mem_rows += len(vpn)
        if self._mem_rows > FLUSH_PAGE_ROWS:
            self._spill()

    @property
    def spilled(self) -> bool:
        return self._file is not None

    def _spill(self) -> None:
        if self._file is None:
            self._file = _temp_file(self.spill_dir)
        for v, e, m in self._mem:
            for a in (v, e, pc.fill_null(m, _NO_MAP)):  # -1: map_idx not known (NULL), read back as NULL
                _spill_write(self._file, a, self.spill_dir)
            self._sizes.append(len(v))
        self._mem, self._mem_rows = [], 0

    def in_memory(self) -> tuple[pa.ChunkedArray, pa.ChunkedArray, pa.ChunkedArray]:
        """All of it, when it was never spilled."""
        return tuple(pa.chunked_array([p[k] for p in self._mem], t) for k, t in enumerate((_U64, _U64, pa.int32())))

    def parts(self):
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as e:
                raise _storage_error(e, f"a temporary file in {self.spill_dir or 'the temporary directory'}") from None
            fd, off = self._file.fileno(), 0
            for n in self._sizes:
                vpn = u64_array(os.pread(fd, n * 8, off))
                entry = u64_array(os.pread(fd, n * 8, off + n * 8))
                mb = os.pread(fd, n * 4, off + n * 16)
                map_idx = pa.Array.from_buffers(pa.int32(), len(mb) // 4, [None, pa.py_buffer(mb)])
                map_idx = pc.if_else(pc.equal(map_idx, -1), pa.scalar(None, pa.int32()), map_idx)
                if len(vpn) != n or len(entry) != n or len(map_idx) != n:
                    raise OSError(errno.EIO, "short read of spilled pages", getattr(self._file, "name", ""))
                off += 20 * n
                yield vpn, entry, map_idx
        yield from self._mem

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._mem = []


class _ProcessCapture:
    """Reads one process.  Raises nothing for races/permissions: they end up in ``row``."""

    def __init__(self, fs: ProcFS, pid: int, opts: Options, page_size: int):
        self.fs, self.pid, self.opts, self.page_size = fs, pid, opts, page_size
        self.row: dict = {"pid": pid}
        self.n_mappings = 0                     # the process's mappings (smaps entries or maps lines) ...
        self.mappings: dict[str, list] = {}     # ... as columns: {column: one value per mapping}
        self.mapping_source: str | None = None  # "smaps" or "maps"
        self.vpn: pa.ChunkedArray | None = None
        self.entry: pa.ChunkedArray | None = None
        self.map_idx: pa.ChunkedArray | None = None  # the mappings.idx of each page (vpn, entry, map_idx: rows)
        self.raw_pagemap: _RawPagemap | None = None  # pagemap read but not yet filtered (vpn, entry None)
        self.spool: _PageSpool | None = None  # a big process's pages spilled to a file (vpn, entry None)
        self.sources: list[str] = []
        self.low = False  # read in low-impact mode (no smaps, no smaps_rollup)

    def identity(self) -> None:
        """stat/status/cmdline/...; ProcessGone propagates (the process is gone before we started)."""
        fs, pid, row = self.fs, self.pid, self.row
        st = parse_stat(fs.read(pid, "stat"), fs.path(pid, "stat"))
        status = parse_status(fs.read(pid, "status"), fs.path(pid, "status"))
        row.update({k: st[k] for k in ("starttime_ticks", "ppid", "state", "threads", "comm")})
        row.update({k: v for k, v in status.items() if k.endswith("_kb") or k in ("uid", "euid", "gid", "threads")})
        row["user"] = user_name(row.get("euid", row.get("uid")))  # ps and smem show the effective user
        row["kernel_thread"] = bool(st["flags"] & PF_KTHREAD) or status.get("kthread", False)
        for key, parts, fn in (("cmdline", ("cmdline",), lambda b: parse_cmdline(b) or None),
                               ("cgroup", ("cgroup",), lambda b: parse_cgroup(b, fs.path(pid, "cgroup")))):
            try:
                data = fs.read(pid, *parts)
                row[key] = fn(data)
                if key == "cgroup":  # the memory controller's path: joins cgroups.path (recorder/physmem.py)
                    row["memory_cgroup"] = parse_memory_cgroup(data)
            except AccessDenied:
                row[key] = None
        for key, parts in (("exe", ("exe",)), ("pid_ns", ("ns", "pid"))):
            try:
                v = fs.readlink(pid, *parts)
                row[key] = int(v[v.index("[") + 1:-1]) if key == "pid_ns" else v
            except (AccessDenied, ProcessGone, ValueError):
                row[key] = None  # exe of kernel threads / zombies is ENOENT: not data

    def low_impact(self) -> bool:
        """Read without smaps and smaps_rollup?  Their page-table walks hold the target's mmap lock for the whole
        walk (~12-15 ms per GiB of 4 KiB pages); maps, pagemap (the lock per 2 MiB of address space) and kpage*
        (no lock of the target) do not, and the analyzer computes the same figures from pages."""
        opts = self.opts
        if not {"pagemap", "kpage"} <= set(opts.sources) or opts.impact == "full":
            return False
        if opts.impact == "low":
            return True
        size = (self.row.get("vm_rss_kb") or 0) + (self.row.get("vm_swap_kb") or 0)
        return opts.impact_threshold_kb is not None and size > opts.impact_threshold_kb

    def memory(self, deadline: float | None) -> None:
        fs, pid, opts = self.fs, self.pid, self.opts
        want = set(opts.sources)
        skipped = []
        if self.low_impact():  # maps + pagemap + kpage only: the figures come from pages (analyzer/sizes.py)
            want = (want - {"smaps", "smaps_rollup"}) | {"maps"}
            self.low = True

        def over_budget(source):
            if deadline is not None and time.monotonic() > deadline:
                skipped.append(source)
                return True
            return False

        if "smaps_rollup" in want and not over_budget("smaps_rollup"):
            self.row.update(parse_smaps_rollup(fs.read(pid, "smaps_rollup"), fs.path(pid, "smaps_rollup")))
            self.sources.append("smaps_rollup")
        full_smaps = "smaps" in want
        if full_smaps and opts.smaps_max_rss_kb is not None and (self.row.get("vm_rss_kb") or 0) > opts.smaps_max_rss_kb:
            full_smaps = False  # impact limit: walking page tables of a big process blocks its mmap/munmap
        if full_smaps and not over_budget("smaps"):
            self.n_mappings, self.mappings = parse_smaps_columns(fs.read(pid, "smaps"), fs.path(pid, "smaps"))
            src = "smaps"
        elif ("maps" in want or "pagemap" in want) and not over_budget("maps"):
            self.n_mappings, self.mappings = rows_to_columns(parse_maps(fs.read(pid, "maps"), fs.path(pid, "maps")))
            src = "maps"
        else:
            src = None
        if src:
            self.sources.append(src)
            self.mapping_source = src
        if "pagemap" in want and src and not over_budget("pagemap"):
            self.read_pagemap()
            self.sources.append("pagemap")
        if skipped:
            self.row["status"] = "partial"
            self.row["error"] = f"time budget of {opts.process_budget_ms:g} ms exceeded; skipped: {', '.join(skipped)}"

    def read_pagemap(self) -> None:
        m = self.mappings
        ranges = merge_ranges(((s, e) for s, e, p in zip(m["start_addr"], m["end_addr"], m["path"])
                               if p != "[vsyscall]"), self.page_size) if self.n_mappings else []  # [vsyscall]
        # is above TASK_SIZE: not in pagemap.  The preads: each range in chunks of PAGEMAP_CHUNK_PAGES ...
        reads = []
        for first, last in ranges:
            for v in range(first, last, PAGEMAP_CHUNK_PAGES):
                reads.append((v, min(last - v, PAGEMAP_CHUNK_PAGES)))
        # ... grouped into batches of at most PAGEMAP_CHUNK_PAGES entries, each read into one buffer
        runs = mapping_runs(m["start_addr"], m["end_addr"], m["path"], self.page_size) if self.n_mappings else []
        if sum(n for n, _ in runs) != sum(n for _, n in reads):
            runs = None  # not one slot per page of a mapping (overlapping mappings?): map_idx left NULL
        batches, cur, size = [], [], 0
        for v, n in reads:
            if cur and size + n > PAGEMAP_CHUNK_PAGES:
                batches.append((cur, size))
                cur, size = [], 0
            cur.append((v, n))
            size += n
        if cur:
            batches.append((cur, size))
        path = self.fs.path(self.pid, "pagemap")
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise classify_oserror(e, path) from None
        raws: list[_RawPagemap] = []
        spool = _PageSpool(layout.inprogress_dir(self.opts.store)) if len(batches) > 1 else None
        lo = 0  # the batch's first slot
        try:
            for batch, size in batches:
                maps = clip_runs(runs, lo, lo + size) if runs is not None else None
                lo += size
                buf = bytearray(size * 8)
                mv = memoryview(buf)
                off = 0
                for v, n in batch:
                    try:
                        got = os.preadv(fd, [mv[off * 8:(off + n) * 8]], v * 8)
                    except OSError as e:
                        raise classify_oserror(e, path) from None
                    if got != n * 8:
                        # the process was reaped after open: pagemap then reads 0 bytes silently
                        raise ProcessGone(f"{path}: short read ({got} of {n * 8} bytes); process exited",
                                          path=path)
                    off += n
                if len(batches) == 1:  # a small process: filtered later with others (_PageSink.add_raw)
                    raws.append(_RawPagemap(buf, batch, maps))
                else:  # a big process: filtered batch by batch, spooled (bounded memory)
                    spool.add(*filter_pagemap([_RawPagemap(buf, batch, maps)])[0])
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        finally:
            os.close(fd)
        if raws:
            self.raw_pagemap = raws[0]
        elif spool.spilled:
            self.spool = spool
        else:
            self.vpn, self.entry, self.map_idx = spool.in_memory()

    def run(self) -> None:
        t0 = time.monotonic()
        self.row["captured_at"] = datetime.now(timezone.utc)
        self.row["status"] = "ok"
        try:
            self.identity()
            if self.row["kernel_thread"]:
                self.row["status"] = "kernel_thread"
            elif self.row["state"] == "Z":
                self.row["status"] = "zombie"
            else:
                budget = self.opts.process_budget_ms
                self.memory(t0 + budget / 1000 if budget else None)
        except ProcessGone as e:
            self._drop("vanished", str(e))
        except AccessDenied as e:
            self._drop("denied", str(e))
        except ParseError as e:
            # one unparsable file (a kernel format we do not know) must not cost the whole snapshot
            self._drop("partial", str(e))
        self.row["sources"] = ",".join(self.sources) or None
        self.row["mappings"] = self.n_mappings
        self.row["pages"] = len(self.vpn) if self.vpn is not None else self.spool.rows if self.spool else 0
        self.row["capture_ms"] = (time.monotonic() - t0) * 1000

    def _drop(self, status: str, error: str) -> None:
        # half of a process is worse than none: keep the row (and the reason), drop its memory data
        self.row["status"], self.row["error"] = status, error
        self.n_mappings, self.mappings, self.mapping_source = 0, {}, None
        if self.spool is not None:
            self.spool.close()
        self.vpn, self.entry, self.map_idx, self.raw_pagemap, self.spool, self.sources = None, None, None, None, None, []


DENIED_HINT = ("run the recorder as root: reading another user's smaps and pagemap needs ptrace access "
               "(in a container, pid 1 and other namespaces' processes can be denied even to root)")


def check_recorded(counts: dict, selected: int, warnings: list[str], denied_why: str | None) -> None:
    """Say how many processes the kernel refused and why; a capture that recorded none is an error."""
    if counts["denied"]:
        warnings.append(f"{counts['denied']} process(es) denied by the kernel (first: {denied_why}); "
                        + DENIED_HINT)
    if counts["ok"] + counts["partial"]:
        return
    if not selected:
        raise NothingRecorded("no process matched: nothing was recorded, and no snapshot committed",
                              hint="check --pid/--match (the recorder itself and the commands that started it "
                                   "with that --match, such as time, sudo or bash -c, are never matched)")
    others = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in counts.items() if n)
    raise NothingRecorded(f"none of the {selected} selected processes could be recorded ({others}): no snapshot "
                          "committed", hint=DENIED_HINT if counts["denied"] else
                          "the processes exited or are kernel threads; check --pid/--match")


def _ancestors(fs: ProcFS, pid: int) -> list[int]:
    out = []
    while pid > 1 and len(out) < 64:
        try:
            pid = parse_stat(fs.read(pid, "stat"), fs.path(pid, "stat"))["ppid"]
        except (MemsnapError, KeyError):
            break
        out.append(pid)
    return out


def _command_line(fs: ProcFS, pid: int) -> str | None:
    try:
        return parse_cmdline(fs.read(pid, "cmdline")) or parse_cmdline(fs.read(pid, "comm")).strip()
    except MemsnapError:
        return None


def select_pids(fs: ProcFS, opts: Options, self_pid: int) -> list[int]:
    """Every pid but the recorder's, or those of --pid, or those whose command line --match finds.  The
    recorder's ancestors whose command line holds the --match pattern itself (``time``, ``sudo``, ``bash -c``
    or a script that started this recorder with it) are not matched: they would match only because of it."""
    pids = [p for p in fs.pids() if p != self_pid]
    if opts.pids:
        wanted = set(opts.pids)
        pids = [p for p in pids if p in wanted]
    if opts.match:
        rx = re.compile(opts.match)
        starters = {a for a in _ancestors(fs, self_pid) if opts.match in (_command_line(fs, a) or "")}
        keep = []
        for p in pids:
            text = _command_line(fs, p)
            if text is not None and p not in starters and rx.search(text):
                keep.append(p)
        pids = keep
    return pids


class _KpageRuns:
    """How to read /proc/kpage* at sorted distinct PFNs: in runs (PFNs closer than KPAGE_GAP share one
    pread, never one pread per PFN), runs grouped into batches of at most KPAGE_BATCH PFNs read into one
    buffer and gathered with one index per batch.  The runs are computed once for the three files; the
    per-PFN index only per batch, while reading (it would be 8 B per distinct PFN if kept)."""

    def __init__(self, pfns):
        """``pfns``: sorted distinct PFNs, an Arrow uint64 array (or anything ``pa.array`` takes)."""
        self.pfns = pfns = pfns if isinstance(pfns, pa.Array) else pa.array(pfns, _U64)
        n = len(pfns)
        self.batches: list[tuple[int, int, int, list[tuple[int, int, int]], pa.Array]] = []
        if not n:
            return
        # True where a run starts: the gap to the previous PFN exceeds KPAGE_GAP (kept: 1 bit per PFN)
        self._starts = pc.fill_null(pc.greater(pc.pairwise_diff(pfns), pa.scalar(KPAGE_GAP, _U64)),
                                    pa.scalar(False))
        starts = [0] + pc.indices_nonzero(self._starts).to_pylist()
        ends = starts[1:] + [n]
        los = pc.take(pfns, pa.array(starts, pa.int64())).to_pylist()
        his = pc.take(pfns, pa.array([e - 1 for e in ends], pa.int64())).to_pylist()
        spans = [hi - lo + 1 for lo, hi in zip(los, his)]
        first = 0
        while first < len(starts):
            last, total = first, spans[first]  # a run longer than a batch is a batch of its own
            while last + 1 < len(starts) and total + spans[last + 1] <= KPAGE_BATCH:
                last += 1
                total += spans[last]
            reads, off = [], 0
            for lo, sp in zip(los[first:last + 1], spans[first:last + 1]):
                reads.append((lo, sp, off))
                off += sp
            # a PFN's slot in the batch buffer is pfn - lo + off of its run: base = lo - off
            self.batches.append((starts[first], ends[last], total, reads,
                                 pa.array([lo - off for lo, _, off in reads], pa.int64())))
            first = last + 1

    def read(self, path: str) -> pa.Array:
        """The file's 64-bit values at the PFNs.  OSError if it cannot be read (or is shorter than the PFNs)."""
        if not len(self.pfns):  # only zombies, kernel threads or denied processes: nothing to read
            return pa.array([], _U64)
        out = []
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            for s, e, total, reads, base in self.batches:
                buf = bytearray(total * 8)
                mv = memoryview(buf)
                for lo, span, off in reads:
                    if os.preadv(fd, [mv[off * 8:(off + span) * 8]], lo * 8) != span * 8:
                        raise OSError(errno.EIO, "short read (PFN beyond the end of the file)", path)
                # each PFN's run within the batch: the run starts after the batch's first PFN, counted
                run = pc.cumulative_sum(pc.cast(self._starts.slice(s + 1, e - s - 1), pa.int64()))
                run = pa.concat_arrays([pa.array([0], pa.int64()), run])
                pf = pc.cast(self.pfns.slice(s, e - s), pa.int64())
                slot = pc.subtract(pf, pc.take(base, run))
                out.append(pc.take(u64_array(buf), slot))
        finally:
            os.close(fd)
        return pa.concat_arrays(out)


class _WriterThread:
    """One background thread for the page-row flushes: their sort and Parquet encoding run in Arrow
    without the GIL, so they overlap the next /proc reads (and, for the last flush, the kpage*
    reads).  At most one flush runs: :meth:`submit` first waits for the previous one, so at most two
    flushes of rows are held at once."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="memsnap-writer")
        self._job = None

    def submit(self, fn, *args) -> None:
        self.wait()
        self._job = self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Wait for the running flush; its error (e.g. a full disk) is raised here."""
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)  # also on errors: nothing may write while the snapshot is aborted


class _PageSink:
    """Where the ``pages`` rows of the captured processes go.  Buffered, then written in batches of at most
    FLUSH_PAGE_ROWS rows (bounded recorder memory) by the writer thread, so that a batch's sort and Parquet
    encoding overlap the next /proc reads.  Also collects the distinct PFNs of each batch, spilled as sorted
    runs (:class:`_PfnRuns`) for the frames table."""

    def __init__(self, table: TableWriter, snapshot_id: str, bg: _WriterThread, pseudo, want_pfns: bool,
                 spill_dir: str | None = None):
        self.table, self.snapshot_id, self.bg, self.pseudo = table, snapshot_id, bg, pseudo
        self.want_pfns = want_pfns
        self.rows = 0                 # page rows in the snapshot
        self.any_present = False      # a present page was seen ...
        self.any_nonzero_pfn = False  # ... with a PFN other than 0 (all are 0 without CAP_SYS_ADMIN)
        self.max_batch_rows = 0       # the largest batch handed to the writer (bounded by FLUSH_PAGE_ROWS)
        self.spooled = 0              # big processes whose pages came spilled (see _PageSpool)
        self._buf: list[tuple[int, pa.ChunkedArray, pa.ChunkedArray, pa.ChunkedArray]] = []
        self._buf_rows = 0
        self._runs = _PfnRuns(spill_dir)
        self._sid_col: pa.Array | None = None  # snapshot_id repeated: built once, sliced for each batch
        self._raw: list[tuple[int, _RawPagemap, dict]] = []
        self._raw_slots = 0

    def add_raw(self, pid: int, raw: _RawPagemap, row: dict) -> None:
        """One process's pagemap as read (all entries of its VMAs): kept until about FLUSH_PAGE_ROWS
        entries of several processes are pending, then filtered together (a few Arrow calls per batch of
        processes, not per process); ``row["pages"]`` is set then."""
        self._raw.append((pid, raw, row))
        self._raw_slots += raw.slots
        if self._raw_slots >= FLUSH_PAGE_ROWS:
            self._resolve()

    def pending_rows(self) -> int:
        """Page rows (or raw pagemap entries) held and not yet handed to the writer: what a flush will process."""
        return self._raw_slots + self._buf_rows

    def _resolve(self) -> None:
        """Filter the pending raw pagemaps and add each process's pages, in capture order."""
        pending, self._raw, self._raw_slots = self._raw, [], 0
        if not pending:
            return
        for (pid, _, row), (vpn, entry, map_idx) in zip(pending, filter_pagemap([r for _, r, _ in pending])):
            row["pages"] = len(vpn)
            if len(vpn):
                self._add(pid, pa.chunked_array([vpn]), pa.chunked_array([entry]), pa.chunked_array([map_idx]))

    def add(self, pid: int, vpn: pa.ChunkedArray, entry: pa.ChunkedArray, map_idx: pa.ChunkedArray) -> None:
        """One process's present or swapped pages (vpn order), their pagemap entries and mappings."""
        self._resolve()  # the processes before it first: rows stay in capture order
        self._add(pid, vpn, entry, map_idx)

    def add_spool(self, pid: int, spool: _PageSpool) -> None:
        """A big process's pages, spilled while it was read: added part by part, the spool closed."""
        self._resolve()
        self.spooled += 1
        try:
            for vpn, entry, map_idx in spool.parts():
                self._add(pid, pa.chunked_array([vpn], _U64), pa.chunked_array([entry], _U64),
                          pa.chunked_array([map_idx], pa.int32()))
        finally:
            spool.close()

    def _add(self, pid: int, vpn: pa.ChunkedArray, entry: pa.ChunkedArray, map_idx: pa.ChunkedArray) -> None:
        self._buf.append((pid, vpn, entry, map_idx))
        self._buf_rows += len(vpn)
        self.rows += len(vpn)
        if self._buf_rows >= FLUSH_PAGE_ROWS:
            self.flush(final=False)

    def _collect_pfns(self, entry: pa.ChunkedArray) -> None:
        """The batch's distinct nonzero PFNs of present pages, as one sorted run."""
        present = pc.bit_wise_and(pc.filter(entry, pc.greater_equal(entry, _PRESENT)), _PFN_MASK)
        if not len(present):
            return
        self.any_present = True
        nz = pc.filter(present, pc.not_equal(present, _ZERO))
        if not len(nz):
            return
        self.any_nonzero_pfn = True
        if self.want_pfns:
            self._runs.add(sorted_unique(nz))

    def flush(self, final: bool = True) -> None:
        """Hand the buffered rows to the writer thread in batches of at most FLUSH_PAGE_ROWS rows (each
        submit first waits for the batch before), collecting each batch's PFNs (a few Arrow calls per batch,
        not per process).  Unless ``final``, rows short of a full batch stay buffered."""
        self._resolve()
        buf, n = self._buf, self._buf_rows
        self._buf, self._buf_rows = [], 0
        if not buf:
            return
        F = FLUSH_PAGE_ROWS
        if n <= F:
            batches = [buf]
        else:  # more than a batch (a big process): cut into batches of F rows, in capture order
            pid = pa.concat_arrays([pa.repeat(pa.scalar(p, pa.int32()), len(v)) if isinstance(p, int) else p
                                    for p, v, _, _ in buf])
            vpn = pa.chunked_array([c for _, v, _, _ in buf for c in v.chunks], _U64)
            entry = pa.chunked_array([c for _, _, e, _ in buf for c in e.chunks], _U64)
            midx = pa.chunked_array([c for _, _, _, m in buf for c in m.chunks], pa.int32())
            full = n if final else n // F * F
            batches = [[(pid.slice(i, F), vpn.slice(i, F), entry.slice(i, F), midx.slice(i, F))]
                       for i in range(0, full, F)]
            if full < n:  # the rest waits for the next rows
                self._buf, self._buf_rows = [(pid.slice(full), vpn.slice(full), entry.slice(full),
                                              midx.slice(full))], n - full
            del pid, vpn, entry, midx
        del buf
        for b in batches:
            self._collect_pfns(pa.chunked_array([c for _, _, e, _ in b for c in e.chunks], _U64))
            self.bg.submit(self._write, b)
        del b, batches

    def _write(self, buf: list[tuple]) -> None:
        """One batch, in the writer thread: sorted for storage (see storage_order), encoded, written.  ``buf``:
        (pid, vpn, entry, map_idx) per process; pid an int, or an int32 array of one pid per row."""
        pid = pa.concat_arrays([pa.repeat(pa.scalar(p, pa.int32()), len(v)) if isinstance(p, int) else p
                                for p, v, _, _ in buf])
        vpn = pa.concat_arrays([c for _, v, _, _ in buf for c in v.chunks])
        entry = pa.concat_arrays([c for _, _, e, _ in buf for c in e.chunks])
        map_idx = pa.concat_arrays([c for _, _, _, m in buf for c in m.chunks])
        del buf
        n = len(vpn)
        self.max_batch_rows = max(self.max_batch_rows, n)
        if self.pseudo is not None:
            entry = self.pseudo.entries(entry)
        order = storage_order(entry)
        if self._sid_col is None or len(self._sid_col) < n:
            self._sid_col = pa.repeat(self.snapshot_id, n)
        self.table.write(pa.table({
            "snapshot_id": self._sid_col.slice(0, n),
            "pid": pc.take(pid, order),
            "vpn": pc.take(vpn, order),
            "entry": pc.take(entry, order),
            "map_idx": pc.take(map_idx, order),
        }, schema=self.table.schema))

    def pfns(self):
        """The distinct PFNs seen, ascending, in pieces (see :class:`_PfnRuns`); the spilled runs are
        consumed."""
        return self._runs.sorted()

    def close(self) -> None:
        """Drop the spilled runs (a capture that failed or did not want frames)."""
        self._runs.close()


class _MappingSink:
    """Where the ``mappings`` rows go: kept as one Python list per column (each process's parsed columns
    appended, no dict per row), converted column by column and written every FLUSH_MAPPING_ROWS rows
    (bounded memory)."""

    def __init__(self, table: TableWriter, snapshot_id: str):
        self.table, self.snapshot_id = table, snapshot_id
        self._names = table.schema.names
        self._cols: dict[str, list] = {k: [] for k in self._names}
        self._n = 0
        self.max_rows = 0  # the most rows held at once

    def add(self, pid: int, n: int, cols: dict[str, list], source: str | None) -> None:
        """One process's ``n`` mappings: ``cols`` as from parse_smaps_columns (a missing column is NULL)."""
        if not n:
            return
        given = dict(cols, snapshot_id=[self.snapshot_id] * n, pid=[pid] * n, idx=range(n), source=[source] * n)
        nulls = None
        for k, out in self._cols.items():
            v = given.get(k)
            if v is None:
                v = nulls = nulls or [None] * n
            out.extend(v)
        self._n += n
        self.max_rows = max(self.max_rows, self._n)
        if self._n >= FLUSH_MAPPING_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._n:
            schema = self.table.schema
            self.table.write(pa.Table.from_arrays([pa.array(self._cols[f.name], f.type) for f in schema],
                                                  schema=schema))
            self._cols = {k: [] for k in self._names}
            self._n = 0


def own_frame_refs(fs: ProcFS, pid: int, page_size: int):
    """The observer's own references to frames (issue 16 item 5; docs/design.md, "The observer"): how many
    present pages of process ``pid`` (the recorder itself) map each PFN, from its own maps and pagemap, read
    in PAGEMAP_CHUNK_PAGES windows.  Returns ``(pfns, refs)`` (distinct PFNs, uint64; counts, int64), or None
    when they cannot be read (a fake procfs without the recorder's pid, no PFNs).  Bounded by the recorder's
    own RSS (one PFN per present page, about 40k here), not by the machine."""
    try:
        maps = fs.read(pid, "maps").decode("utf-8", "replace")
        spans = []
        for line in maps.splitlines():
            f = line.split()
            if f and not line.endswith("[vsyscall]"):  # above TASK_SIZE: not in pagemap
                lo, _, hi = f[0].partition("-")
                spans.append((int(lo, 16), int(hi, 16)))
        path = fs.path(pid, "pagemap")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, MemsnapError, ValueError):
        return None
    found = []
    try:
        for first, last in merge_ranges(spans, page_size):
            for v in range(first, last, PAGEMAP_CHUNK_PAGES):
                n = min(last - v, PAGEMAP_CHUNK_PAGES)
                buf = os.pread(fd, n * 8, v * 8)
                a = u64_array(buf[:len(buf) // 8 * 8])
                present = pc.bit_wise_and(pc.filter(a, pc.greater_equal(a, _PRESENT)), _PFN_MASK)
                if len(present):
                    found.append(present)
    except OSError:
        return None
    finally:
        os.close(fd)
    pfns = pa.concat_arrays(found) if found else pa.array([], _U64)
    if not len(pfns) or pc.max(pfns).as_py() == 0:  # PFNs hidden (no CAP_SYS_ADMIN): nothing to subtract
        return None
    vc = pc.value_counts(pfns)
    return vc.field("values"), pc.cast(vc.field("counts"), pa.int64())


class _FramesWriter:
    """The ``frames`` table: for each distinct PFN seen, its /proc/kpagecount, kpageflags and kpagecgroup
    values, read by :class:`_KpageRuns` and written FRAMES_WINDOW PFNs at a time (bounded memory).
    Unreadable kpagecount/kpageflags leave mapcount and flags NULL (with a warning); an unreadable kpagecgroup
    (kernel without CONFIG_MEMCG) leaves memcg_ino NULL.  With pseudonymized PFNs each window's rows are in
    pseudonym order."""

    def __init__(self, fs: ProcFS, table: TableWriter, snapshot_id: str, pseudo, own=None):
        self.fs, self.table, self.snapshot_id, self.pseudo = fs, table, snapshot_id, pseudo
        self.own = own  # own_frame_refs() of the recorder, read just before the kpage* reads, or None
        self.kpage_ok = self.cgroup_ok = True  # until a read fails (then not tried again)
        self.max_window = 0  # the most PFNs read and written at once (bounded by FRAMES_WINDOW + a merge piece)
        self._sid_col: pa.Array | None = None

    def write(self, pfns, warnings: list[str]) -> int:
        """Read and write the frames of ``pfns``: sorted distinct PFNs, one Arrow array or ascending pieces of
        them.  Returns the number of rows."""
        pieces = [pfns] if isinstance(pfns, (pa.Array, pa.ChunkedArray)) else pfns
        held, n_held, rows = [], 0, 0
        for p in pieces:
            held.append(p)
            n_held += len(p)
            if n_held >= FRAMES_WINDOW:
                rows += self._window(held, warnings)
                held, n_held = [], 0
        if held:
            rows += self._window(held, warnings)
        return rows

    def _window(self, pieces: list, warnings: list[str]) -> int:
        pfns = pa.chunked_array(pieces, _U64).combine_chunks()
        del pieces[:]
        n = len(pfns)
        self.max_window = max(self.max_window, n)
        for step in range(0, n, FRAMES_WINDOW):
            part = pfns.slice(step, FRAMES_WINDOW)
            cols = self._read(part, warnings)
            if self.pseudo is not None:  # frames keyed by pseudonym, in pseudonym order (within the window)
                pseudo = self.pseudo.pfns(part)
                order = pc.sort_indices(pseudo)
                part = pc.take(pseudo, order)
                cols = {k: pc.take(v, order) for k, v in cols.items()}
            self._write_rows(part, cols)
        return n

    def _read(self, pfns: pa.Array, warnings: list[str]) -> dict[str, pa.Array]:
        fs, cols = self.fs, {}
        runs = _KpageRuns(pfns)
        if self.kpage_ok:
            try:
                cols["mapcount"] = pc.cast(runs.read(fs.path("kpagecount")), pa.int64())
                cols["flags"] = runs.read(fs.path("kpageflags"))
            except OSError as e:
                warnings.append(f"cannot read {e.filename or fs.path('kpagecount')}: {e.strerror}; "
                                "frames has PFNs without mapcount/flags")
                self.kpage_ok = False
                cols = {}
        if self.cgroup_ok:
            try:
                cols["memcg_ino"] = runs.read(fs.path("kpagecgroup"))
            except OSError:
                self.cgroup_ok = False  # kernel without CONFIG_MEMCG: memcg_ino stays NULL
        if self.own is not None and "mapcount" in cols:  # the recorder's own references to these frames
            own_pfns, own_refs = self.own
            cols["recorder_refs"] = pc.fill_null(pc.take(own_refs, pc.index_in(pfns, options=SetLookupOptions(own_pfns))), 0)
        return cols

    def _write_rows(self, pfns: pa.Array, cols: dict[str, pa.Array]) -> None:
        n = len(pfns)
        if self._sid_col is None or len(self._sid_col) < n:
            self._sid_col = pa.repeat(self.snapshot_id, n)
        types = {"mapcount": pa.int64(), "flags": pa.uint64(), "memcg_ino": pa.uint64(), "recorder_refs": pa.int64()}
        data = {"snapshot_id": self._sid_col.slice(0, n), "pfn": pfns}
        for k, t in types.items():
            data[k] = cols[k] if k in cols else pa.nulls(n, t)
        self.table.write(pa.table(data, schema=self.table.schema))


class Recorder:
    """Captures snapshots into a store.  ``progress(done, total)`` and ``should_stop()`` are optional hooks."""

    def __init__(self, opts: Options, progress=None, should_stop=None):
        opts.validate()
        self.opts = opts
        self.fs = ProcFS(opts.procfs)
        self.progress = progress or (lambda done, total: None)
        self.should_stop = should_stop or (lambda: False)
        self.guard = MemoryGuard.for_self()  # the real /proc: the recorder's own cgroup, whatever opts.procfs is
        self.key = None
        self.pseudo = None
        if opts.redact or opts.pseudonymize_pfns:
            from .privacy import Pseudonymizer, load_key

            self.key = load_key(opts.key_file)
            if opts.pseudonymize_pfns:
                self.pseudo = Pseudonymizer(self.key)

    def capture(self) -> Result:
        opts, fs = self.opts, self.fs
        t_start = time.monotonic()
        cleaned = recover(opts.store)
        start = datetime.now(timezone.utc)
        info = system_info(fs)
        host = safe_host(opts.host or info["hostname"])
        sid = new_snapshot_id(start, host, info["boot_id"])
        res = Result(sid, opts.store, host)
        if cleaned:
            res.warnings.append(f"removed {len(cleaned)} incomplete snapshot(s) left by an interrupted recorder: "
                                + ", ".join(cleaned))
        meminfo = parse_meminfo(fs.read("meminfo"), fs.path("meminfo"))
        writer = SnapshotWriter(opts.store, host, sid, partition_date(start))
        try:
            self._capture_into(writer, res, info, meminfo, start)
        except BaseException:
            writer.abort()
            raise
        if opts.keep is not None or opts.max_store_bytes is not None:
            removed = apply_retention(opts.store, host, opts.keep, opts.max_store_bytes)
            if removed:
                res.warnings.append(f"retention removed {len(removed)} old snapshot(s): {', '.join(removed)}")
        res.seconds = time.monotonic() - t_start
        return res

    def _capture_into(self, writer: SnapshotWriter, res: Result, info: dict, meminfo, start) -> None:
        bg = _WriterThread()
        try:
            self._capture_with(writer, res, info, meminfo, start, bg)
        finally:
            bg.close()

    def _capture_with(self, writer: SnapshotWriter, res: Result, info: dict, meminfo, start,
                      bg: _WriterThread) -> None:
        opts, sid = self.opts, res.snapshot_id
        writer.table("meminfo").write(meminfo_columns(sid, meminfo))
        pids = select_pids(self.fs, opts, os.getpid())
        pages = _PageSink(writer.table("pages"), sid, bg, self.pseudo, want_pfns="kpage" in opts.sources,
                          spill_dir=layout.inprogress_dir(opts.store))  # PFN runs: unlinked files there
        try:
            maps = _MappingSink(writer.table("mappings"), sid)
            res.counts = self._record_processes(writer, pids, sid, info["page_size_bytes"], pages, maps)
            check_recorded(res.counts, len(pids), res.warnings, self._denied_why)
            res.pages = pages.rows
            res.pfn_available = self._pfn_available(pages, res.warnings)
            frames = None
            if "kpage" in opts.sources and res.pfn_available:
                self.guard.check("reading kpage* of the frames", pending=FRAMES_WINDOW * FRAME_PEAK_BYTES,
                                 force=True)  # at most FRAMES_WINDOW frames are held at once
                # the observer's own pages, read just before kpagecount (docs/design.md, "The observer")
                own = own_frame_refs(self.fs, os.getpid(), info["page_size_bytes"])
                frames = _FramesWriter(self.fs, writer.table("frames"), sid, self.pseudo, own)
                res.frames = frames.write(pages.pfns(), res.warnings)
        finally:
            pages.close()
        self.sinks = pages, maps, frames  # for the tests: the bounds they record (max_batch_rows, ...)
        whole = self._whole_memory(writer, sid, info["page_size_bytes"], res.warnings)
        snap = self._snapshot_row(res, info, start, len(pids), frames)
        snap.update(whole)
        bg.wait()  # the last page rows are written
        res.bytes_written = writer.commit(snap)

    def _whole_memory(self, writer: SnapshotWriter, sid: str, page_size: int, warnings: list[str]) -> dict:
        """The opt-in sources physmem (every frame, classified and counted) and cgroups (the memory cgroups):
        recorder/physmem.py.  Returns their snapshots columns."""
        from . import physmem

        opts, out = self.opts, {}
        if "physmem" in opts.sources or "cgroups" in opts.sources:
            found = (opts.cgroup_root, None) if opts.cgroup_root else physmem.find_memory_hierarchy(self.fs.root)
            if found is None:
                warnings.append("cgroups: no memory cgroup hierarchy mounted (none in /proc/self/mounts)")
            else:
                version = found[1] or physmem.hierarchy_version(found[0])
                t = writer.table("cgroups")
                rows = [dict(r, snapshot_id=sid) for r in physmem.read_cgroups(found[0], version)]
                t.write(pa.Table.from_pylist(rows, schema=t.schema))
                out["cgroup_version"] = version
        if "physmem" in opts.sources:
            # at most one chunk's buffers and Arrow temporaries are held (PHYSMEM_CHUNK frames)
            self.guard.check("reading every frame (physmem)", pending=physmem.PEAK_BYTES, force=True)
            reader = physmem.PhysmemReader(self.fs.root, page_size)
            cols = reader.run(warnings)
            n = len(cols["class"])
            t = writer.table("physmem")
            t.write(pa.table({"snapshot_id": pa.repeat(sid, n), **cols}, schema=t.schema))
            out.update(physmem_frames=reader.frames, physmem_ms=reader.seconds * 1000)
            self.physmem = reader  # for the tests and the bench: its bounds and times
        return out

    def _record_processes(self, writer: SnapshotWriter, pids: list[int], sid: str, page_size: int,
                          pages: _PageSink, maps: _MappingSink) -> dict:
        """Capture each process into the sinks, then write the processes table.  Returns counts per status."""
        counts = dict.fromkeys(("ok", "partial", "vanished", "denied", "zombie", "kernel_thread"), 0)
        self._denied_why = None
        self._low_impact = 0
        proc_rows: list[dict] = []
        pw = writer.table("processes")

        def write_rows():
            pages._resolve()  # every pending small process's row["pages"] is set
            for r in proc_rows:
                map_items(r, "rollup_other_kb")
            pw.write(pa.Table.from_pylist(proc_rows, schema=pw.schema))
            proc_rows.clear()

        for i, pid in enumerate(pids):
            if self.should_stop():
                raise Interrupted("interrupted: snapshot discarded")
            self.guard.check(f"at process {i + 1} of {len(pids)}", pending=pages.pending_rows() * PAGE_ROW_PEAK_BYTES)
            proc = _ProcessCapture(self.fs, pid, self.opts, page_size)
            proc.run()
            counts[proc.row["status"]] += 1
            self._low_impact += proc.low and proc.row["status"] in ("ok", "partial")
            if proc.row["status"] == "denied" and self._denied_why is None:
                self._denied_why = f"pid {pid}: {proc.row.get('error')}"
            self._label(proc, sid)
            proc_rows.append(proc.row)
            maps.add(pid, proc.n_mappings, proc.mappings, proc.mapping_source)
            if proc.raw_pagemap is not None:  # filtered in a batch of processes; sets row["pages"]
                pages.add_raw(pid, proc.raw_pagemap, proc.row)
            elif proc.vpn is not None and len(proc.vpn):
                pages.add(pid, proc.vpn, proc.entry, proc.map_idx)
            elif proc.spool is not None:
                pages.add_spool(pid, proc.spool)
            if len(proc_rows) >= FLUSH_PROCESS_ROWS:
                write_rows()
            self.progress(i + 1, len(pids))
        self.guard.check("writing the page rows", pending=pages.pending_rows() * PAGE_ROW_PEAK_BYTES, force=True)
        pages.flush()
        maps.flush()
        write_rows()
        return counts

    def _label(self, proc: _ProcessCapture, sid: str) -> None:
        """Snapshot id, pid and what --redact hides, on one process's rows."""
        redact, key = self.opts.redact, self.key
        proc.row["snapshot_id"] = sid
        if "cmdline" in redact:
            proc.row["cmdline"] = redact_cmdline(key, proc.row.get("cmdline"))
        if "paths" in redact:
            proc.row["exe"] = redact_path(key, proc.row.get("exe"))
        m = proc.mappings
        if "paths" in redact and "path" in m:
            m["path"] = [redact_path(key, p) for p in m["path"]]
        if "other_kb" in m:  # {name: kB} dicts -> the (key, value) pairs of the map column
            m["other_kb"] = [None if d is None else list(d.items()) for d in m["other_kb"]]

    def _pfn_available(self, pages: _PageSink, warnings: list[str]) -> bool | None:
        """PFNs are real only with CAP_SYS_ADMIN; without it they read as 0 while the flags stay."""
        sources = self.opts.sources
        if pages.any_present:
            available = pages.any_nonzero_pfn
        else:
            available = _has_cap(self.fs, CAP_SYS_ADMIN) if "pagemap" in sources else None
        if "pagemap" in sources and available is False:
            warnings.append("pagemap PFNs read as 0 (no CAP_SYS_ADMIN): snapshot recorded with "
                            "pfn_available=false, pagemap flags only, no frames; run as root for PSS/USS "
                            "from pages and shared-page attribution")
            if self._low_impact:
                warnings.append(f"{self._low_impact} process(es) read in low-impact mode (no smaps/smaps_rollup) "
                                "have no PFNs: `memsnap sizes` cannot compute their RSS/PSS; run as root, or use "
                                "--impact full")
        return available

    def _snapshot_row(self, res: Result, info: dict, start: datetime, seen: int,
                      frames: _FramesWriter | None) -> dict:
        opts = self.opts
        return snapshot_row(
            res.snapshot_id, info, start=start, end=datetime.now(timezone.utc),
            options={k: v for k, v in asdict(opts).items() if k not in ("procfs", "key_file")},
            sources=opts.sources, seen=seen, counts=res.counts, pfn_available=res.pfn_available,
            kpage_available=frames is not None and frames.kpage_ok,
            kpagecgroup_available=frames is not None and frames.cgroup_ok,
            pages_rows=res.pages, frames_rows=res.frames, warnings=res.warnings,
            recorder_pid=os.getpid(), recorder_uid=os.geteuid(),
            pfn_pseudonymized=bool(self.pseudo is not None and res.pfn_available), redacted=opts.redact)


def set_low_priority(nice: int | None, ionice: str | None) -> list[str]:
    """Lower the recorder's CPU and I/O priority.  Returns warnings for what could not be set."""
    warnings = []
    if nice:
        try:
            os.nice(nice)
        except OSError as e:
            warnings.append(f"cannot set nice {nice}: {e.strerror}")
    if ionice and ionice != "none":
        import ctypes
        classes = {"realtime": 1, "best-effort": 2, "idle": 3}
        ioprio = classes[ionice] << 13 | (7 if ionice == "best-effort" else 0)
        libc = ctypes.CDLL(None, use_errno=True)
        nr = {"x86_64": 251, "aarch64": 30}.get(os.uname().machine)  # ioprio_set
        if nr is None or libc.syscall(nr, 1, 0, ioprio) != 0:  # IOPRIO_WHO_PROCESS, self
            warnings.append(f"cannot set I/O priority {ionice}")
    return warnings
