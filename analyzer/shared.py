"""Shared-page attribution from PFNs: who shares what, and what a group really costs.

All figures come from distinct physical frames (``queries/snapshot_pages.sql``): a group's USS is
the frames mapped only by its members (what would be freed if the whole group exited), which the sum
of the members' own USS undercounts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import MemsnapError

from . import queries
from .sizes import SourceUnavailable, check_regex, sizes
from .store import Snapshot, Store

GROUP_BY = ("user", "command", "cgroup")


@dataclass
class Table:
    view: str
    snapshot: Snapshot
    columns: list[str]
    rows: list[dict]
    notes: list[str] = field(default_factory=list)


def _snapshot(store: Store, snapshot: str | None, host: str | None) -> Snapshot:
    snaps = store.resolve(snapshot, host)
    if len(snaps) > 1:
        raise MemsnapError(f"{len(snaps)} hosts have a latest snapshot ({', '.join(s.host for s in snaps)})",
                           hint="pick one with --host or --snapshot")
    s = snaps[0]
    if not s.pfn_available:
        raise SourceUnavailable(
            f"snapshot {s.snapshot_id} has no PFNs: it was recorded without CAP_SYS_ADMIN (or without the "
            "pagemap source), so physical pages cannot be attributed",
            hint="record as root; what still works on this snapshot: `memsnap sizes` and `memsnap diff` "
                 "with --source smaps, and `memsnap trend`")
    if not s.kpage_available:
        raise SourceUnavailable(f"snapshot {s.snapshot_id} has no kpagecount/kpageflags (kpage source not "
                                "recorded)", hint="record with --sources including pagemap,kpage")
    return s


def _run(store: Store, name: str, params: dict) -> tuple[list[str], list[dict]]:
    cur = queries.run(store.con, name, params)
    cols = [d[0] for d in cur.description]
    return cols, [dict(zip(cols, r)) for r in cur.fetchall()]


def parse_groups(spec: str) -> tuple[str, str | None]:
    if spec.startswith("regex:"):
        pattern = spec[len("regex:"):]
        if not pattern:
            raise MemsnapError("--groups regex: needs a pattern", hint="e.g. --groups 'regex:gunicorn|celery'")
        return "regex", pattern
    if spec not in GROUP_BY:
        raise MemsnapError(f"unknown --groups {spec!r}", hint="use user, command, cgroup or regex:PATTERN")
    return spec, None


def shared(store: Store, view: str, *, snapshot: str | None = "latest", host: str | None = None,
           groups: str = "command", processfilter: str | None = None, userfilter: str | None = None,
           mapfilter: str | None = None, detail: bool = False, limit: int | None = None) -> Table:
    """``view``: groups | pairs | mapping | histogram | flags | reconcile."""
    s = _snapshot(store, snapshot, host)
    for opt, val in (("--processfilter", processfilter), ("--userfilter", userfilter), ("--mapfilter", mapfilter)):
        check_regex(store.con, opt, val)
    base = {"host": s.host, "snapshot_id": s.snapshot_id}
    filt = {"pfilter": processfilter, "ufilter": userfilter}
    notes: list[str] = []
    if view == "groups":
        by, pattern = parse_groups(groups)
        check_regex(store.con, "--groups regex:", pattern)
        cols, rows = _run(store, "shared_groups", {**base, "by": by, "pattern": pattern, **filt})
    elif view == "pairs":
        cols, rows = _run(store, "shared_pairs", {**base, **filt})
    elif view == "histogram":
        cols, rows = _run(store, "shared_histogram", {**base, **filt})
    elif view == "flags":
        cols, rows = _run(store, "shared_flags", {**base, **filt})
    elif view == "reconcile":
        cols, rows = _run(store, "shared_reconcile", base)
        cols = [c for c in cols if c != "ord"]
        if processfilter or userfilter:
            notes.append("--reconcile always covers every recorded process; filters ignored")
    elif view == "mapping":
        res = sizes(store, by="pmap" if detail else "mapping", source="pages", snapshot=s.snapshot_id, host=s.host,
                    processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter, sort="pss",
                    reverse=True, columns=None)
        if detail:
            cols = ["map", "pid", "name", "perms", "offset", "rss", "pss", "uss", "swap"]
            rows = sorted(res.rows, key=lambda r: (r["map"], -(r["pss"] or 0)))
        else:
            cols = ["map", "pids", "count", "rss", "pss", "uss", "swap", "avgpss", "avguss", "avgrss"]
            rows = res.rows
        rows = [{c: r.get(c) for c in cols} for r in rows]
        notes += res.notes
    else:
        raise MemsnapError(f"unknown shared view {view}", hint="use --groups, --pairs, --by mapping, --histogram, "
                                                                "--flags or --reconcile")
    if limit and view in ("pairs", "mapping", "groups"):
        rows = rows[:limit]
    return Table(view, s, cols, rows, notes)


def pair_matrix(rows: list[dict], top: int = 20) -> tuple[list[int], list[str], list[list[int]]]:
    """The ``top`` processes by total shared memory and their symmetric shared-kB matrix (for heatmaps)."""
    total: dict[int, int] = {}
    names: dict[int, str] = {}
    for r in rows:
        for p, n in ((r["pid_a"], r["name_a"]), (r["pid_b"], r["name_b"])):
            total[p] = total.get(p, 0) + r["shared_kb"]
            names[p] = n
    pids = sorted(total, key=lambda p: -total[p])[:top]
    idx = {p: i for i, p in enumerate(pids)}
    m = [[0] * len(pids) for _ in pids]
    for r in rows:
        a, b = idx.get(r["pid_a"]), idx.get(r["pid_b"])
        if a is not None and b is not None:
            m[a][b] = m[b][a] = r["shared_kb"]
    return pids, [f"{p} {names[p]}" for p in pids], m
