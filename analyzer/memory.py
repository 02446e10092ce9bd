"""Where the memory went: the whole machine by frame class, by memory cgroup, by service (`memsnap memory`).

From the physmem source (``record --sources +physmem``, recorder/physmem.py) and the cgroups table:

* ``class`` — ``queries/physmem_classes.sql``: every frame's class; the rows add up to MemTotal exactly (with
  the difference between the frames and MemTotal as its own row), meminfo's figure beside each;
* ``cgroup`` — ``queries/physmem_cgroups.sql``: the frames charged to each memory cgroup by kind, beside the
  cgroup's own figures, and the PSS/USS of its processes (:func:`analyzer.sizes.sizes`, view ``memcg``); the
  difference between what is charged and the processes' PSS is explained in a column;
* ``service`` — the cgroups' rows added up per service (:mod:`analyzer.services`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import MemsnapError

from . import queries
from .snapshots import Snapshot

BY = ("class", "cgroup", "service")

COLUMNS = {
    "class": ("class", "area", "frames", "kb", "percent", "meminfo_key", "meminfo_kb"),
    "cgroup": ("cgroup", "procs", "pids", "charged_kb", "subtree_kb", "current_kb", "anon_kb", "file_mapped_kb",
               "file_unmapped_kb", "shmem_kb", "kernel_kb", "pss_kb", "uss_kb", "rest_kb", "explained",
               "stat_anon_kb", "stat_file_kb", "max_kb", "memcg_ino"),
    "service": ("service", "kind", "pod", "cgroups", "pids", "charged_kb", "current_kb", "anon_kb", "file_mapped_kb",
                "file_unmapped_kb", "shmem_kb", "kernel_kb", "pss_kb", "uss_kb", "rest_kb"),
}
DEFAULT_COLUMNS = {
    "class": ("class", "area", "kb", "percent", "meminfo_key", "meminfo_kb"),
    "cgroup": ("cgroup", "pids", "charged_kb", "subtree_kb", "current_kb", "anon_kb", "file_mapped_kb",
               "file_unmapped_kb", "shmem_kb", "kernel_kb", "pss_kb", "uss_kb", "explained"),
    "service": ("service", "kind", "cgroups", "pids", "charged_kb", "anon_kb", "file_mapped_kb", "file_unmapped_kb",
                "shmem_kb", "kernel_kb", "pss_kb", "uss_kb", "rest_kb"),
}
#: amounts added up over a service's cgroups
_SUMMED = ("pids", "charged_kb", "anon_kb", "file_mapped_kb", "file_unmapped_kb", "shmem_kb", "kernel_kb", "pss_kb",
           "uss_kb", "rest_kb")


class NoPhysmem(MemsnapError):
    """The snapshot was recorded without the physmem source."""


@dataclass
class MemoryResult:
    by: str
    columns: list[str]
    rows: list[dict]
    snapshot: Snapshot | None = None
    notes: list[str] = field(default_factory=list)


def _rows(cur) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _check(con, snap: Snapshot) -> None:
    frames = con.execute("SELECT physmem_frames FROM snapshots WHERE host = ? AND snapshot_id = ?",
                         [snap.host, snap.snapshot_id]).fetchone()
    if not frames or frames[0] is None:
        raise NoPhysmem(f"snapshot {snap.snapshot_id} was recorded without the physmem source",
                        hint="record with `memsnap record --sources +physmem` (as root), then run memsnap memory")


def memory(store, snap: Snapshot, *, by: str = "class", columns=None) -> MemoryResult:
    if by not in BY:
        raise MemsnapError(f"unknown --by {by}", hint=f"choose from {', '.join(BY)}")
    columns = list(columns or DEFAULT_COLUMNS[by])
    bad = [c for c in columns if c not in COLUMNS[by]]
    if bad:
        raise MemsnapError(f"unknown column(s) {', '.join(bad)} for --by {by}",
                           hint=f"choose from: {' '.join(COLUMNS[by])}")
    con = store.con
    _check(con, snap)
    params = {"host": snap.host, "snapshot_id": snap.snapshot_id}
    res = MemoryResult(by, columns, [], snap)
    if by == "class":
        res.rows = _rows(queries.run(con, "physmem_classes", params))
        total = next((r["kb"] for r in res.rows if r["class"] == "total"), None)
        for r in res.rows:
            r["percent"] = round(100.0 * r["kb"] / total, 2) if total and r["kb"] is not None else None
        res.notes.append("the rows above `total` add up to MemTotal; reserved and hole are outside it. meminfo "
                         "was read at capture start, the frames over the following seconds: the machine moved between")
        return res
    rows = cgroup_rows(store, snap)
    if by == "cgroup":
        res.rows = rows
        res.notes.append("explained: charged_kb - pss_kb = what no process maps (unmapped file cache and shmem, "
                         "kernel) + rest: mapped frames charged here but shared with or mapped by processes of other "
                         "cgroups or not recorded (negative: PSS of frames charged elsewhere)")
    else:
        res.rows = service_rows(rows)
    res.rows.sort(key=lambda r: -(r.get("charged_kb") or 0))
    return res


def cgroup_rows(store, snap: Snapshot) -> list[dict]:
    """One row per memory cgroup (and one for memory charged to none): frames by kind, the cgroup's figures,
    its processes' PSS/USS, and what the difference between charged frames and PSS is made of."""
    from . import sizes as _sizes

    con = store.con
    rows = _rows(queries.run(con, "physmem_cgroups", {"host": snap.host, "snapshot_id": snap.snapshot_id}))
    procs = _sizes.sizes(store, [snap], by="memcg", columns=["memcg", "count", "pss", "uss", "rss"]).rows
    by_path = {p["memcg"]: p for p in procs}
    # recorded processes per cgroup, whatever sources they have (sizes needs smaps or pages to list one)
    npids = dict(con.execute("SELECT memory_cgroup, count(*) FROM processes WHERE host = ? AND snapshot_id = ? AND "
                             "NOT coalesce(kernel_thread, false) AND status IN ('ok', 'partial') GROUP BY 1",
                             [snap.host, snap.snapshot_id]).fetchall())
    paths = [r["cgroup"] for r in rows if r["cgroup"].startswith("/")]
    for r in rows:
        p = by_path.get(r["cgroup"], {})
        r["pids"] = npids.get(r["cgroup"], 0)
        r["pss_kb"], r["uss_kb"] = p.get("pss", 0) or 0, p.get("uss", 0) or 0
        path = r["cgroup"]
        if path.startswith("/"):
            below = [q for q in paths if q == path or q.startswith(path.rstrip("/") + "/")]
            r["subtree_kb"] = sum(x["charged_kb"] for x in rows if x["cgroup"] in below)
        else:
            r["subtree_kb"] = None
        unmapped_shmem = r["shmem_kb"] - r["shmem_mapped_kb"]
        r["rest_kb"] = r["charged_kb"] - r["pss_kb"] - r["file_unmapped_kb"] - unmapped_shmem - r["kernel_kb"]
        r["explained"] = (f"unmapped file {r['file_unmapped_kb']} + unmapped shmem {unmapped_shmem} + kernel "
                          f"{r['kernel_kb']} + rest {r['rest_kb']}")
    return rows


def service_rows(cgroup_rows: list[dict]) -> list[dict]:
    """The cgroup rows added up per service (:func:`analyzer.services.service_of` of each path); a service's
    current_kb is its shallowest cgroup's (memory.current is hierarchical)."""
    from .services import service_of

    out: dict[str, dict] = {}
    for r in cgroup_rows:
        path = r["cgroup"]
        svc = service_of(path) if path.startswith("/") else None
        name = svc.name if svc else path
        o = out.setdefault(name, {"service": name, "kind": svc.kind if svc else "none", "pod": svc.pod if svc else None,
                                  "cgroups": 0, "current_kb": None, "_depth": None,
                                  **{k: 0 for k in _SUMMED}})
        o["cgroups"] += 1
        for k in _SUMMED:
            o[k] += r.get(k) or 0
        depth = path.count("/") if svc else 0
        if svc and (o["_depth"] is None or depth < o["_depth"]):
            o["_depth"], o["current_kb"] = depth, r.get("current_kb")
    for o in out.values():
        del o["_depth"]
    return list(out.values())
