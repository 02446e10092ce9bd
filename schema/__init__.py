"""The single description of every table memsnap stores.

Everything else is derived from the definitions here:

* ``arrow_schema(name)`` — the pyarrow schema of the Parquet files (used by the
  recorder and the compactor; pyarrow is imported when it is called, so the analyzer's
  commands that never read a file with pyarrow do not pay for importing it);
* ``duck_type(type)`` — the DuckDB type of a column;
* ``schema.sa.tables()`` — SQLAlchemy Core ``Table`` objects (used by the analyzer);
* ``schema.docs.render()`` — ``docs/schema.md``.

Rules (see docs/design.md): columns are never renamed or retyped; new columns are
added as nullable and bump ``SCHEMA_VERSION``.  Units are part of column names.
A value the kernel did not report is NULL, never 0.

``host`` and ``date`` are Hive partition columns: they live in the directory
names (``<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet``), not in
the files, so every Parquet engine derives them the same way.
"""
from __future__ import annotations

from dataclasses import dataclass, field

SCHEMA_VERSION = 4
#: Parquet key-value metadata keys carried by every file.
META_VERSION = b"memsnap.schema_version"
META_TABLE = b"memsnap.table"

PARTITION_COLUMNS = ("host", "date")


@dataclass(frozen=True)
class Column:
    name: str
    #: the Arrow type, as pyarrow prints it (``str(arrow_type(type))`` is ``type``; tests/test_schema.py checks)
    type: str
    unit: str | None
    description: str
    nullable: bool = True
    since: int = 1


@dataclass(frozen=True)
class Table:
    name: str
    row: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    #: Parquet encodings for columns that should not be dictionary encoded, as (column, encoding) pairs
    encodings: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    #: zstd level used for this table's files
    compression_level: int = 3
    #: storage note (row order etc.), shown in docs
    storage: str = ""

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def C(name, type_, unit, description, nullable=True, since=1):
    return Column(name, type_, unit, description, nullable, since)


