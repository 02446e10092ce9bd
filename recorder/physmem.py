"""The whole-memory source (``record --sources ...,physmem``): every physical frame classified and counted.

/proc/kpageflags, /proc/kpagecount and /proc/kpagecgroup are read for every PFN, PHYSMEM_CHUNK frames at a
time (three buffers of 2 MiB: the memory does not grow with the machine), each frame put into exactly one class
of :data:`schema.PHYSMEM_CLASSES` by :data:`RULES` (the first rule that applies wins), and the frames counted per
(class, memory cgroup, mapped, dirty, writeback, active): the ``physmem`` table holds those counts, not a row
per frame.  The bits and why each rule is what it is: docs/design.md, "Whole memory".

:func:`read_cgroups` records the memory cgroup hierarchy (v1 or v2) into the ``cgroups`` table: each cgroup's
path, inode (what kpagecgroup reports) and memory controller figures.

Nothing here prints.  Arrow compute goes through ``capture.pc`` (no import of pyarrow.compute).
"""
from __future__ import annotations

import os
import time

import pyarrow as pa

from schema import PHYSMEM_CLASSES

from .capture import _U64, pc, u64_array

#: frames read from each kpage* file at a time (2 MiB per file).  A multiple of the largest buddy block
#: (2^MAX_PAGE_ORDER = 1024 pages on x86-64) so that chunks start on a block boundary.
PHYSMEM_CHUNK = 1 << 18
#: what reading and classifying a chunk adds to the recorder's memory, for its memory guard: measured +22 MiB of
#: VmHWM over the interpreter and imports, on this machine and on a fake 1 TiB one (BENCHMARKS.md, "Whole memory")
PEAK_BYTES = 24 << 20

# kpageflags bits (include/uapi/linux/kernel-page-flags.h; 32+ from fs/proc/internal.h, exported by
# fs/proc/page.c stable_page_flags: verified on this machine's Linux 6.18, docs/design.md "Whole memory")
KPF = {"dirty": 4, "lru": 5, "active": 6, "slab": 7, "writeback": 8, "buddy": 10, "mmap": 11, "anon": 12,
       "swapcache": 13, "swapbacked": 14, "huge": 17, "unevictable": 18, "hwpoison": 19, "nopage": 20, "ksm": 21,
       "offline": 23, "zero_page": 24, "pgtable": 26, "reserved": 32, "uptodate": 3}

#: (class, condition) in priority order: a frame takes the class of the first condition it meets.  A condition is
#: a tuple of terms that must all hold; a term is a bit name, ``"!bit"`` (bit clear), ``"any:a|b|..."`` (one of
#: them set), ``"mapped"`` (MMAP set or kpagecount > 0), ``"!ram"`` (outside every System RAM range of
#: /proc/iomem).  ``other_kernel`` takes what is left, so every frame has exactly one class.
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hole", ("any:nopage|!ram",)),
    ("reserved", ("reserved",)),
    ("free", ("buddy",)),
    ("offline", ("any:offline|hwpoison",)),
    ("slab", ("slab",)),
    ("pagetable", ("pgtable",)),
    ("hugetlb", ("huge",)),
    ("zero_page", ("zero_page",)),
    ("ksm", ("ksm",)),
    ("swapcache", ("swapcache",)),
    ("anon", ("anon",)),
    ("shmem", ("swapbacked",)),
    ("file_mapped", ("any:lru|unevictable|uptodate|dirty|writeback", "mapped")),
    ("file_unmapped", ("any:lru|unevictable|uptodate|dirty|writeback",)),
)
OTHER = "other_kernel"
_COUNT_BIT = 33    # in a frame's key: kpagecount > 0
_NOTRAM_BIT = 34   # in a frame's key: outside every System RAM range
_MEMCG_SHIFT = 35  # in a frame's key: the index of its memory cgroup in the chunk's dictionary
_FLAG_MASK = sum(1 << b for b in KPF.values())
assert _FLAG_MASK < 1 << _COUNT_BIT
assert [c for c, _ in RULES] + [OTHER] == list(PHYSMEM_CLASSES), "RULES and schema.PHYSMEM_CLASSES disagree"
CODE = {c: i for i, c in enumerate(PHYSMEM_CLASSES)}


