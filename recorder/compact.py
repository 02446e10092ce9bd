"""Compaction: merge the committed snapshots of one host and day into one file per table.

A store recorded every minute holds 1,440 snapshots, so 8,640 small files, a day; every reader pays per file.
``compact()`` rewrites each (host, date) partition that has more than one visible segment into one compacted
segment (``c<UTC time>Z-<pid>.parquet`` in every table directory).  Each input's rows are copied in order as
their own row groups, so a snapshot's rows stay together and keep the order the recorder wrote; columns added
to the schema since an input was written are filled with nulls.

Safety is the recorder's commit protocol (recorder/store.py) plus the visibility rule of
:mod:`common.catalog`:

1. the partition's lock (``.inprogress/compact-<host>-<date>.flock``) is taken, non-blocking: one compactor per
   partition, a second one skips it;
2. the compacted data files are written under the compaction id's marker, staged and renamed like a snapshot;
   without a commit they are invisible, and a killed compactor's files are removed by ``recover``;
3. the compacted ``snapshots`` file (one row per snapshot) is renamed into place: the commit.  From here the
   compacted segment wins every snapshot it holds, and the inputs are superseded;
4. the inputs are deleted (``prune_superseded`` finishes this after a kill).

A recorder writing into the same partition meanwhile only adds new loose snapshots, which the next run takes.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq

from common import catalog, layout
from common.errors import StoreCorrupt, StoreError
from schema import META_VERSION, OPTIONAL_TABLES, SCHEMA_VERSION, TABLES, arrow_schema

from .store import SnapshotWriter, _makedirs, _storage_error, prune_superseded, recover

#: rows read at a time, and rows per written row group (about): bound the compactor's memory whatever a
#: snapshot's size
BATCH_ROWS = 1 << 18
ROW_GROUP_ROWS = 1 << 19


@dataclass
class PartitionResult:
    host: str
    date: str
    segment: str | None  # the compacted segment written (None: skipped)
    snapshots: int
    files_before: int
    files_after: int
    bytes_before: int
    bytes_after: int
    skipped: str | None = None  # why nothing was done


@dataclass
class CompactResult:
    partitions: list[PartitionResult] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)  # uncommitted leftovers removed first
    pruned: list[str] = field(default_factory=list)  # superseded segments of a killed compaction removed


def _bytes(paths) -> int:
    return sum(os.path.getsize(p) for p in paths)


def _check_version(path: str, meta: dict | None = None) -> None:
    meta = (pq.read_schema(path).metadata if meta is None else meta) or {}
    v = meta.get(META_VERSION)
    if v is not None and int(v) > SCHEMA_VERSION:
        raise StoreCorrupt(f"{path}: written with schema version {int(v)}, this memsnap compacts up to "
                           f"{SCHEMA_VERSION}", hint="compact with the memsnap that recorded it", path=path)


class _RowGroups:
    """Rows bound for one compacted table, written as row groups of about :data:`ROW_GROUP_ROWS`: a day of small
    snapshots in one row group per snapshot made footers of thousands of row groups, parsed on every open (1,440
    snapshots: 4 s to open the store).  Rows stay in input order, so each snapshot's rows are contiguous and the
    row groups' snapshot_id statistics still let readers skip to one snapshot."""

    def __init__(self, out):
        self.out, self.pending, self.rows = out, [], 0

    def add(self, tbl: pa.Table) -> None:
        self.pending.append(tbl)
        self.rows += tbl.num_rows
        if self.rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.out.write(pa.concat_tables(self.pending))
        self.pending, self.rows = [], 0


def _copy(src: str, out: _RowGroups, schema: pa.Schema) -> int:
    """Append the rows of ``src`` to ``out`` in ``schema`` (missing columns as nulls)."""
    rows = 0
    pf = pq.ParquetFile(src)
    _check_version(src, pf.schema_arrow.metadata or {})
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        cols = [batch.column(f.name) if f.name in batch.schema.names else pa.nulls(batch.num_rows, f.type)
                for f in schema]
        tbl = pa.Table.from_arrays(cols, schema=schema)
        out.add(tbl)
        rows += tbl.num_rows
    return rows


def _partition_files(store: str, host: str, date: str) -> int:
    """Final-named files in the partition's directories now (a recorder may have added some)."""
    n = 0
    for t in TABLES:
        try:
            n += sum(1 for f in os.listdir(layout.partition_dir(store, t, host, date)) if f.endswith(layout.SUFFIX))
        except FileNotFoundError:
            pass
    return n


