"""Set sizes (VSS, RSS, PSS, USS, swap, ...) per process, user, command, cgroup, mapping or system.

Two sources:

* ``smaps`` — the kernel's own accounting as recorded (sum of the smaps entries, as smem does);
* ``pages`` — recomputed from pagemap + kpagecount + kpageflags with the kernel's rules
  (``queries/page_mapping_facts.sql``).  PSS is kept in the kernel's fixed point
  (bytes << 12) until the output group is known, then floored once per group, as
  smaps_rollup floors once per process.

Queries are built with SQLAlchemy Core over declared tables; every user-supplied
value (regexes, ids) is a bound parameter, and column names come from allowlists.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import sqlalchemy as sa
from duckdb_engine import Dialect

from common.errors import MemsnapError
from schema import sa as schema_sa

from . import queries
from .store import Store

BY = ("process", "user", "command", "cgroup", "mapping", "system")
SOURCES = ("smaps", "pages")

AMOUNTS = ("swap", "uss", "pss", "rss", "vss", "swappss", "pss_anon", "pss_file", "pss_shmem",
           "anon", "file", "shmem", "hugetlb", "thp", "avgpss", "avguss", "avgrss", "kb")
#: every column a view offers (the allowlist for -c and -s), and its default columns (smem's defaults)
VIEW_COLUMNS = {
    "process": ("host", "snapshot_id", "pid", "starttime", "user", "uid", "command", "name", "cgroup", "swap", "uss", "pss",
                "rss", "vss", "maps", "swappss", "pss_anon", "pss_file", "pss_shmem", "anon", "file", "shmem",
                "hugetlb", "thp"),
    "user": ("host", "snapshot_id", "user", "uid", "count", "swap", "uss", "pss", "rss", "vss", "swappss"),
    "command": ("host", "snapshot_id", "command", "count", "swap", "uss", "pss", "rss", "vss", "swappss"),
    "cgroup": ("host", "snapshot_id", "cgroup", "count", "swap", "uss", "pss", "rss", "vss", "swappss",
               "pss_anon", "pss_file", "pss_shmem"),
    "mapping": ("host", "snapshot_id", "map", "count", "pids", "swap", "uss", "pss", "rss", "vss",
                "avgpss", "avguss", "avgrss", "swappss", "anon", "hugetlb", "thp"),
    "system": ("host", "snapshot_id", "area", "kb", "percent"),
    # internal (diff --by mapping): one row per process x mapping (path, perms, offset)
    "pmap": ("host", "snapshot_id", "pid", "starttime", "name", "map", "perms", "offset", "count", "swap", "uss",
             "pss", "rss", "vss", "swappss", "anon", "hugetlb", "thp"),
}
DEFAULT_COLUMNS = {
    "process": ("pid", "user", "command", "swap", "uss", "pss", "rss"),
    "user": ("user", "count", "swap", "uss", "pss", "rss"),
    "command": ("command", "count", "swap", "uss", "pss", "rss"),
    "cgroup": ("cgroup", "count", "swap", "uss", "pss", "rss"),
    "mapping": ("map", "pids", "avgpss", "pss"),
    "pmap": ("pid", "map", "perms", "offset", "pss"),
    "system": ("area", "kb", "percent"),
}
DEFAULT_SORT = {"system": None}

_DIALECT = Dialect(paramstyle="qmark")


class SourceUnavailable(MemsnapError):
    """The snapshot lacks the data a --source needs (e.g. no PFNs)."""


class BadColumn(MemsnapError):
    pass


class BadRegex(MemsnapError):
    """A -P/-U/-M filter that is not a valid (RE2) regular expression."""


def check_regex(con, option: str, value: str | None) -> None:
    """Validate a filter with DuckDB's own regex engine (RE2), the value bound as a parameter."""
    if value is None:
        return
    try:
        con.execute("SELECT regexp_matches('', ?)", [value]).fetchall()
    except duckdb.Error as e:
        raise BadRegex(f"{option} {value!r} is not a valid regular expression ({e})",
                       hint="use RE2 syntax (https://github.com/google/re2/wiki/Syntax); escape literal "
                            "parentheses, brackets and dots with a backslash") from None


