"""Shared-page attribution from PFNs: who shares what, and what a group really costs.

All figures come from distinct physical frames (``queries/snapshot_pages.sql``): a group's USS is
the frames mapped only by its members (what would be freed if the whole group exited), which the sum
of the members' own USS undercounts.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from common.errors import MemsnapError

from . import queries
from .sizes import SourceUnavailable, check_filters, check_regex, sizes
from .snapshots import Snapshot
from .store import Store

GROUP_BY = ("user", "command", "cgroup")


@dataclass
class Table:
    view: str
    snapshot: Snapshot
    columns: list[str]
    rows: list[dict]
    notes: list[str] = field(default_factory=list)


def check_pages(s: Snapshot) -> None:
    """Attribution needs the snapshot's PFNs and kpage data."""
    if not s.pfn_available:
        raise SourceUnavailable(
            f"snapshot {s.snapshot_id} has no PFNs: {s.no_pfn_reason}, so physical pages cannot be attributed",
            hint=f"{s.no_pfn_hint}; what still works on this snapshot: `memsnap sizes` and `memsnap diff` "
                 "with --source smaps, and `memsnap trend`")
    if not s.kpage_available:
        raise SourceUnavailable(f"snapshot {s.snapshot_id} has no kpagecount/kpageflags (kpage source not "
                                "recorded)", hint="record with --sources including pagemap,kpage")


def _run(store: Store, s: Snapshot, name: str, params: dict) -> tuple[list[str], list[dict]]:
    cur = queries.run(store.con, name, {"host": s.host, "snapshot_id": s.snapshot_id, **params})
    cols = [d[0] for d in cur.description]
    return cols, [dict(zip(cols, r)) for r in cur.fetchall()]


def parse_groups(spec: str) -> tuple[str, str | None]:
    """``user``, ``command``, ``cgroup``; ``regex:PATTERN`` on the command line (``regex:postgres`` also
    catches ``psql -d postgres``: anchor it, ``regex:^postgres``); ``name:PATTERN`` on the command name only."""
    for kind in ("regex", "name"):
        if spec.startswith(kind + ":"):
            pattern = spec[len(kind) + 1:]
            if not pattern:
                raise MemsnapError(f"--groups {kind}: needs a pattern",
                                   hint=f"e.g. --groups '{kind}:^(gunicorn|celery)'")
            return kind, pattern
    if spec not in GROUP_BY:
        raise MemsnapError(f"unknown --groups {spec!r}", hint="use user, command, cgroup, regex:PATTERN (on the "
                                                               "command line) or name:PATTERN (on the command name)")
    return spec, None


VIEWS = ("groups", "pairs", "mapping", "histogram", "flags", "reconcile")


def shared(store: Store, s: Snapshot, view: str = "groups", *, groups: str = "command",
           processfilter: str | None = None, userfilter: str | None = None, mapfilter: str | None = None,
           detail: bool = False, limit: int | None = None) -> Table:
    """``view`` of snapshot ``s``: groups | pairs | mapping | histogram | flags | reconcile."""
    if view not in VIEWS:
        raise MemsnapError(f"unknown shared view {view}", hint="use --groups, --pairs, --by mapping, --histogram, "
                                                                "--flags or --reconcile")
    check_pages(s)
    check_filters(store.con, processfilter, userfilter, mapfilter)
    filt = {"pfilter": processfilter, "ufilter": userfilter}
    notes: list[str] = []
    if view == "mapping":
        cols, rows, notes = _mapping(store, s, detail, processfilter, userfilter, mapfilter)
    elif view == "groups":
        by, pattern = parse_groups(groups)
        check_regex(store.con, f"--groups {by}:", pattern)
        cols, rows = _run(store, s, "shared_groups", {"by": by, "pattern": pattern, **filt})
    elif view == "reconcile":
        cols, rows = _run(store, s, "shared_reconcile", {})
        cols = [c for c in cols if c != "ord"]
        if processfilter or userfilter:
            notes.append("--reconcile always covers every recorded process; filters ignored")
    elif view == "pairs" and limit:
        cols, rows = top_pairs(store, s, limit, filt)
    else:
        cols, rows = _run(store, s, f"shared_{view}", {**filt, "pids": None} if view == "pairs" else filt)
    if limit and view in ("pairs", "mapping", "groups"):
        rows = rows[:limit]
    return Table(view, s, cols, rows, notes)