def compact_partition(store: str, host: str, date: str, min_segments: int = 2, now: datetime | None = None,
                      loose_only: bool = False) -> PartitionResult:
    """Merge the visible segments of (host, date) into one compacted segment, if there are ``min_segments``.
    ``loose_only``: merge only the loose snapshots, leaving earlier compacted segments of the day as they are
    (each snapshot is still in exactly one visible segment: the new one holds none of theirs)."""
    _makedirs(layout.inprogress_dir(store))
    lock = layout.compact_lock_path(store, host, date)
    try:
        lfd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, layout.FILE_MODE)
    except OSError as e:
        raise _storage_error(e, lock) from None
    try:
        try:
            fcntl.flock(lfd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return PartitionResult(host, date, None, 0, 0, 0, 0, 0, skipped="another compaction holds it")
        cat = catalog.scan(store, TABLES, host)  # under the lock: what we merge cannot change but by growing
        segs = [s for s in cat.segments() if s.host == host and s.date == date and not (loose_only and s.compacted)]
        files = {s.name: catalog.segment_files(store, host, date, s.name, TABLES) for s in segs}
        before = sum(len(f) for f in files.values())
        nsnap = sum(len(s.snapshot_ids) for s in segs)
        if len(segs) < min_segments:
            b = _bytes(p for f in files.values() for p in f)
            return PartitionResult(host, date, None, nsnap, before, before, b, b,
                                   skipped="already compacted" if segs else "no snapshots")
        bytes_before = _bytes(p for f in files.values() for p in f)
        cid = layout.new_compaction_id(now or datetime.now(timezone.utc))
        w = SnapshotWriter(store, host, cid, date)
        try:
            for table in TABLES:
                if table == layout.COMMIT_TABLE:
                    continue
                if table in OPTIONAL_TABLES and not any(
                        os.path.exists(layout.data_path(store, table, host, date, s.name)) for s in segs):
                    continue  # an opt-in source no merged snapshot recorded: no file, as in the inputs
                schema = arrow_schema(table)
                groups = _RowGroups(w.table(table))
                for s in segs:
                    src = layout.data_path(store, table, host, date, s.name)
                    if os.path.exists(src):  # a table with no file in an old store: no rows
                        _copy(src, groups, schema)
                groups.flush()
            rows = []
            sch = arrow_schema(layout.COMMIT_TABLE)
            for s in segs:
                src = layout.data_path(store, layout.COMMIT_TABLE, host, date, s.name)
                _check_version(src)
                t = pq.read_table(src)
                t = pa.Table.from_arrays([t.column(f.name) if f.name in t.schema.names else
                                          pa.nulls(t.num_rows, f.type) for f in sch], schema=sch)
                rows += sorted(t.to_pylist(), key=lambda r: r["snapshot_id"])
            w.commit(rows)
        except FileNotFoundError as e:  # an input deleted under us (retention by a recorder)
            w.abort()
            raise StoreError(f"{e.filename}: removed while compacting (by retention?); nothing was changed",
                             hint="run `memsnap compact` again", path=e.filename) from None
        except BaseException:
            w.abort()
            raise
        prune_superseded(store, host)
        after = catalog.segment_files(store, host, date, cid, TABLES)
        return PartitionResult(host, date, cid, len(rows), before, _partition_files(store, host, date),
                               bytes_before, _bytes(after))
    finally:
        os.close(lfd)


#: loose snapshots of the current day after which the recorder's --interval mode merges them (an hour at one a
#: minute): a reader then pays for at most this many loose files of today, plus one compacted file per hour
LOOSE_MAX = 60


def loose_count(store: str, host: str, date: str) -> int:
    """Loose snapshots in (host, date): committed ``snapshots`` files not written by a compaction (one listdir)."""
    try:
        names = os.listdir(layout.partition_dir(store, layout.COMMIT_TABLE, host, date))
    except FileNotFoundError:
        return 0
    return sum(1 for n in names if n.endswith(layout.SUFFIX) and not layout.is_compacted(n))


def compact_today(store: str, host: str, date: str, at_least: int = LOOSE_MAX) -> PartitionResult | None:
    """The recorder's hourly step: merge the day's loose snapshots once there are ``at_least``."""
    if loose_count(store, host, date) < at_least:
        return None
    return compact_partition(store, host, date, min_segments=at_least, loose_only=True)


def compact(store: str, host: str | None = None, dates: set[str] | None = None, include_today: bool = False,
            progress=None, now: datetime | None = None) -> CompactResult:
    """Compact ``store`` (of ``host``; of ``dates``): every finished day with more than one segment is merged
    whole.  Days not yet over (UTC: the date of ``now``, and later ones) get their loose snapshots merged once
    there are :data:`LOOSE_MAX` (a recorder is still adding to them), or are merged whole with
    ``include_today``.  ``progress(done, total)`` is called per partition."""
    res = CompactResult()
    try:
        res.recovered = recover(store)
        res.pruned = prune_superseded(store, host)
    except OSError as e:
        raise _storage_error(e, e.filename or store) from None
    today = layout.partition_date(now or datetime.now(timezone.utc))
    cat = catalog.scan(store, TABLES, host)
    parts = sorted({(s.host, s.date) for s in cat.segments() if dates is None or s.date in dates})
    for i, (h, d) in enumerate(parts):
        if include_today or d < today:
            res.partitions.append(compact_partition(store, h, d, now=now))
        else:
            part = compact_today(store, h, d)
            if part is not None:
                res.partitions.append(part)
        if progress:
            progress(i + 1, len(parts))
    return res
