"""Diffs between two snapshots: who grew, who is new or gone, and where sharing was lost.

Processes are matched by identity ``(boot_id, pid, starttime)``: a reused PID is one ``exited`` row and
one ``new`` row, never a change.  Across a reboot (or hosts) process matching is refused; groups by
command, user, cgroup or mapping name still match.  Mappings are matched by path, perms and offset;
anonymous and pseudo mappings (``[heap]``, ``[stack]``, ``<anonymous>``...) by kind and perms.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from common.errors import MemsnapError

from . import queries
from .sizes import SizesResult, page_facts_table, sizes
from .snapshots import Snapshot
from .store import Store

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

    @property
    def label_columns(self) -> list[str]:
        """What names a row for a person (a chart label, the biggest movers): the key without the start time,
        user and full command line, e.g. pid and name."""
        return [k for k in self.key_columns if k not in ("started", "starttime", "user", "command")] \
            or self.key_columns

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


def diff(store: Store, before: Snapshot, after: Snapshot, *, by: str = "process", source: str = "smaps",
         processfilter: str | None = None, userfilter: str | None = None, mapfilter: str | None = None,
         min_change: int = 0, sort: str | None = None, reverse: bool = False, normalize: bool | None = None,
         sized: tuple[SizesResult, SizesResult] | None = None) -> DiffResult:
    """``before`` -> ``after``.  ``sized``: both snapshots' sizes at the diff's view (:func:`view_of`), default
    sort, if the caller has them already."""
    if by not in BY:
        raise MemsnapError(f"unknown view --by {by}", hint=f"choose from {', '.join(BY)}")
    cross_host = before.host != after.host
    normalize = cross_host if normalize is None else normalize
    if (before.boot_id != after.boot_id or cross_host) and by == "process":
        why = "different hosts" if cross_host else "a reboot between them (boot ids differ)"
        raise ProcessMatchRefused(
            f"cannot match processes between {before.snapshot_id} and {after.snapshot_id}: {why}; "
            "PIDs and start times only identify a process within one boot",
            hint="use --by command, --by user, --by cgroup or --by mapping")
    view = view_of(by, before, after)
    want_trans = view == "process" and before.has_pages and after.has_pages
    pairs = sized is None and want_trans and source == "pages" and not mapfilter
    try:
        trans = _pairs(store, before, after) if pairs else None
        b, a = sized or _sized_pair(store, before, after, by=view, source=source, processfilter=processfilter,
                                    userfilter=userfilter, mapfilter=mapfilter, facts=_FACTS if trans else None)
    finally:
        if pairs:
            for t in (_PAIRS, _FACTS):
                store.con.execute(f'DROP TABLE IF EXISTS "{t}"')
    keycols, show = KEYS[view] if view in KEYS else (KEYS_OF_GROUP[by], KEYS_OF_GROUP[by])
    key = _matcher(keycols, view == "pmap", normalize)
    bi, ai = _index(b.rows, key), _index(a.rows, key)
    notes = []
    if trans is None:
        trans, notes = _transitions(store, before, after, mapfilter) if want_trans else ({}, [])
    if view == "process" and not want_trans:
        notes.append("page-level transitions need PFNs and kpage data in both snapshots; not computed")
    counted = by != "process" and view != "pmap"
    rows = [_row(bi.get(k), ai.get(k), show, normalize, counted, trans if want_trans else None)
            for k in dict.fromkeys(list(bi) + list(ai))]
    rows = [r for r in rows if _keep(r, min_change)]
    columns = ["status", *show, *(["count_before", "count_after"] if counted else []),
               *[f"{c}_{s}" for c in AMOUNTS for s in ("before", "after", "delta")],
               *(TRANSITIONS if want_trans else [])]
    _sort(rows, sort or "pss_delta", reverse, columns, show)
    if cross_host:
        notes.append(f"hosts differ ({before.host} -> {after.host}): names normalized (pids and library "
                     "versions stripped)")
    return DiffResult(by, source, before, after, show, rows, columns, want_trans, notes + b.notes)


def _sized_pair(store: Store, before: Snapshot, after: Snapshot, **kw) -> tuple[SizesResult, SizesResult]:
    """The sizes of both snapshots from one pass (one facts statement over both: at 5M pages each, 7.8 s
    against 4.7 + 4.7 s for two), split back by snapshot."""
    both = sizes(store, [before, after], **kw)

    def of(s: Snapshot) -> SizesResult:
        return dataclasses.replace(both, rows=[r for r in both.rows if (r["host"], r["snapshot_id"]) ==
                                               (s.host, s.snapshot_id)], snapshots=[s])
    return of(before), of(after)


def view_of(by: str, before: Snapshot, after: Snapshot) -> str:
    """The sizes view a diff compares: by mapping within one boot, per process x mapping (``pmap``)."""
    same_boot = before.boot_id == after.boot_id and before.host == after.host
    return "pmap" if by == "mapping" and same_boot else by


#: per view: the columns that match a row across the snapshots, and the key columns shown
KEYS = {"process": (["pid", "starttime"], ["pid", "started", "starttime", "user", "command", "name"]),
        "pmap": (["pid", "starttime", "map", "perms", "offset"], ["pid", "name", "map", "perms", "offset"])}
KEYS_OF_GROUP = {"command": ["command"], "user": ["user"], "cgroup": ["cgroup"], "mapping": ["map"]}


def _matcher(keycols: list[str], pmap: bool, normalize: bool):
    def key(r):
        k = tuple(r.get(c) for c in keycols)
        if pmap and _anon_kind(r["map"]):
            k = k[:4] + (0,)  # anonymous mappings move: match by kind and perms, not offset
        if normalize:
            k = tuple(normalize_name(x) if isinstance(x, str) else x for x in k)
        return k
    return key


def _index(rows: list[dict], key) -> dict:
    out: dict = {}
    for r in rows:
        k = key(r)
        if k in out:  # several rows fold into one key (anonymous mappings, normalized names)
            acc = out[k]
            for c in AMOUNTS + ("count",):
                if r.get(c) is not None:
                    acc[c] = (acc.get(c) or 0) + r[c]
        else:
            out[k] = dict(r)
    return out


#: the temp tables of :func:`_pairs`: queries/page_pairs.sql's rows, and both snapshots' page facts from them
_PAIRS, _FACTS = "_diff_page_pairs", "_diff_page_facts"


def _pairs(store: Store, before: Snapshot, after: Snapshot) -> dict | None:
    """``diff --source pages`` by process, in one pass over both snapshots' pages (queries/page_pairs.sql): the
    page transitions per pid, and both snapshots' page facts into the temp table ``_FACTS`` (for :func:`sizes`
    ``facts=``), each snapshot's pages joined to its frames once rather than twice.  None (nothing made) when the
    pairing needs process partitions (:func:`transition_parts`): :func:`_transitions` then runs them."""
    if transition_parts(before, after, store.memory_limit_bytes()) > 1:
        return None
    q = queries.get("page_pairs")
    params = {"from_host": before.host, "from_id": before.snapshot_id, "to_host": after.host,
              "to_id": after.snapshot_id, "parts": 1, "part": 0}
    store.con.execute(f'CREATE OR REPLACE TEMP TABLE "{_PAIRS}" AS {q.sql}', {k: params[k] for k in q.params})
    cur = store.con.execute(f'SELECT pid, {", ".join(TRANSITIONS)} FROM "{_PAIRS}" WHERE host IS NULL')
    names = [d[0] for d in cur.description]
    trans = {r[0]: dict(zip(names, r)) for r in cur.fetchall()}
    page_facts_table(store.con, [before, after], _FACTS, kinds=_PAIRS)
    return trans


def _transitions(store: Store, before: Snapshot, after: Snapshot, mapfilter: str | None) -> tuple[dict, list]:
    """Page transitions per pid, in as many process partitions as DuckDB's memory limit needs."""
    trans: dict = {}
    parts = transition_parts(before, after, store.memory_limit_bytes())
    for part in range(parts):  # each process is in exactly one part
        cur = queries.run(store.con, "page_transitions", {
            "from_host": before.host, "from_id": before.snapshot_id, "to_host": after.host,
            "to_id": after.snapshot_id, "mapfilter": mapfilter, "parts": parts, "part": part})
        names = [d[0] for d in cur.description]
        trans.update((r[0], dict(zip(names, r))) for r in cur.fetchall())
    notes = [f"page transitions computed in {parts} parts to stay within DuckDB's memory limit"] if parts > 1 else []
    return trans, notes