def _term(t: str, k: int) -> bool:
    if t.startswith("any:"):
        return any(_term(p, k) for p in t[4:].split("|"))
    if t.startswith("!"):
        return not _term(t[1:], k)
    if t == "mapped":
        return bool(k >> KPF["mmap"] & 1 or k >> _COUNT_BIT & 1)
    if t == "ram":
        return not k >> _NOTRAM_BIT & 1
    return bool(k >> KPF[t] & 1)


def classify(k: int) -> tuple[int, int]:
    """A frame's key (see PhysmemReader._add) -> (class code, bits): mapped 1, dirty 2, writeback 4, active 8."""
    code = next((CODE[c] for c, cond in RULES if all(_term(t, k) for t in cond)), CODE[OTHER])
    bits = sum(1 << i for i, t in enumerate(("mapped", "dirty", "writeback", "active")) if _term(t, k))
    return code, bits


def parse_iomem_ram(text: str, page_size: int) -> list[tuple[int, int]] | None:
    """The PFN ranges [first, end) of the top-level ``System RAM`` entries of /proc/iomem, or None when it shows
    no addresses (not root: the kernel prints zeros) or none is RAM."""
    out = []
    for line in text.splitlines():
        if line.startswith(" ") or ":" not in line:
            continue  # children of a top-level range
        span, _, name = line.partition(" : ")
        if name.strip() != "System RAM":
            continue
        lo, _, hi = span.partition("-")
        try:
            lo, hi = int(lo, 16), int(hi, 16)
        except ValueError:
            continue
        out.append((-(-lo // page_size), (hi + 1) // page_size))
    if not out or all(lo == 0 and hi == 0 for lo, hi in out):
        return None
    return sorted((lo, hi) for lo, hi in out if hi > lo)


class PhysmemReader:
    """Reads and classifies every frame; :meth:`run` returns the ``physmem`` table's rows as columns.

    ``root``: the procfs root (a fake tree in tests).  Counts per group are kept in a dict (a few hundred groups
    at most: classes x memory cgroups x 16), so memory is the chunk's buffers and Arrow temporaries."""

    def __init__(self, root: str = "/proc", page_size: int | None = None, chunk: int = PHYSMEM_CHUNK):
        self.root = root
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self.chunk = chunk
        self.frames = 0
        self.seconds = 0.0
        self.read_seconds = 0.0
        self.cgroup_ok = True
        self.count_ok = True
        self.ram = None  # System RAM PFN ranges, or None (every frame is RAM)
        self.counts: dict[tuple, int] = {}
        self.max_chunk = 0

    def _path(self, name: str) -> str:
        return os.path.join(self.root, name)

    def run(self, warnings: list[str]) -> dict[str, list]:
        t0 = time.monotonic()
        try:
            with open(self._path("iomem")) as f:
                self.ram = parse_iomem_ram(f.read(), self.page_size)
        except OSError:
            self.ram = None
        if self.ram is None:
            warnings.append("physmem: /proc/iomem shows no System RAM ranges (not root?): frames outside RAM "
                            "(holes with a memmap) are not told apart from kernel frames")
        fds = {}
        try:
            fds["flags"] = os.open(self._path("kpageflags"), os.O_RDONLY | os.O_CLOEXEC)
            for name, attr in (("count", "count_ok"), ("cgroup", "cgroup_ok")):
                try:
                    fds[name] = os.open(self._path("kpage" + name), os.O_RDONLY | os.O_CLOEXEC)
                except OSError as e:
                    setattr(self, attr, False)
                    warnings.append(f"physmem: cannot read {e.filename}: {e.strerror}"
                                    + ("; memcg_ino is NULL" if name == "cgroup" else "; mapped from kpageflags"))
            pfn = 0
            while True:
                t = time.monotonic()
                bufs = {k: self._pread(fd, pfn) for k, fd in fds.items()}
                self.read_seconds += time.monotonic() - t
                n = len(bufs["flags"]) // 8
                if not n:
                    break
                self._add(pfn, {k: u64_array(b[:n * 8]) if len(b) >= n * 8 else None for k, b in bufs.items()})
                self.frames += n
                pfn += n
                if n < self.chunk:
                    break
        finally:
            for fd in fds.values():
                os.close(fd)
        self.seconds = time.monotonic() - t0
        return self.columns()

    def _pread(self, fd: int, pfn: int) -> bytearray:
        buf = bytearray(self.chunk * 8)
        mv, got = memoryview(buf), 0
        while got < len(buf):  # the kernel may return less than asked (it never crosses max_pfn)
            k = os.preadv(fd, [mv[got:]], pfn * 8 + got)
            if k <= 0:
                break
            got += k
        del mv
        return buf[:got] if got < len(buf) else buf

    def _outside_ram(self, pfn: int, n: int):
        """True for the frames of [pfn, pfn + n) outside every System RAM range (run-end encoded, then decoded),
        or None when all of them are inside one (the usual chunk)."""
        if self.ram is None or any(lo <= pfn and pfn + n <= hi for lo, hi in self.ram):
            return None
        ends, vals, at = [], [], pfn
        for lo, hi in self.ram:
            lo, hi = max(lo, pfn), min(hi, pfn + n)
            if hi <= lo:
                continue
            if lo > at:
                ends.append(lo - pfn)
                vals.append(True)
            ends.append(hi - pfn)
            vals.append(False)
            at = hi
        if at < pfn + n:
            ends.append(n)
            vals.append(True)
        return pc.run_end_decode(pa.RunEndEncodedArray.from_arrays(pa.array(ends, pa.int32()),
                                                                   pa.array(vals, pa.bool_())))

    def _add(self, pfn: int, cols: dict) -> None:
        """One chunk: each frame reduced to one 64-bit key (the kpageflags bits the rules read, a kpagecount > 0
        bit, an outside-RAM bit, and the index of its memory cgroup in the chunk's dictionary of them), the
        distinct keys counted (about ten Arrow calls per chunk, whatever its size), then each distinct key
        classified in Python by :func:`classify` (a few hundred per chunk)."""
        flags, n = cols["flags"], len(cols["flags"])
        self.max_chunk = max(self.max_chunk, n)
        key = pc.bit_wise_and(flags, pa.scalar(_FLAG_MASK, _U64))
        if cols.get("count") is not None:  # 0 or 1: kpagecount > 0
            key = pc.bit_wise_or(key, pc.shift_left(pc.min_element_wise(cols["count"], pa.scalar(1, _U64)),
                                                    pa.scalar(_COUNT_BIT, _U64)))
        out = self._outside_ram(pfn, n)
        if out is not None:
            key = pc.bit_wise_or(key, pc.shift_left(pc.cast(out, _U64), pa.scalar(_NOTRAM_BIT, _U64)))
        memcgs = [None]
        if cols.get("cgroup") is not None:
            enc = pc.dictionary_encode(cols["cgroup"])
            memcgs = enc.dictionary.to_pylist()
            key = pc.bit_wise_or(key, pc.shift_left(pc.cast(enc.indices, _U64), pa.scalar(_MEMCG_SHIFT, _U64)))
        vc = pc.value_counts(key)
        counts = self.counts
        for k, c in zip(vc.field(0).to_pylist(), vc.field(1).to_pylist()):
            g = (memcgs[k >> _MEMCG_SHIFT], *classify(k))
            counts[g] = counts.get(g, 0) + c

    def columns(self) -> dict[str, list]:
        cols: dict[str, list] = {k: [] for k in ("class", "memcg_ino", "mapped", "dirty", "writeback", "active",
                                                 "frames")}
        for (memcg, code, b), c in sorted(self.counts.items(), key=lambda kv: (kv[0][1], kv[0][0] or 0, kv[0][2])):
            memcg = memcg if self.cgroup_ok else None
            cols["class"].append(PHYSMEM_CLASSES[code])
            cols["memcg_ino"].append(memcg)
            for i, name in enumerate(("mapped", "dirty", "writeback", "active")):
                cols[name].append(bool(b >> i & 1))
            cols["frames"].append(c)
        return cols


# --------------------------------------------------------------------------- cgroups

#: cgroup v1 memory.limit_in_bytes when unlimited (PAGE_COUNTER_MAX pages, rounded to a page): 2^63 - 4096 on
#: 4 KiB pages.  Larger than any real limit; NULL in the table like v2's "max".
_V1_UNLIMITED = 1 << 62


def find_memory_hierarchy(proc_root: str = "/proc") -> tuple[str, int] | None:
    """(mount point, version) of the memory controller's hierarchy, from <proc>/self/mounts: a v1 ``cgroup``
    mount with the ``memory`` option, else the ``cgroup2`` mount (when its root lists memory in
    cgroup.controllers, or has no such file to say otherwise)."""
    try:
        with open(os.path.join(proc_root, "self", "mounts")) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    v2 = None
    for line in lines:
        parts = line.split()
        if len(parts) < 4:
            continue
        mnt, fstype, opts = parts[1].replace("\\040", " "), parts[2], parts[3].split(",")
        if fstype == "cgroup" and "memory" in opts:
            return mnt, 1
        if fstype == "cgroup2" and v2 is None:
            v2 = mnt
    if v2 is not None:
        try:
            with open(os.path.join(v2, "cgroup.controllers")) as f:
                if "memory" not in f.read().split():
                    return None
        except OSError:
            pass
        return v2, 2
    return None


def hierarchy_version(root: str) -> int:
    """2 when ``root`` is a unified hierarchy (it has cgroup.controllers), else 1."""
    return 2 if os.path.exists(os.path.join(root, "cgroup.controllers")) else 1


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, memory.events, memory.oom_control) as {key: int}; others skipped."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                pass
    return out


def _read(d: str, name: str) -> str | None:
    try:
        with open(os.path.join(d, name)) as f:
            return f.read()
    except OSError:
        return None


def _int(text: str | None, unlimited: int | None = None) -> int | None:
    if text is None:
        return None
    t = text.strip()
    if t == "max":
        return None
    try:
        v = int(t)
    except ValueError:
        return None
    return None if unlimited is not None and v >= unlimited else v


#: per version: column -> (file, unlimited threshold)
_FIGURES = {
    2: {"memory_current_bytes": ("memory.current", None), "memory_max_bytes": ("memory.max", None),
        "memory_peak_bytes": ("memory.peak", None)},
    1: {"memory_current_bytes": ("memory.usage_in_bytes", None), "memory_max_bytes": ("memory.limit_in_bytes",
                                                                                      _V1_UNLIMITED),
        "memory_peak_bytes": ("memory.max_usage_in_bytes", None)},
}


def cgroup_row(root: str, d: str, version: int) -> dict:
    """One cgroup directory ``d`` below the hierarchy ``root``: its ``cgroups`` row (without snapshot_id)."""
    rel = os.path.relpath(d, root)
    row = {"path": "/" if rel == "." else "/" + rel, "ino": os.stat(d).st_ino, "version": version}
    procs = _read(d, "cgroup.procs")
    row["procs"] = None if procs is None else sum(1 for ln in procs.splitlines() if ln.strip())
    for col, (name, unlimited) in _FIGURES[version].items():
        row[col] = _int(_read(d, name), unlimited)
    stat = _read(d, "memory.stat")
    row["stat"] = list(parse_flat_keyed(stat).items()) if stat is not None else None
    if version == 2:
        ev = _read(d, "memory.events")
        events = parse_flat_keyed(ev) if ev is not None else None
    else:
        events = parse_flat_keyed(_read(d, "memory.oom_control") or "")
        fc = _int(_read(d, "memory.failcnt"))
        if fc is not None:
            events["failcnt"] = fc
        events = events or None
    row["events"] = list(events.items()) if events is not None else None
    return row


def read_cgroups(root: str, version: int | None = None):
    """Every cgroup of the hierarchy mounted at ``root`` (its root first, then depth first), as rows.  A cgroup
    removed during the walk is skipped."""
    version = version or hierarchy_version(root)
    for d, dirs, _ in os.walk(root):
        dirs.sort()
        try:
            yield cgroup_row(root, d, version)
        except FileNotFoundError:
            dirs[:] = []
