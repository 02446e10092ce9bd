"""Diffs between two snapshots: who grew, who is new or gone, and where sharing was lost.

Processes are matched by identity ``(boot_id, pid, starttime)``: a reused PID is one ``exited`` row and
one ``new`` row, never a change.  Across a reboot (or hosts) process matching is refused; groups by
command, user, cgroup or mapping name still match.  Mappings are matched by path, perms and offset;
anonymous and pseudo mappings (``[heap]``, ``[stack]``, ``<anonymous>``...) by kind and perms.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from common.errors import MemsnapError

from . import queries
from .sizes import SizesResult, sizes
from .store import Snapshot, Store

BY = ("process", "command", "user", "cgroup", "mapping")
AMOUNTS = ("vss", "rss", "pss", "uss", "swap")
TRANSITIONS = ("became_private_kb", "became_shared_kb", "new_pages_kb", "gone_pages_kb",
               "swapped_out_kb", "swapped_in_kb")
STATUSES = ("new", "exited", "changed", "same")


class ProcessMatchRefused(MemsnapError):
    """Processes cannot be matched across a reboot or between hosts."""


@dataclass
class DiffResult:
    by: str
    source: str
    before: Snapshot
    after: Snapshot
    key_columns: list[str]
    rows: list[dict]
    columns: list[str]
    transitions: bool = False
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        counts = {s: sum(1 for r in self.rows if r["status"] == s) for s in STATUSES}
        totals = {f"{a}_delta": sum(r[f"{a}_delta"] or 0 for r in self.rows) for a in AMOUNTS}
        movers = sorted(self.rows, key=lambda r: abs(r["pss_delta"] or 0), reverse=True)[:3]
        out = {"from": self.before.snapshot_id, "to": self.after.snapshot_id, **counts, **totals,
               "biggest_movers": [{k: r.get(k) for k in self.key_columns + ["status", "pss_delta"]} for r in movers]}
        if self.transitions:
            out.update({t: sum(r.get(t) or 0 for r in self.rows) for t in TRANSITIONS})
        return out


_LIBVER = re.compile(r"(\.so)(\.\d+)+$|-\d+(\.\d+)+(?=\.so)")
_DIGITS = re.compile(r"\d{3,}")


def normalize_name(name: str | None) -> str | None:
    """For matching across hosts: drop shared-library version suffixes and pid-like numbers."""
    if name is None:
        return None
    name = _LIBVER.sub(lambda m: m.group(1) or "", name)
    return _DIGITS.sub("N", name)


def _anon_kind(path: str) -> bool:
    return path == "<anonymous>" or path.startswith("[")


def pick_pair(store: Store, from_id: str | None, to_id: str | None, host: str | None) -> tuple[Snapshot, Snapshot]:
    if from_id and to_id:
        return store.resolve(from_id, host)[0], store.resolve(to_id, host)[0]
    snaps = store.snapshots(host)
    hosts = sorted({s.host for s in snaps})
    if from_id:
        before = store.resolve(from_id, host)[0]
        later = [s for s in snaps if s.host == before.host and (s.capture_start, s.snapshot_id) >
                 (before.capture_start, before.snapshot_id)]
        if not later:
            raise MemsnapError(f"no snapshot of host {before.host} after {before.snapshot_id}",
                               hint="give --to, or record another snapshot")
        return before, later[-1]
    if len(hosts) > 1:
        raise MemsnapError(f"the stores hold {len(hosts)} hosts ({', '.join(hosts)}): which two snapshots?",
                           hint="pass --host NAME for its last two snapshots, or --from ID --to ID")
    if to_id:
        after = store.resolve(to_id, host)[0]
        earlier = [s for s in snaps if (s.capture_start, s.snapshot_id) < (after.capture_start, after.snapshot_id)]
        if not earlier:
            raise MemsnapError(f"no snapshot before {after.snapshot_id}", hint="give --from")
        return earlier[-1], after
    if len(snaps) < 2:
        raise MemsnapError(f"need two snapshots to diff, the store has {len(snaps)}",
                           hint="record another one with `memsnap record`")
    return snaps[-2], snaps[-1]


def _rows(store, snap: Snapshot, by: str, source: str, filters: dict) -> SizesResult:
    return sizes(store, by=by, source=source, snapshot=snap.snapshot_id, host=snap.host,
                 columns=None, sort=None, **filters)


#: DuckDB memory per pages row of the two snapshots that page_transitions needs in one run.  Measured: two
#: snapshots of 53M rows each (50M-page synthetic stores) completed at a 1 GB limit, and ran out of memory
#: at 500 MB, where 2 parts completed (peak RSS 714 MiB); 10 B/row keeps a margin.
TRANSITION_BYTES_PER_ROW = 10


def transition_parts(before, after, memory_limit_bytes: int | None) -> int:
    """How many process partitions page_transitions runs in: 1 unless both snapshots' pages rows need more
    than DuckDB's memory limit (at TRANSITION_BYTES_PER_ROW)."""
    rows = (before.pages_rows or 0) + (after.pages_rows or 0)
    if not memory_limit_bytes or rows * TRANSITION_BYTES_PER_ROW <= memory_limit_bytes:
        return 1
    return -(-rows * TRANSITION_BYTES_PER_ROW // memory_limit_bytes)


def diff(store: Store, *, from_id: str | None = None, to_id: str | None = None, host: str | None = None,
         by: str = "process", source: str = "smaps", processfilter: str | None = None,
         userfilter: str | None = None, mapfilter: str | None = None, min_change: int = 0,
         sort: str | None = None, reverse: bool = False, normalize: bool | None = None) -> DiffResult:
    if by not in BY:
        raise MemsnapError(f"unknown view --by {by}", hint=f"choose from {', '.join(BY)}")
    before, after = pick_pair(store, from_id, to_id, host)
    notes = []
    cross_host = before.host != after.host
    if normalize is None:
        normalize = cross_host
    if (before.boot_id != after.boot_id or cross_host) and by == "process":
        why = "different hosts" if cross_host else "a reboot between them (boot ids differ)"
        raise ProcessMatchRefused(
            f"cannot match processes between {before.snapshot_id} and {after.snapshot_id}: {why}; "
            "PIDs and start times only identify a process within one boot",
            hint="use --by command, --by user, --by cgroup or --by mapping")
    filters = dict(processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter)
    view = "pmap" if (by == "mapping" and before.boot_id == after.boot_id and not cross_host) else by
    b = _rows(store, before, view, source, filters)
    a = _rows(store, after, view, source, filters)

    if view == "process":
        keycols = ["pid", "starttime"]
        show = ["pid", "user", "command", "name"]
    elif view == "pmap":
        keycols = ["pid", "starttime", "map", "perms", "offset"]
        show = ["pid", "name", "map", "perms", "offset"]
    else:
        keycols = {"command": ["command"], "user": ["user"], "cgroup": ["cgroup"], "mapping": ["map"]}[by]
        show = list(keycols)

    def key(r):
        k = tuple(r.get(c) for c in keycols)
        if view == "pmap" and _anon_kind(r["map"]):
            k = k[:4] + (0,)  # anonymous mappings move: match by kind and perms, not offset
        if normalize:
            k = tuple(normalize_name(x) if isinstance(x, str) else x for x in k)
        return k

    def index(res):
        out: dict = {}
        for r in res.rows:
            k = key(r)
            if k in out:  # several rows fold into one key (anonymous mappings, normalized names)
                acc = out[k]
                for c in AMOUNTS + ("count",):
                    if r.get(c) is not None:
                        acc[c] = (acc.get(c) or 0) + r[c]
            else:
                out[k] = dict(r)
        return out

    bi, ai = index(b), index(a)
    trans = {}
    want_trans = view == "process" and before.pfn_available and after.pfn_available and \
        before.kpage_available and after.kpage_available
    if want_trans:
        parts = transition_parts(before, after, store.memory_limit_bytes())
        for part in range(parts):  # each process is in exactly one part
            cur = queries.run(store.con, "page_transitions", {
                "from_host": before.host, "from_id": before.snapshot_id, "to_host": after.host,
                "to_id": after.snapshot_id, "mapfilter": mapfilter, "parts": parts, "part": part})
            names = [d[0] for d in cur.description]
            trans.update((r[0], dict(zip(names, r))) for r in cur.fetchall())
        if parts > 1:
            notes.append(f"page transitions computed in {parts} parts to stay within DuckDB's memory limit")
    elif view == "process":
        notes.append("page-level transitions need PFNs and kpage data in both snapshots; not computed")

    rows = []
    for k in list(dict.fromkeys(list(bi) + list(ai))):
        rb, ra = bi.get(k), ai.get(k)
        base = ra or rb
        row = {c: base.get(c) for c in show}
        if normalize:
            for c in show:
                if isinstance(row[c], str):
                    row[c] = normalize_name(row[c])
        if by != "process" and view != "pmap":
            row["count_before"] = rb.get("count") if rb else 0
            row["count_after"] = ra.get("count") if ra else 0
        for c in AMOUNTS:
            vb = rb.get(c) if rb else None
            va = ra.get(c) if ra else None
            row[f"{c}_before"], row[f"{c}_after"] = vb, va
            row[f"{c}_delta"] = (va or 0) - (vb or 0) if (va is not None or vb is not None) else None
        if rb is None:
            row["status"] = "new"
        elif ra is None:
            row["status"] = "exited"
        else:
            row["status"] = "changed" if any(row[f"{c}_delta"] for c in AMOUNTS) else "same"
        if want_trans:
            t = trans.get(row["pid"]) if rb is not None and ra is not None else None
            for c in TRANSITIONS:
                row[c] = t[c] if t else None
        if min_change and max(abs(row[f"{c}_delta"] or 0) for c in AMOUNTS) < min_change:
            continue
        rows.append(row)

    columns = ["status"] + show + (["count_before", "count_after"] if by != "process" and view != "pmap" else [])
    columns += [f"{c}_{s}" for c in AMOUNTS for s in ("before", "after", "delta")]
    if want_trans:
        columns += list(TRANSITIONS)
    sort = sort or "pss_delta"
    if sort not in columns:
        raise MemsnapError(f"unknown sort key {sort}", hint=f"choose from: {' '.join(columns)}")
    rows.sort(key=lambda r: (r.get(sort) is not None, r.get(sort) if r.get(sort) is not None else 0,
                             tuple(str(r.get(c)) for c in show)),
              reverse=reverse)  # the key columns break ties: the same order on every run
    if cross_host:
        notes.append(f"hosts differ ({before.host} -> {after.host}): names normalized (pids and library "
                     "versions stripped)")
    return DiffResult(by, source, before, after, show, rows, columns, want_trans, notes + b.notes)