def _mapping(store: Store, s: Snapshot, detail: bool, processfilter, userfilter, mapfilter):
    """Per mapping name from the pages source (``detail``: per process and mapping)."""
    res = sizes(store, [s], by="pmap" if detail else "mapping", source="pages", processfilter=processfilter,
                userfilter=userfilter, mapfilter=mapfilter, sort="pss", reverse=True)
    if detail:
        cols = ["map", "pid", "name", "perms", "offset", "rss", "pss", "uss", "swap"]
        rows = sorted(res.rows, key=lambda r: (r["map"], -(r["pss"] or 0)))
    else:
        cols = ["map", "pids", "count", "rss", "pss", "uss", "swap", "avgpss", "avguss", "avgrss"]
        rows = res.rows
    return cols, [{c: r.get(c) for c in cols} for r in rows], list(res.notes)


#: how many processes top_pairs forms the pairs of first (at least twice the rows asked for)
TOP_PAIRS_FIRST = 32


def pair_totals(store: Store, s: Snapshot, filt: dict) -> list[dict]:
    """``shared_pair_totals``: per process, its shared frames (most first) and the frames of all its pairs."""
    return _run(store, s, "shared_pair_totals", filt)[1]


def top_pairs(store: Store, s: Snapshot, k: int, filt: dict, totals: list[dict] | None = None
              ) -> tuple[list[str], list[dict]]:
    """The first ``k`` rows of ``shared_pairs`` (most shared kB first, ties by pid_a, pid_b), exactly, without
    forming every pair (at 5M pages and 1,000 processes, all 499,500 pairs took 49 s).  A pair shares at most
    the shared frames of each of its two processes (``shared_pair_totals``), so the pairs among the n processes
    that share most are formed first, and n doubles until no pair with a process beyond them can reach the
    k-th row: the k-th row's kB must be strictly above the bound (a tie with an unseen pair could change which
    rows come first).  ``totals``: :func:`pair_totals`, if already read."""
    totals = pair_totals(store, s, filt) if totals is None else totals  # shared_frames descending
    n = max(2 * k, TOP_PAIRS_FIRST)
    while True:
        if n >= len(totals):
            cols, rows = _run(store, s, "shared_pairs", {**filt, "pids": None})
            return cols, rows[:k]
        cols, rows = _run(store, s, "shared_pairs", {**filt, "pids": [r["pid"] for r in totals[:n]]})
        bound_kb = totals[n]["shared_frames"] * s.page_size_bytes // 1024
        if len(rows) >= k and rows[k - 1]["shared_kb"] > bound_kb:
            return cols, rows[:k]
        n *= 2


def heatmap_pairs(store: Store, s: Snapshot, top: int, filt: dict, totals: list[dict] | None = None
                  ) -> tuple[list[int], list[str], list[list[int]]]:
    """:func:`pair_matrix` of every pair, from the pairs of the ``top`` processes that share most in total
    (``shared_pair_totals.pair_frames``, ties by pid) only.  ``totals``: :func:`pair_totals`, if already read."""
    totals = pair_totals(store, s, filt) if totals is None else totals
    pids = [r["pid"] for r in sorted(totals, key=lambda r: (-r["pair_frames"], r["pid"]))[:top]]
    _, rows = _run(store, s, "shared_pairs", {**filt, "pids": pids})
    return pair_matrix(rows, top, order=pids)


def pair_matrix(rows: list[dict], top: int = 20, order: list[int] | None = None) -> tuple[list[int], list[str], list[list[int]]]:
    """The ``top`` processes by total shared memory (or in ``order``) and their symmetric shared-kB matrix (for
    heatmaps)."""
    total: dict[int, int] = {}
    names: dict[int, str] = {}
    for r in rows:
        for p, n in ((r["pid_a"], r["name_a"]), (r["pid_b"], r["name_b"])):
            total[p] = total.get(p, 0) + r["shared_kb"]
            names[p] = n
    if order is not None:  # the ranking given (a process sharing nothing with the others in it is left out)
        pids = [p for p in order if p in total][:top]
    else:
        pids = sorted(total, key=lambda p: -total[p])[:top]
    idx = {p: i for i, p in enumerate(pids)}
    m = [[0] * len(pids) for _ in pids]
    for r in rows:
        a, b = idx.get(r["pid_a"]), idx.get(r["pid_b"])
        if a is not None and b is not None:
            m[a][b] = m[b][a] = r["shared_kb"]
    return pids, [f"{p} {names[p]}" for p in pids], m