@dataclass
class SizesResult:
    by: str
    source: str
    columns: list[str]
    rows: list[dict]
    snapshots: list = field(default_factory=list)
    memtotal_kb: dict = field(default_factory=dict)
    swaptotal_kb: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _fact_table(source: str, md: sa.MetaData) -> sa.Table:
    cols = ["host", "snapshot_id", "pid", "idx", "map", "perms", "offset_bytes", "vss_kb"]
    if source == "smaps":
        cols += ["rss_kb", "pss_kb", "uss_kb", "swap_kb", "swap_pss_kb", "anon_kb", "hugetlb_kb", "thp_kb", "has_smaps"]
    else:
        cols += ["page_size_bytes", "rss_pages", "pss_fp", "uss_pages", "swap_pages", "swap_pss_fp", "anon_pages",
                 "file_pages", "shmem_pages", "pss_anon_fp", "pss_file_fp", "pss_shmem_fp", "hugetlb_pages",
                 "thp_pages", "unknown_frames"]
    return sa.Table("_facts", md, *[sa.Column(c) for c in cols])


def _compile(stmt) -> tuple[str, list]:
    c = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(c), [c.params[k] for k in (c.positiontup or [])]


def check_columns(by: str, names, what: str) -> None:
    allowed = VIEW_COLUMNS[by]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise BadColumn(f"unknown {what} {', '.join(bad)} for --by {by}", hint=f"choose from: {' '.join(allowed)}")


