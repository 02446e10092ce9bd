"""Which files of a store are visible: the one rule, for readers, retention and compaction.

A snapshot is committed when a ``snapshots`` file holding its row exists.  A loose file (written by the
recorder) holds one snapshot; a compacted file (``memsnap compact``) holds many snapshots of one host and day,
in every table, under one compaction id.  Compaction writes the compacted data files, then the compacted
``snapshots`` file (its commit), then removes the files it merged.  Between the commit and the removal (or
after a kill there) a snapshot has several commit rows.  The rule:

* a snapshot's **winning segment** is the greatest of the segments whose ``snapshots`` file holds its row
  (compaction ids sort after snapshot ids, and a later compaction after an earlier one);
* a file is **visible** when its segment wins at least one snapshot.  Compaction merges whole files, so a
  segment either wins all its snapshots or none;
* a file whose segment has a commit but wins nothing is **superseded**: safe to delete.  Data files of a
  segment with no commit at all belong to a writer that is still running or died (``recorder.store.recover``
  handles those): neither visible nor superseded.

So at every moment each committed snapshot is visible exactly once, whatever was killed when.  The catalog is
built from the files themselves (a listing, plus reading the ``snapshot_id`` column of compacted
``snapshots`` files); there is no separate index to go stale.
"""
from __future__ import annotations

import errno
import glob
import os
import re
from dataclasses import dataclass, field

from . import layout, objstore
from .errors import StoreCorrupt


@dataclass
class Segment:
    host: str
    date: str
    name: str
    snapshot_ids: list[str]  # from its snapshots file: sorted

    @property
    def compacted(self) -> bool:
        return layout.is_compacted(self.name)


@dataclass
class Catalog:
    store: str
    #: visible files per table (sorted)
    files: dict[str, list[str]] = field(default_factory=dict)
    #: (host, snapshot_id) -> its winning segment
    winners: dict[tuple[str, str], Segment] = field(default_factory=dict)
    #: committed segments that win nothing: every file of them can be deleted
    superseded: list[Segment] = field(default_factory=list)
    #: (path, reason) of compacted snapshots files that could not be read (with ``on_bad``)
    bad: list[tuple[str, str]] = field(default_factory=list)

    def segments(self) -> list[Segment]:
        """Visible segments, oldest first (by their first snapshot id)."""
        seen: dict[tuple[str, str, str], Segment] = {}
        for seg in self.winners.values():
            seen.setdefault((seg.host, seg.date, seg.name), seg)
        return sorted(seen.values(), key=lambda s: (s.snapshot_ids[0], s.host, s.name))

    def snapshot_ids(self, host: str | None = None) -> list[tuple[str, str]]:
        """(host, snapshot_id) of committed snapshots, oldest first."""
        return sorted(((h, s) for h, s in self.winners if host is None or h == host), key=lambda x: (x[1], x[0]))


def segment_files(store: str, seg_host: str, seg_date: str, name: str, tables) -> list[str]:
    """The final-named files of one segment that exist, in the given tables."""
    out = []
    for t in tables:
        p = layout.data_path(store, t, seg_host, seg_date, name)
        if (objstore.exists if objstore.is_url(p) else os.path.exists)(p):
            out.append(p)
    return out


def read_snapshot_ids(path: str) -> list[str]:
    """The snapshot ids of a compacted commit file, sorted (with pyarrow: the recorder's reader; the analyzer
    passes its own, with DuckDB, as ``read_ids``, so opening a compacted store does not import pyarrow)."""
    import pyarrow.parquet as pq

    table = objstore.read_table(path, ["snapshot_id"]) if objstore.is_url(path) else \
        pq.read_table(path, columns=["snapshot_id"])
    return sorted(table.column(0).to_pylist())


def partitions(store: str, host: str | None = None) -> list[tuple[str, str]]:
    """(host, date) of every partition of the commit table, from a directory listing alone; sorted."""
    out = []
    for d in _ls(os.path.join(store, layout.COMMIT_TABLE, f"host={host}" if host else "host=*", "date=*")):
        out.append((os.path.basename(os.path.dirname(d))[len("host="):], os.path.basename(d)[len("date="):]))
    return sorted(out)