STR, I32, I64, U64, F64, BOOL = "string", "int32", "int64", "uint64", "double", "bool"
TS = "timestamp[us, tz=UTC]"
KB_MAP = "map<string, int64>"
#: every column type: (pyarrow constructor, DuckDB type).  A type not here is an error, never a silent guess.
TYPES = {
    STR: (lambda pa: pa.string(), "VARCHAR"),
    I32: (lambda pa: pa.int32(), "INTEGER"),
    I64: (lambda pa: pa.int64(), "BIGINT"),
    U64: (lambda pa: pa.uint64(), "UBIGINT"),
    F64: (lambda pa: pa.float64(), "DOUBLE"),
    BOOL: (lambda pa: pa.bool_(), "BOOLEAN"),
    TS: (lambda pa: pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ"),
    KB_MAP: (lambda pa: pa.map_(pa.string(), pa.int64()), "MAP(VARCHAR, BIGINT)"),
}

SNAPSHOT_ID = C("snapshot_id", STR, None,
                "Snapshot identifier: UTC capture start (sorts by time) + host/boot hash + recorder pid; "
                "unique across hosts.", nullable=False)
PID = C("pid", I32, None, "Process id (unique within a snapshot).", nullable=False)

# smaps fields shared by /proc/<pid>/smaps entries and /proc/<pid>/smaps_rollup.
# (kernel key, column name).  https://docs.kernel.org/filesystems/proc.html
SMAPS_KB_FIELDS = (
    ("Rss", "rss_kb"), ("Pss", "pss_kb"), ("Pss_Dirty", "pss_dirty_kb"),
    ("Shared_Clean", "shared_clean_kb"), ("Shared_Dirty", "shared_dirty_kb"),
    ("Private_Clean", "private_clean_kb"), ("Private_Dirty", "private_dirty_kb"),
    ("Referenced", "referenced_kb"), ("Anonymous", "anonymous_kb"), ("KSM", "ksm_kb"),
    ("LazyFree", "lazyfree_kb"), ("AnonHugePages", "anon_huge_pages_kb"),
    ("ShmemPmdMapped", "shmem_pmd_mapped_kb"), ("FilePmdMapped", "file_pmd_mapped_kb"),
    ("Shared_Hugetlb", "shared_hugetlb_kb"), ("Private_Hugetlb", "private_hugetlb_kb"),
    ("Swap", "swap_kb"), ("SwapPss", "swap_pss_kb"), ("Locked", "locked_kb"),
)
ROLLUP_ONLY_KB_FIELDS = (("Pss_Anon", "pss_anon_kb"), ("Pss_File", "pss_file_kb"), ("Pss_Shmem", "pss_shmem_kb"))
MAPPING_ONLY_FIELDS = (("Size", "size_kb"), ("KernelPageSize", "kernel_page_size_kb"),
                       ("MMUPageSize", "mmu_page_size_kb"))
MAPPING_INT_FIELDS = (("THPeligible", "thp_eligible"), ("ProtectionKey", "protection_key"))

# /proc/<pid>/status fields kept as columns: (key, column, unit)
STATUS_FIELDS = (
    ("VmPeak", "vm_peak_kb"), ("VmSize", "vm_size_kb"), ("VmLck", "vm_lck_kb"), ("VmPin", "vm_pin_kb"),
    ("VmHWM", "vm_hwm_kb"), ("VmRSS", "vm_rss_kb"), ("RssAnon", "rss_anon_kb"), ("RssFile", "rss_file_kb"),
    ("RssShmem", "rss_shmem_kb"), ("VmData", "vm_data_kb"), ("VmStk", "vm_stk_kb"), ("VmExe", "vm_exe_kb"),
    ("VmLib", "vm_lib_kb"), ("VmPTE", "vm_pte_kb"), ("VmSwap", "vm_swap_kb"), ("HugetlbPages", "hugetlb_pages_kb"),
)

_SMAPS_DOC = {
    "rss_kb": "Resident set: present pages (zero page, pf/io mappings and hugetlb excluded).",
    "pss_kb": "Proportional set: each page divided by its mapcount (kernel fixed point).",
    "pss_dirty_kb": "PSS of dirty pages.",
    "shared_clean_kb": "Clean pages with mapcount > 1.",
    "shared_dirty_kb": "Dirty pages with mapcount > 1.",
    "private_clean_kb": "Clean pages with mapcount <= 1.",
    "private_dirty_kb": "Dirty pages with mapcount <= 1.",
    "referenced_kb": "Pages marked referenced/accessed.",
    "anonymous_kb": "Anonymous pages (not backed by a file, including COW copies of file pages).",
    "ksm_kb": "Pages merged by KSM.",
    "lazyfree_kb": "Pages marked MADV_FREE and not yet reclaimed.",
    "anon_huge_pages_kb": "Anonymous memory mapped by transparent huge pages (PMD).",
    "shmem_pmd_mapped_kb": "Shmem mapped by PMD-sized huge pages.",
    "file_pmd_mapped_kb": "File pages mapped by PMD-sized huge pages.",
    "shared_hugetlb_kb": "hugetlbfs pages shared with another process.",
    "private_hugetlb_kb": "hugetlbfs pages private to this process.",
    "swap_kb": "Anonymous memory that is swapped out.",
    "swap_pss_kb": "Proportional share of swap entries.",
    "locked_kb": "Pages locked in memory (mlock).",
    "pss_anon_kb": "PSS of anonymous pages (smaps_rollup only).",
    "pss_file_kb": "PSS of file pages (smaps_rollup only).",
    "pss_shmem_kb": "PSS of shmem pages (smaps_rollup only).",
}


def _smaps_cols(prefix: str, src: str, fields) -> list[Column]:
    return [C(prefix + col, I64, "kB", f"{_SMAPS_DOC[col]} From {src} `{key}:`.") for key, col in fields]


SNAPSHOTS = Table(
    "snapshots", "snapshot (the commit record: a snapshot exists only once this row is written)",
    "One row per committed snapshot: where and how it was captured, and what could not be read.",
    (
        SNAPSHOT_ID,
        C("boot_id", STR, None, "/proc/sys/kernel/random/boot_id. Process identity is (boot_id, pid, starttime).", False),
        C("hostname", STR, None, "Hostname as reported by the kernel (the partition `host` may be overridden with --host)."),
        C("kernel_release", STR, None, "uname -r."),
        C("machine", STR, None, "uname -m."),
        C("page_size_bytes", I64, "bytes", "Base page size (os.sysconf SC_PAGE_SIZE).", False),
        C("clock_ticks_hz", I64, "Hz", "USER_HZ (SC_CLK_TCK); divides process starttime.", False),
        C("boot_time", TS, None, "btime from /proc/stat; starttime/clock_ticks_hz after this is a process start."),
        C("capture_start", TS, None, "UTC time the capture started.", False),
        C("capture_end", TS, None, "UTC time the capture ended (before writing the commit row).", False),
        C("uptime_s", F64, "s", "/proc/uptime at capture start."),
        C("recorder_version", STR, None, "memsnap version that wrote the snapshot.", False),
        C("recorder_pid", I32, None, "PID of the recorder. It is not recorded as a process, but its mappings raise "
          "the mapcount of shared file pages of other processes: frames.recorder_refs counts them."),
        C("recorder_uid", I32, None, "Effective uid of the recorder."),
        C("schema_version", I32, None, "Schema version the files were written with.", False),
        C("options_json", STR, None, "Recorder options as JSON (sources, filters, limits)."),
        C("sources", STR, None, "Comma-separated sources captured: maps, smaps, smaps_rollup, pagemap, kpage."),
        C("pfn_available", BOOL, None, "True when pagemap exposed real PFNs (needs CAP_SYS_ADMIN). When false, "
          "PFN and swap fields of `pages.entry` are 0 and must not be read as data; `frames` is empty."),
        C("kpage_available", BOOL, None, "True when /proc/kpagecount and /proc/kpageflags were read."),
        C("kpagecgroup_available", BOOL, None, "True when /proc/kpagecgroup was read."),
        C("mapcount_mode", STR, None, "How kpagecount counts: 'per_page' (CONFIG_PAGE_MAPCOUNT) or 'folio' "
          "(CONFIG_NO_PAGE_MAPCOUNT, an average per folio); NULL if unknown."),
        C("thp_enabled", STR, None, "/sys/kernel/mm/transparent_hugepage/enabled (selected value)."),
        C("thp_defrag", STR, None, "/sys/kernel/mm/transparent_hugepage/defrag (selected value)."),
        C("thp_shmem_enabled", STR, None, "/sys/kernel/mm/transparent_hugepage/shmem_enabled (selected value)."),
        C("ksm_run", I32, None, "/sys/kernel/mm/ksm/run."),
        C("ksm_pages_sharing", I64, "pages", "/sys/kernel/mm/ksm/pages_sharing."),
        C("ksm_pages_shared", I64, "pages", "/sys/kernel/mm/ksm/pages_shared."),
        C("processes_seen", I32, None, "Numeric /proc entries seen (after --pid/--match selection, minus the recorder)."),
        C("processes_recorded", I32, None, "Processes whose selected sources were all read."),
        C("processes_partial", I32, None, "Processes with some sources missing (time budget, size threshold, error)."),
        C("processes_vanished", I32, None, "Processes that exited between listing and reading (ESRCH/ENOENT)."),
        C("processes_denied", I32, None, "Processes whose memory files gave EACCES/EPERM."),
        C("processes_zombie", I32, None, "Zombie processes (no memory to read)."),
        C("kernel_threads", I32, None, "Kernel threads (no user memory)."),
        C("pages_rows", I64, None, "Rows written to `pages`."),
        C("frames_rows", I64, None, "Rows written to `frames`."),
        C("bytes_written", I64, "bytes", "Bytes of Parquet written for this snapshot (all tables but this row)."),
        C("warnings", STR, None, "Warnings raised during capture, newline separated."),
        C("pfn_pseudonymized", BOOL, None, "True when PFNs (pages.entry and frames.pfn) are keyed pseudonyms "
          "(record --pseudonymize-pfns): equal within and across snapshots of the host, not physical.", since=2),
        C("redacted", STR, None, "What `record --redact` hid: cmdline and/or paths (keyed hashes), or NULL.",
          since=2),
        C("physmem_frames", I64, "pages", "Frames read by the physmem source (every PFN of /proc/kpageflags), or "
          "NULL when it was not selected. `physmem` holds their classes.", since=3),
        C("physmem_ms", F64, "ms", "Wall time of the physmem source (read, classify, aggregate).", since=3),
        C("cgroup_version", I32, None, "Version (1 or 2) of the memory cgroup hierarchy recorded in `cgroups`, "
          "or NULL when none was recorded.", since=3),
    ),
    key=("snapshot_id",),
)

MEMINFO = Table(
    "meminfo", "snapshot x /proc/meminfo line",
    "/proc/meminfo at capture start, one row per key.",
    (
        SNAPSHOT_ID,
        C("key", STR, None, "meminfo key, e.g. MemTotal, AnonPages.", False),
        C("value_kb", I64, "kB", "Value when the kernel printed it in kB; NULL for unitless counters."),
        C("value", I64, None, "The number as printed (pages for HugePages_* counters)."),
    ),
    key=("snapshot_id", "key"),
)

PROCESSES = Table(
    "processes", "process seen (recorded, partial, vanished, denied, zombie or kernel thread)",
    "Identity, ownership and per-process accounting of each process seen. `error` is NULL when every "
    "selected source was read.",
    (
        SNAPSHOT_ID, PID,
        C("starttime_ticks", I64, "clock ticks", "Start time after boot (stat field 22). With boot_id and pid it "
          "identifies a process across snapshots."),
        C("ppid", I32, None, "Parent pid (stat field 4)."),
        C("state", STR, None, "State letter (stat field 3): R, S, D, Z, ..."),
        C("uid", I32, None, "Real uid (status Uid:)."),
        C("euid", I32, None, "Effective uid."),
        C("gid", I32, None, "Real gid."),
        C("user", STR, None, "Name of the effective uid (as ps and smem show it), or the number if it has no passwd entry on the recording host."),
        C("comm", STR, None, "Command name (/proc/<pid>/comm, 15 chars)."),
        C("cmdline", STR, None, "Command line, arguments joined by spaces (NUL separators replaced)."),
        C("exe", STR, None, "Target of /proc/<pid>/exe, NULL when unreadable."),
        C("cgroup", STR, None, "cgroup v2 path (the 0:: line of /proc/<pid>/cgroup), or the whole file for v1."),
        C("memory_cgroup", STR, None, "Path of the process's memory cgroup: the `memory` controller's line of "
          "/proc/<pid>/cgroup on cgroup v1, else the `0::` line (v2). Joins `cgroups.path`.", since=3),
        C("pid_ns", U64, None, "Inode of the pid namespace (/proc/<pid>/ns/pid)."),
        C("threads", I32, None, "Number of threads (status Threads:)."),
        C("kernel_thread", BOOL, None, "True for kernel threads (PF_KTHREAD in stat flags); they have no user memory."),
        *[C(col, I64, "kB", f"/proc/<pid>/status `{key}:`.") for key, col in STATUS_FIELDS],
        *_smaps_cols("rollup_", "/proc/<pid>/smaps_rollup", SMAPS_KB_FIELDS + ROLLUP_ONLY_KB_FIELDS),
        C("rollup_other_kb", KB_MAP, "kB", "smaps_rollup fields this schema version does not know (kept losslessly)."),
        C("sources", STR, None, "Comma-separated sources actually read for this process."),
        C("mappings", I32, None, "Number of mappings recorded."),
        C("pages", I64, None, "Number of `pages` rows (present or swapped pages) recorded."),
        C("captured_at", TS, None, "UTC time the capture of this process started."),
        C("capture_ms", F64, "ms", "Wall time spent capturing this process."),
        C("status", STR, None, "ok | partial | vanished | denied | zombie | kernel_thread.", False),
        C("error", STR, None, "NULL, or why a source could not be read (with the path)."),
    ),
    key=("snapshot_id", "pid"),
)

MAPPINGS = Table(
    "mappings", "VMA (an entry of /proc/<pid>/smaps, or of maps when smaps was not read)",
    "Every mapping with every smaps field. smaps fields are NULL when only maps was read.",
    (
        SNAPSHOT_ID, PID,
        C("idx", I32, None, "Position of the mapping in the file (0-based).", False),
        C("start_addr", U64, "bytes", "Start virtual address.", False),
        C("end_addr", U64, "bytes", "End virtual address (exclusive).", False),
        C("perms", STR, None, "Permissions, e.g. r-xp (p private, s shared).", False),
        C("offset_bytes", U64, "bytes", "Offset into the file."),
        C("dev", STR, None, "Device major:minor (hex)."),
        C("inode", U64, None, "Inode of the mapped file (0 for anonymous)."),
        C("path", STR, None, "Path or pseudo-path ([heap], [stack], [anon:name], /memfd:x (deleted)); NULL if empty."),
        *[C(col, I64, "kB", f"smaps `{key}:`.") for key, col in MAPPING_ONLY_FIELDS],
        *_smaps_cols("", "smaps", SMAPS_KB_FIELDS),
        *[C(col, I32, None, f"smaps `{key}:`.") for key, col in MAPPING_INT_FIELDS],
        C("vm_flags", STR, None, "smaps VmFlags, space separated two-letter codes (pf/io mark special mappings)."),
        C("other_kb", KB_MAP, "kB", "smaps fields this schema version does not know (kept losslessly)."),
        C("source", STR, None, "smaps or maps.", False),
    ),
    key=("snapshot_id", "pid", "idx"),
)

PAGES = Table(
    "pages", "present or swapped virtual page",
    "Raw /proc/<pid>/pagemap entries of pages that are present (bit 63) or swapped (bit 62). "
    "Decode in SQL: pfn = entry & (2^55-1) when present; swap type = entry & 31, offset = (entry >> 5) & (2^50-1) "
    "when swapped; bit 55 soft-dirty, 56 exclusively mapped, 57 uffd-wp, 58 guard, 61 file/shared-anon. "
    "https://docs.kernel.org/admin-guide/mm/pagemap.html",
    (
        SNAPSHOT_ID, PID,
        C("vpn", U64, "pages", "Virtual page number (virtual address / page_size_bytes).", False),
        C("entry", U64, None, "Raw 64-bit pagemap entry.", False),
        C("map_idx", I32, None, "`mappings.idx` of the mapping the page is in (same snapshot and pid): pages join "
          "mappings on (pid, map_idx = idx), no address range. The recorder knows it from the pagemap read per "
          "mapping. NULL in stores before schema 4: the analyzer's `pages` view then finds it by address "
          "(docs/design.md, \"Pages to mappings\").", since=4),
    ),
    key=("snapshot_id", "pid", "vpn"),
    # Measured on this machine (three captures: a 20-process fork workload on fresh and on very fragmented
    # memory, and the sample workload): private pages in (pid, vpn) order, then pages whose entry repeats
    # grouped by entry, with entry DELTA_BINARY_PACKED, vpn BYTE_STREAM_SPLIT and zstd 3 gave 0.35 / 0.89 /
    # 0.53 B/page, against 1.53 / 2.19 / 0.87 for plain (pid, vpn) order with DELTA; zstd 9 saved < 5 %.
    # map_idx measured (bench: a live capture of this machine in the order above, 1.47M pages; the 5M synthetic
    # store in (pid, vpn) order): BYTE_STREAM_SPLIT 0.55 / 0.044 B/page, DELTA_BINARY_PACKED 1.44 / 0.035,
    # PLAIN 0.59 / 0.049, dictionary 1.52 / 0.063 (zstd 3).  The repeated-entry part jumps between processes'
    # mappings, where delta coding loses.
    encodings=(("entry", "DELTA_BINARY_PACKED"), ("vpn", "BYTE_STREAM_SPLIT"), ("pid", "DELTA_BINARY_PACKED"),
               ("map_idx", "BYTE_STREAM_SPLIT")),
    compression_level=3,
    storage="Within each row group, private pages (an entry seen once) come first in (pid, vpn) order, then "
            "pages whose entry repeats, grouped by entry; do not rely on file order.",
)

FRAMES = Table(
    "frames", "distinct physical frame (PFN) seen in the snapshot",
    "Per-frame data from /proc/kpagecount, /proc/kpageflags and /proc/kpagecgroup, read once per snapshot "
    "for the distinct PFNs of present pages. Empty when pfn_available is false.",
    (
        SNAPSHOT_ID,
        C("pfn", U64, None, "Physical frame number.", False),
        C("mapcount", I64, None, "kpagecount: number of times the frame is mapped (all processes, not only recorded ones)."),
        C("flags", U64, None, "kpageflags bits: ANON=12, SWAPBACKED=14, HUGE=17, KSM=21, THP=22, ZERO_PAGE=24, "
          "IDLE=25; bit 34 anon-exclusive. https://docs.kernel.org/admin-guide/mm/pagemap.html"),
        C("memcg_ino", U64, None, "kpagecgroup: inode of the memory cgroup charged for the frame."),
        C("recorder_refs", I64, None, "How many present pages of the recorder itself map the frame (its own "
          "/proc/self/pagemap, read just before kpagecount): `mapcount - recorder_refs` is the mapcount as if the "
          "recorder were not running (`sizes --without-recorder`). 0 for frames it does not map; NULL before "
          "schema 3 or when its own pagemap could not be read.", since=3),
    ),
    key=("snapshot_id", "pfn"),
    encodings=(("pfn", "DELTA_BINARY_PACKED"),),
)

#: physmem classes, in the order of the rules that decide them (the first that applies wins; docs/design.md,
#: "Whole memory"): what `physmem.class` holds
PHYSMEM_CLASSES = ("hole", "reserved", "free", "offline", "slab", "pagetable", "hugetlb", "zero_page", "ksm",
                   "swapcache", "anon", "shmem", "file_mapped", "file_unmapped", "other_kernel")

PHYSMEM = Table(
    "physmem", "combination of (class, memory cgroup, mapped, dirty, writeback, active) among the machine's frames",
    "Every physical frame of the machine (every PFN of /proc/kpageflags, read with kpagecount and kpagecgroup), "
    "classified into exactly one class and counted, not listed (record --sources ...,physmem). The frames of a "
    "snapshot add up to `snapshots.physmem_frames`.",
    (
        SNAPSHOT_ID,
        C("class", STR, None, "One of " + ", ".join(PHYSMEM_CLASSES) + " (docs/design.md, \"Whole memory\": the "
          "kpageflags bits that decide each, on Linux 6.18).", False),
        C("memcg_ino", U64, None, "kpagecgroup: inode of the memory cgroup charged (`cgroups.ino`); 0 for none; "
          "NULL when kpagecgroup could not be read."),
        C("mapped", BOOL, None, "Mapped into a page table (kpageflags MMAP, bit 11, or kpagecount > 0).", False),
        C("dirty", BOOL, None, "kpageflags DIRTY (bit 4).", False),
        C("writeback", BOOL, None, "kpageflags WRITEBACK (bit 8).", False),
        C("active", BOOL, None, "kpageflags ACTIVE (bit 6): on an active LRU list.", False),
        C("frames", I64, "pages", "Number of frames (each of page_size_bytes) with these values.", False),
    ),
    key=("snapshot_id", "class", "memcg_ino", "mapped", "dirty", "writeback", "active"),
)

CGROUPS = Table(
    "cgroups", "memory cgroup (a directory of the memory controller's hierarchy)",
    "Every memory cgroup with its inode (the number /proc/kpagecgroup reports) and its memory controller's "
    "figures, read at capture (cgroup v2: memory.current/max/peak/stat/events; v1: memory.usage_in_bytes/"
    "limit_in_bytes/max_usage_in_bytes/stat, failcnt and oom_control). Processes join on "
    "`processes.memory_cgroup = path`.",
    (
        SNAPSHOT_ID,
        C("path", STR, None, "Path in the hierarchy as /proc/<pid>/cgroup shows it: `/` for the root, "
          "`/system.slice/nginx.service`.", False),
        C("ino", U64, None, "Inode number of the cgroup's directory (what kpagecgroup reports for frames charged "
          "to it).", False),
        C("version", I32, None, "1 (the v1 memory controller) or 2 (the unified hierarchy).", False),
        C("procs", I32, None, "Number of processes in the cgroup itself (lines of cgroup.procs), not its "
          "children."),
        C("memory_current_bytes", I64, "bytes", "v2 memory.current, v1 memory.usage_in_bytes: memory charged to "
          "the cgroup and its descendants."),
        C("memory_max_bytes", I64, "bytes", "v2 memory.max, v1 memory.limit_in_bytes; NULL when unlimited "
          "(`max`, or v1's PAGE_COUNTER_MAX)."),
        C("memory_peak_bytes", I64, "bytes", "v2 memory.peak, v1 memory.max_usage_in_bytes."),
        C("stat", KB_MAP, None, "memory.stat as printed (v2: bytes, but *_pages style counters and event counts "
          "are numbers; v1: bytes, total_* hierarchical)."),
        C("events", KB_MAP, None, "v2 memory.events (low, high, max, oom, oom_kill, ...); v1 memory.failcnt as "
          "`failcnt` and memory.oom_control (oom_kill_disable, under_oom, oom_kill)."),
    ),
    key=("snapshot_id", "path"),
)

TABLES: dict[str, Table] = {t.name: t for t in (SNAPSHOTS, MEMINFO, PROCESSES, MAPPINGS, PAGES, FRAMES, PHYSMEM,
                                                CGROUPS)}
#: tables written per snapshot before the commit row (a file each, even empty: "no rows" is data too)
DATA_TABLES = ("meminfo", "processes", "mappings", "pages", "frames")
#: tables of opt-in sources (physmem, cgroups): a snapshot has their files only when it recorded them; a missing
#: file reads as no rows, as for stores older than the table
OPTIONAL_TABLES = ("physmem", "cgroups")


def arrow_type(t: str):
    """The pyarrow type of a column type of :data:`TYPES`."""
    import pyarrow as pa

    return TYPES[t][0](pa)


def arrow_schema(table: str | Table):
    """pyarrow schema of the Parquet files of ``table`` (partition columns excluded)."""
    import pyarrow as pa

    t = TABLES[table] if isinstance(table, str) else table
    fields = [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in t.columns]
    return pa.schema(fields, metadata={META_VERSION: str(SCHEMA_VERSION).encode(), META_TABLE: t.name.encode()})


def duck_type(t: str) -> str:
    """The DuckDB type of a column type of :data:`TYPES`."""
    if t not in TYPES:
        raise TypeError(f"no DuckDB type for column type {t}: add it to schema.TYPES")
    return TYPES[t][1]