def sizes(store: Store, *, by: str = "process", source: str = "smaps", snapshot: str | None = "latest",
          host: str | None = None, processfilter: str | None = None, userfilter: str | None = None,
          mapfilter: str | None = None, sort: str | None = None, reverse: bool = False,
          columns=None, numeric: bool = False, limit: int | None = None) -> SizesResult:
    if by not in BY and by != "pmap":
        raise BadColumn(f"unknown view --by {by}", hint=f"choose from {', '.join(BY)}")
    if source not in SOURCES:
        raise BadColumn(f"unknown --source {source}", hint="choose smaps or pages")
    columns = list(columns or DEFAULT_COLUMNS[by])
    check_columns(by, columns, "column(s)")
    sort = sort or ("pss" if by != "system" else None)
    if sort:
        check_columns(by, [sort], "sort key")
    snaps = store.resolve(snapshot, host)
    hosts = {s.host for s in snaps}
    if len(snaps) > 1 and "host" not in columns:
        columns.insert(0, "host")
    # A snapshot is (host, snapshot_id): merged stores may hold the same id under several hosts.
    ids = [s.snapshot_id for s in snaps]
    snap_hosts = [s.host for s in snaps]
    con = store.con
    for option, value in (("--processfilter", processfilter), ("--userfilter", userfilter),
                          ("--mapfilter", mapfilter)):
        check_regex(con, option, value)
    chosen = "(host, snapshot_id) IN (SELECT unnest($hosts), unnest($snapshot_ids))"
    mem = dict(con.execute("SELECT snapshot_id, value_kb FROM meminfo WHERE key = 'MemTotal' "
                           f"AND {chosen}", {"hosts": snap_hosts, "snapshot_ids": ids}).fetchall())
    swp = dict(con.execute("SELECT snapshot_id, value_kb FROM meminfo WHERE key = 'SwapTotal' "
                           f"AND {chosen}", {"hosts": snap_hosts, "snapshot_ids": ids}).fetchall())
    res = SizesResult(by, source, columns, [], snaps, mem, swp)

    if by == "system":
        res.rows = _system_rows(store, snaps)
        if sort:
            res.rows.sort(key=lambda r: (r.get(sort) is None, r.get(sort)), reverse=reverse)
        res.columns = [c for c in columns]
        return res

    if source == "pages":
        for s in snaps:
            if not s.pfn_available:
                raise SourceUnavailable(
                    f"snapshot {s.snapshot_id} has no PFNs (pfn_available=false: it was recorded without "
                    "CAP_SYS_ADMIN, or without the pagemap source), so sizes cannot be recomputed from pages",
                    hint="use --source smaps (the kernel's own accounting), or record as root")
            if not s.kpage_available:
                raise SourceUnavailable(
                    f"snapshot {s.snapshot_id} has no kpagecount/kpageflags (recorded without the kpage source)",
                    hint="use --source smaps, or record with --sources including pagemap,kpage")

    qname = "smaps_mapping_facts" if source == "smaps" else "page_mapping_facts"
    con.execute(f"CREATE OR REPLACE TEMP TABLE _facts AS SELECT * FROM (\n{queries.get(qname).sql}\n) "
                f"WHERE {chosen}", {"snapshot_ids": ids, "hosts": snap_hosts})

    md = sa.MetaData()
    f = _fact_table(source, md)
    procs = schema_sa.table(schema_sa.TABLES["processes"], md)

    # ---- stage 1: per process (or per process x map name), unfloored
    keys = [f.c.host, f.c.snapshot_id, f.c.pid] + ([f.c.map] if by in ("mapping", "pmap") else []) + \
        ([f.c.perms, f.c.offset_bytes] if by == "pmap" else [])
    if source == "smaps":
        agg = {
            "vss": sa.func.sum(f.c.vss_kb), "rss": sa.func.sum(f.c.rss_kb), "pss": sa.func.sum(f.c.pss_kb),
            "uss": sa.func.sum(f.c.uss_kb), "swap": sa.func.sum(f.c.swap_kb), "swappss": sa.func.sum(f.c.swap_pss_kb),
            "anon": sa.func.sum(f.c.anon_kb), "hugetlb": sa.func.sum(f.c.hugetlb_kb), "thp": sa.func.sum(f.c.thp_kb),
        }
    else:
        pkb = f.c.page_size_bytes / 1024
        agg = {
            "vss": sa.func.sum(f.c.vss_kb), "rss": sa.func.sum(f.c.rss_pages * pkb),
            "pss": sa.func.sum(f.c.pss_fp), "uss": sa.func.sum(f.c.uss_pages * pkb),
            "swap": sa.func.sum(f.c.swap_pages * pkb), "swappss": sa.func.sum(f.c.swap_pss_fp),
            "anon": sa.func.sum(f.c.anon_pages * pkb), "file": sa.func.sum(f.c.file_pages * pkb),
            "shmem": sa.func.sum(f.c.shmem_pages * pkb), "pss_anon": sa.func.sum(f.c.pss_anon_fp),
            "pss_file": sa.func.sum(f.c.pss_file_fp), "pss_shmem": sa.func.sum(f.c.pss_shmem_fp),
            "hugetlb": sa.func.sum(f.c.hugetlb_pages * pkb), "thp": sa.func.sum(f.c.thp_pages * pkb),
        }
    stage1 = sa.select(*keys, sa.func.count().label("maps"), *[v.label(k) for k, v in agg.items()]).group_by(*keys)
    if mapfilter:
        stage1 = stage1.where(sa.func.regexp_matches(f.c.map, sa.bindparam("mapfilter", mapfilter)))
    s1 = stage1.subquery("s1")

    # ---- stage 2: join process attributes, filter, group, floor fixed point
    j = s1.join(procs, sa.and_(procs.c.host == s1.c.host, procs.c.snapshot_id == s1.c.snapshot_id,
                               procs.c.pid == s1.c.pid))
    conds = [sa.func.coalesce(procs.c.kernel_thread, False) == sa.false()]
    if processfilter:
        rx = sa.bindparam("processfilter", processfilter)
        conds.append(sa.or_(sa.func.regexp_matches(sa.func.coalesce(procs.c.comm, ""), rx),
                            sa.func.regexp_matches(sa.func.coalesce(procs.c.cmdline, ""), rx)))
    if userfilter:
        conds.append(sa.func.regexp_matches(sa.func.coalesce(procs.c.user, sa.cast(procs.c.uid, sa.String)),
                                            sa.bindparam("userfilter", userfilter)))

    def fp(col):  # fixed point -> kB, floored once per output group
        return sa.cast(sa.func.sum(col), sa.BigInteger).op(">>")(sa.literal_column("22"))

    def kb(col):
        return sa.cast(sa.func.sum(col), sa.BigInteger)

    if source == "smaps":
        # a process recorded with maps only (impact limits) falls back to its smaps_rollup figures
        rss = kb(sa.func.coalesce(s1.c.rss, procs.c.rollup_rss_kb))
        pss = kb(sa.func.coalesce(s1.c.pss, procs.c.rollup_pss_kb))
        uss = kb(sa.func.coalesce(s1.c.uss, procs.c.rollup_private_clean_kb + procs.c.rollup_private_dirty_kb))
        swap = kb(sa.func.coalesce(s1.c.swap, procs.c.rollup_swap_kb))
        swappss = kb(sa.func.coalesce(s1.c.swappss, procs.c.rollup_swap_pss_kb))
        amounts = {"swap": swap, "uss": uss, "pss": pss, "rss": rss, "vss": kb(s1.c.vss), "swappss": swappss,
                   "anon": kb(s1.c.anon), "hugetlb": kb(s1.c.hugetlb), "thp": kb(s1.c.thp)}
        if by not in ("mapping", "pmap"):  # per-process figures the kernel reports only per process
            amounts.update(pss_anon=kb(procs.c.rollup_pss_anon_kb), pss_file=kb(procs.c.rollup_pss_file_kb),
                           pss_shmem=kb(procs.c.rollup_pss_shmem_kb), anon=kb(procs.c.rss_anon_kb),
                           file=kb(procs.c.rss_file_kb), shmem=kb(procs.c.rss_shmem_kb))
    else:
        amounts = {"swap": kb(s1.c.swap), "uss": kb(s1.c.uss), "pss": fp(s1.c.pss), "rss": kb(s1.c.rss),
                   "vss": kb(s1.c.vss), "swappss": fp(s1.c.swappss), "pss_anon": fp(s1.c.pss_anon),
                   "pss_file": fp(s1.c.pss_file), "pss_shmem": fp(s1.c.pss_shmem), "anon": kb(s1.c.anon),
                   "file": kb(s1.c.file), "shmem": kb(s1.c.shmem), "hugetlb": kb(s1.c.hugetlb), "thp": kb(s1.c.thp)}

    group_cols = {
        "process": lambda: {"pid": procs.c.pid, "starttime": procs.c.starttime_ticks,
                            "user": procs.c.user, "uid": procs.c.euid,
                            "command": procs.c.cmdline, "name": procs.c.comm, "cgroup": procs.c.cgroup},
        "user": lambda: {"user": procs.c.user, "uid": procs.c.euid},
        "command": lambda: {"command": procs.c.comm},
        "cgroup": lambda: {"cgroup": procs.c.cgroup},
        "mapping": lambda: {"map": s1.c.map},
        "pmap": lambda: {"pid": procs.c.pid, "starttime": procs.c.starttime_ticks, "name": procs.c.comm,
                         "map": s1.c.map, "perms": s1.c.perms, "offset": s1.c.offset_bytes},
    }[by]()
    if by == "user" and numeric:
        group_cols = {"user": sa.cast(procs.c.euid, sa.String), "uid": procs.c.euid}
    sel = [procs.c.snapshot_id.label("snapshot_id"), procs.c.host.label("host")]
    sel += [c.label(n) for n, c in group_cols.items()]
    if by == "process":
        sel.append(kb(s1.c.maps).label("maps"))
    elif by == "pmap":
        sel.append(kb(s1.c.maps).label("count"))
    elif by == "mapping":
        sel += [kb(s1.c.maps).label("count"), sa.func.count(sa.distinct(procs.c.pid)).label("pids")]
    else:
        sel.append(sa.func.count(sa.distinct(procs.c.pid)).label("count"))
    sel += [v.label(k) for k, v in amounts.items()]
    stmt = sa.select(*sel).select_from(j).where(*conds).group_by(procs.c.snapshot_id, procs.c.host,
                                                                 *group_cols.values())
    sql, params = _compile(stmt)
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    if by == "process" and numeric:
        for r in rows:
            r["user"] = r["uid"]
    if by == "mapping":
        for r in rows:  # smem: int(1.0 * total / pids)
            for a in ("pss", "uss", "rss"):
                r[f"avg{a}"] = int(r[a] / r["pids"]) if r.get(a) is not None and r["pids"] else None
    for r in rows:
        for c in VIEW_COLUMNS[by]:
            r.setdefault(c, None)
    if sort:
        ties = list(group_cols)
        rows.sort(key=lambda r: (r.get(sort) is not None, r.get(sort) if r.get(sort) is not None else 0,
                                 str(r.get("pid", r.get(columns[0]))), str(r.get("host")), str(r.get("snapshot_id")),
                                 tuple(str(r.get(c)) for c in ties)),
                  reverse=reverse)  # the group's own columns, then host/snapshot break ties: a stable order
    if limit:
        rows = rows[-limit:] if not reverse else rows[:limit]
    res.rows = rows
    if source == "pages":
        unknown = con.execute("SELECT coalesce(sum(unknown_frames), 0) FROM _facts").fetchone()[0]
        if unknown:
            res.notes.append(f"{unknown} present pages had no frames row (kpage read failed); counted as private")
    if len(hosts) > 1:
        which = "latest snapshot of each" if snapshot in (None, "latest") else f"snapshot {snapshot!r} of each"
        res.notes.append(f"{len(hosts)} hosts: {which} ({', '.join(sorted(hosts))})")
    return res