def _ls(pattern: str) -> list[str]:
    """A glob on a directory store, or on an object store (``s3://``: :func:`common.objstore.glob`)."""
    return objstore.glob(pattern) if objstore.is_url(pattern) else glob.glob(pattern)


def _glob(store: str, table: str, host: str | None, parts) -> list[str]:
    if parts is None:
        return _ls(layout.table_glob(store, table, host))
    return [p for h, d in parts for p in _ls(os.path.join(layout.partition_dir(store, table, h, d),
                                                          "*" + layout.SUFFIX))]


def decide(segments) -> tuple[dict[tuple[str, str], Segment], list[Segment]]:
    """The rule, on committed segments however they were listed (a directory here, an object store's listing in
    :mod:`recorder.push`): each (host, snapshot_id)'s winning segment, and the segments that win nothing."""
    segments = list(segments)
    winners: dict[tuple[str, str], Segment] = {}
    for seg in segments:
        for sid in seg.snapshot_ids:
            cur = winners.get((seg.host, sid))
            if cur is None or seg.name > cur.name:
                winners[(seg.host, sid)] = seg
    visible = {(s.host, s.date, s.name) for s in winners.values()}
    superseded = sorted((s for s in segments if (s.host, s.date, s.name) not in visible and s.snapshot_ids),
                        key=lambda s: (s.host, s.name))
    return winners, superseded


def scan(store: str, tables, host: str | None = None, on_bad=None, parts=None, read_ids=None) -> Catalog:
    """The catalog of one store (``tables``: every table name, ``snapshots`` included).

    ``parts``: only these (host, date) partitions (a snapshot lives in one partition, so each partition's
    winners are decided by that partition alone).  A compacted ``snapshots`` file that cannot be read raises
    :class:`StoreCorrupt` naming it, or, with ``on_bad(path, reason)``, is left out (its snapshots are then not
    visible) and listed in ``bad``.  ``read_ids(path)``: how a compacted commit file's ids are read (default
    :func:`read_snapshot_ids`)."""
    cat = Catalog(store)
    segs: dict[tuple[str, str, str], Segment] = {}  # (host, date, name): names are only unique per partition
    for p in _glob(store, layout.COMMIT_TABLE, host, parts):
        h, d, name = layout.host_of(p), layout.date_of(p), layout.segment_of(p)
        if layout.is_compacted(name):
            try:
                ids = (read_ids or read_snapshot_ids)(p)
            except PermissionError:
                raise  # not damage: the reader says "permission denied", naming the file
            except Exception as e:  # pyarrow and DuckDB raise several types for damaged files
                if "Permission denied" in str(e):
                    raise PermissionError(errno.EACCES, "Permission denied", p) from None
                why = f"not a readable Parquet file ({str(e).splitlines()[0][:120]})"
                if on_bad is None:
                    raise StoreCorrupt(f"{p}: {why}", hint="remove or move the file (its snapshots go with it), or "
                                       "run `memsnap --skip-bad ...` to leave them out", path=p) from None
                on_bad(p, why)
                cat.bad.append((p, why))
                continue
        else:
            ids = [name]
        segs[(h, d, name)] = Segment(h, d, name, ids)
    cat.winners, cat.superseded = decide(segs.values())
    visible = {(s.host, s.date, s.name) for s in cat.winners.values()}
    for t in tables:
        cat.files[t] = sorted(p for p in _glob(store, t, host, parts)
                              if (layout.host_of(p), layout.date_of(p), layout.segment_of(p)) in visible)
    return cat


_ID_TIME = re.compile(r"\d{8}T\d{12}")  # layout.ID_TIME, as written


@dataclass(frozen=True)
class Scope:
    """The snapshots a question needs, so that a reader opens only their files: the ``latest`` N of each
    host, the ids starting with one of ``prefixes``, or the snapshots captured between ``since`` and ``until``
    (UTC, formatted as :data:`common.layout.ID_TIME`, inclusive: partitions are pruned by their date, then segments by the
    times their snapshot ids start with); ``host`` narrows any of them.  Files of a compacted segment come whole, so a scope can bring more snapshots than
    it names, never fewer: the extra ones are older than the latest N, and match none of the prefixes."""
    latest: int | None = None
    prefixes: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    host: str | None = None
    #: the tables the question reads (None: all); the others' files are neither listed nor opened
    tables: tuple[str, ...] | None = None