def _row(rb: dict | None, ra: dict | None, show: list[str], normalize: bool, counted: bool,
         trans: dict | None) -> dict:
    base = ra or rb
    row = {c: normalize_name(base.get(c)) if normalize and isinstance(base.get(c), str) else base.get(c)
           for c in show}
    if counted:
        row["count_before"] = rb.get("count") if rb else 0
        row["count_after"] = ra.get("count") if ra else 0
    for c in AMOUNTS:
        vb = rb.get(c) if rb else None
        va = ra.get(c) if ra else None
        row[f"{c}_before"], row[f"{c}_after"] = vb, va
        row[f"{c}_delta"] = (va or 0) - (vb or 0) if (va is not None or vb is not None) else None
    row["status"] = "new" if rb is None else "exited" if ra is None else \
        "changed" if any(row[f"{c}_delta"] for c in AMOUNTS) else "same"
    if trans is not None:
        t = trans.get(row["pid"]) if rb is not None and ra is not None else None
        row.update({c: t[c] if t else None for c in TRANSITIONS})
    return row


def _keep(row: dict, min_change: int) -> bool:
    return not min_change or max(abs(row[f"{c}_delta"] or 0) for c in AMOUNTS) >= min_change


def _sort(rows: list[dict], sort: str, reverse: bool, columns: list[str], show: list[str]) -> None:
    if sort not in columns:
        raise MemsnapError(f"unknown sort key {sort}", hint=f"choose from: {' '.join(columns)}")
    rows.sort(key=lambda r: (r.get(sort) is not None, r.get(sort) if r.get(sort) is not None else 0,
                             tuple(str(r.get(c)) for c in show)),
              reverse=reverse)  # the key columns break ties: the same order on every run