# meminfo areas for --by system: disjoint parts of MemTotal, plus what is left
SYSTEM_AREAS = (
    ("free", ("MemFree",)),
    ("userspace anonymous (AnonPages)", ("AnonPages",)),
    ("page cache, file (Cached + Buffers - Shmem)", ("Cached", "Buffers", "-Shmem")),
    ("shmem/tmpfs (Shmem)", ("Shmem",)),
    ("slab (Slab)", ("Slab",)),
    ("kernel stacks (KernelStack)", ("KernelStack",)),
    ("page tables (PageTables + SecPageTables)", ("PageTables", "SecPageTables")),
    ("per-cpu (Percpu)", ("Percpu",)),
    ("hugetlb pool (Hugetlb)", ("Hugetlb",)),
)


def _system_rows(store: Store, snaps) -> list[dict]:
    rows = []
    for sid, host in sorted(((s.snapshot_id, s.host) for s in snaps), key=lambda x: (x[1], x[0])):
        m = dict(store.con.execute("SELECT key, value_kb FROM meminfo WHERE host = ? AND snapshot_id = ? "
                                   "AND value_kb IS NOT NULL", [host, sid]).fetchall())
        total = m.get("MemTotal")
        used = 0
        for area, keys in SYSTEM_AREAS:
            v = 0
            present = False
            for k in keys:
                sign = -1 if k.startswith("-") else 1
                k = k.lstrip("-")
                if k in m:
                    present = present or sign > 0
                    v += sign * m[k]
            if not present:
                continue  # the kernel did not report it: no row rather than a fake 0
            used += v
            rows.append({"host": host, "snapshot_id": sid, "area": area, "kb": v})
        rows.append({"host": host, "snapshot_id": sid, "area": "unaccounted (MemTotal - the rows above: vmalloc, "
                     "drivers, ...)", "kb": total - used if total is not None else None})
        rows.append({"host": host, "snapshot_id": sid, "area": "total (MemTotal)", "kb": total})
        for r in rows:
            if r["snapshot_id"] == sid and r["host"] == host:
                r["percent"] = round(100.0 * r["kb"] / total, 2) if total and r["kb"] is not None else None
    return rows