def _restrict(cat: Catalog, keep, tables=None) -> Catalog:
    """``cat`` with only the files of the segments winning a snapshot in ``keep``; with ``tables``, those
    files are found by name (``cat`` then needs only the commit table: no listing of the data tables)."""
    won = {(s.host, s.date, s.name): s for k, s in cat.winners.items() if k in keep}
    out = Catalog(cat.store, bad=cat.bad, superseded=cat.superseded)
    out.winners = {k: s for k, s in cat.winners.items() if (s.host, s.date, s.name) in won}
    if tables is None:
        out.files = {t: [p for p in fs if (layout.host_of(p), layout.date_of(p), layout.segment_of(p)) in won]
                     for t, fs in cat.files.items()}
    else:
        out.files = {t: [] for t in tables}
        for s in won.values():
            for p in segment_files(cat.store, s.host, s.date, s.name, tables):
                out.files[layout.table_of(cat.store, p)].append(p)
        out.files = {t: sorted(fs) for t, fs in out.files.items()}
    return out


def select(store: str, tables, scope: Scope | None = None, on_bad=None, read_ids=None) -> Catalog:
    """The catalog of the partitions and segments ``scope`` needs (all of them for None): partition pruning
    by host and date from directory listings, so nothing outside the scope is read, not even a footer.
    Empty when the scope matches nothing (the caller then decides what to say)."""
    if scope is None:
        return scan(store, tables, on_bad=on_bad, read_ids=read_ids)
    if scope.tables is not None:
        tables = [t for t in tables if t in scope.tables or t == layout.COMMIT_TABLE]
    if scope == Scope(host=scope.host, tables=scope.tables):  # every snapshot (of the host)
        return scan(store, tables, host=scope.host, on_bad=on_bad, read_ids=read_ids)
    parts = partitions(store, scope.host)
    if scope.latest:
        commits, keep = Catalog(store), set()

        def add(part_list) -> list[str]:  # each partition's commit table is scanned once
            part = scan(store, [layout.COMMIT_TABLE], on_bad=on_bad, parts=part_list, read_ids=read_ids)
            commits.winners.update(part.winners)
            commits.bad += part.bad
            return [sid for _, sid in part.winners]

        for h in sorted({h for h, _ in parts}):
            days = sorted((d for hh, d in parts if hh == h), reverse=True)  # newest day first
            ids: list[str] = []
            for i, d in enumerate(days):
                ids += add([(h, d)])
                if len(ids) >= scope.latest:
                    break
            if all(_ID_TIME.fullmatch(sid[:layout.ID_TIME_LEN]) for sid in ids):
                keep |= {(h, sid) for sid in sorted(ids)[-scope.latest:]}  # ids sort by capture time
            else:  # ids of another form: their order says nothing, so every snapshot of the host
                keep |= {(h, sid) for sid in ids + add([(h, d) for d in days[i + 1:]])}
        return _restrict(commits, keep, tables)
    if scope.prefixes:
        commits = scan(store, [layout.COMMIT_TABLE], on_bad=on_bad, parts=parts, read_ids=read_ids)
        keep = {k for k in commits.winners if any(k[1].startswith(p) for p in scope.prefixes)}
        return _restrict(commits, keep, tables)
    lo, hi = scope.since, scope.until
    chosen = [(h, d) for h, d in parts if (lo is None or d.replace("-", "") >= lo[:8])
              and (hi is None or d.replace("-", "") <= hi[:8])]
    cat = scan(store, tables, on_bad=on_bad, parts=chosen, read_ids=read_ids)
    return _restrict(cat, {k for k in cat.winners if _in_range(k[1], lo, hi)})


def _in_range(snapshot_id: str, lo: str | None, hi: str | None) -> bool:
    """Whether an id's capture time (its first characters) is in [lo, hi]; an id of another form: True."""
    t = snapshot_id[:layout.ID_TIME_LEN]
    if not _ID_TIME.fullmatch(t):
        return True
    return (lo is None or t >= lo) and (hi is None or t <= hi)
