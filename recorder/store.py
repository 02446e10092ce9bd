"""Writing snapshots into a store with the commit protocol of docs/design.md.

Layout: ``<store>/<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet``.

Protocol:
1. ``<store>/.inprogress/<snapshot_id>.lock`` is created and ``flock``-ed for the
   whole capture.  A live recorder holds it; a dead one (SIGKILL, crash, power
   loss) no longer does.
2. Each data table, then the ``snapshots`` row, is written to
   ``.<snapshot_id>.parquet.tmp`` (0600) in its partition directory and fsynced.
3. The data files are renamed to ``<snapshot_id>.parquet`` and their directories
   fsynced; then the ``snapshots`` file is renamed, last.  That rename is the commit.
   Only renames happen between the first data rename and the commit.
4. The marker is removed.

Readers only use snapshot ids with a ``snapshots`` row, so nothing half-written
is ever visible.  :func:`recover` (run at the start of every capture) removes the
files of snapshots whose marker is no longer locked and that never committed.
Several recorders may write one store at once: each only ever touches its own
snapshot id, and recovery skips markers that are still locked.
"""
from __future__ import annotations

import fcntl
import glob
import json
import os


import pyarrow as pa
import pyarrow.parquet as pq

from schema import DATA_TABLES, KB_MAP, TABLES, arrow_schema

from common import catalog, layout
from common.errors import StoreError
from common.layout import DIR_MODE, FILE_MODE, safe_host


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs(path: str) -> None:
    """Like ``os.makedirs(path, DIR_MODE, exist_ok=True)``, but every directory created gets DIR_MODE:
    os.makedirs applies ``mode`` to the leaf only (parents get 0777 & ~umask, i.e. world-readable)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(os.path.normpath(path))
    if parent and parent != path:
        _makedirs(parent)
    try:
        os.mkdir(path, DIR_MODE)  # the umask can only make it stricter
    except FileExistsError:
        if not os.path.isdir(path):
            raise


def _storage_error(e: OSError, path: str) -> StoreError:
    hints = {
        28: "free space on the store's filesystem, or record fewer sources (--sources) / processes",
        13: "choose a store directory you can write (--store), or run with the right user",
        30: "the store is on a read-only filesystem; choose another --store",
        27: "the file size limit (ulimit -f) was reached",
    }
    return StoreError(f"cannot write {path}: {e.strerror or e}", hint=hints.get(e.errno, "check the store directory"),
                      path=path)


def _take_marker(path: str, payload: str) -> int:
    """Create the marker ``path`` (O_EXCL), flock it and write ``payload``; return the locked fd.

    Between the create and the flock the marker is empty and unlocked, and :func:`recover` removes such
    markers (a recorder killed there leaves exactly that).  If recovery did so before our flock, the
    file we hold is unlinked (st_nlink 0): we create it again.  So a marker that exists and is locked is
    always ours, and a marker recovery can lock belongs to nobody, empty or not.
    Raises FileExistsError if another process holds ``path``."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                os.write(fd, payload.encode())
                return fd
        except BaseException:
            os.close(fd)
            try:
                os.unlink(path)
            except OSError:
                pass
            raise
        os.close(fd)  # removed by a recovery before we locked it: try again


class TableWriter:
    """Streams record batches of one table of one snapshot into a staged Parquet file."""

    def __init__(self, final_path: str, table: str):
        self.table = TABLES[table]
        self.schema = arrow_schema(table)
        self.final_path = final_path
        self.tmp_path = layout.tmp_path(final_path)
        self.rows = 0
        self.bytes = 0
        try:
            _makedirs(os.path.dirname(final_path))
            fd = os.open(self.tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except OSError as e:
            raise _storage_error(e, self.tmp_path) from None
        self._file = os.fdopen(fd, "wb")
        enc = dict(self.table.encodings)
        dict_cols = [c.name for c in self.table.columns
                     if c.name not in enc and c.type != KB_MAP]
        try:
            self._writer = pq.ParquetWriter(
                self._file, self.schema, compression="zstd",
                use_dictionary=dict_cols,
                column_encoding=enc or None,
                compression_level=self.table.compression_level,
                write_statistics=True,
                write_page_checksum=True,  # lets `memsnap --skip-bad` find damaged data pages (CRC)
            )
        except OSError as e:
            self._file.close()
            raise _storage_error(e, self.tmp_path) from None

    def write(self, data: pa.Table | pa.RecordBatch | dict) -> None:
        if isinstance(data, dict):
            data = pa.Table.from_pydict(data, schema=self.schema)
        elif data.schema != self.schema:
            data = data.cast(self.schema)
        if data.num_rows == 0:
            return
        try:
            self._writer.write(data, row_group_size=1 << 20)
        except OSError as e:
            raise _storage_error(e, self.tmp_path) from None
        self.rows += data.num_rows

    def close(self) -> int:
        """Finish, fsync and rename into place.  Returns bytes written."""
        self.finish()
        self.publish()
        return self.bytes

    def finish(self) -> int:
        """Write the footer and fsync the staged file (still under its temporary name)."""
        try:
            self._writer.close()
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self.bytes = os.path.getsize(self.tmp_path)
        except OSError as e:
            raise _storage_error(e, self.tmp_path) from None
        return self.bytes

    def publish(self, fsync_dir: bool = True) -> None:
        """Rename the finished file to its final name."""
        try:
            os.rename(self.tmp_path, self.final_path)
            if fsync_dir:
                _fsync_dir(os.path.dirname(self.final_path))
        except OSError as e:
            raise _storage_error(e, self.final_path) from None

    def discard(self) -> None:
        for closer in (self._writer.close, self._file.close):
            try:
                closer()
            except Exception:
                pass
        for p in (self.tmp_path, self.final_path):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


class SnapshotWriter:
    """All files of one snapshot.  Use :meth:`table` for data, then :meth:`commit` or :meth:`abort`."""

    def __init__(self, store: str, host: str, snapshot_id: str, date: str):
        self.store, self.host, self.snapshot_id, self.date = store, safe_host(host), snapshot_id, date
        self._writers: dict[str, TableWriter] = {}
        self.bytes_written = 0
        inprog = layout.inprogress_dir(store)
        self.marker = layout.marker_path(store, snapshot_id)
        try:
            _makedirs(inprog)
            fd = _take_marker(self.marker, json.dumps({"pid": os.getpid(), "host": self.host, "date": date}))
        except OSError as e:
            raise _storage_error(e, self.marker) from None
        self._marker_fd = fd

    def path(self, table: str) -> str:
        return layout.data_path(self.store, table, self.host, self.date, self.snapshot_id)

    def table(self, name: str) -> TableWriter:
        if name not in self._writers:
            self._writers[name] = TableWriter(self.path(name), name)
        return self._writers[name]

    def commit(self, snapshot_row: dict | list[dict]) -> int:
        """Publish every table and, last, the ``snapshots`` file (the commit).  A compaction commits many rows
        at once, each keeping its own ``bytes_written``."""
        for name in DATA_TABLES:  # every table gets a file, even an empty one: "no rows" is data too
            self.table(name)
        for w in self._writers.values():
            self.bytes_written += w.finish()
        rows = snapshot_row if isinstance(snapshot_row, list) else [dict(snapshot_row, bytes_written=self.bytes_written)]
        w = TableWriter(self.path("snapshots"), "snapshots")
        try:
            w.write({k: [r.get(k) for r in rows] for k in w.schema.names})
            self.bytes_written += w.finish()
            # Everything is written and fsynced under temporary names; only renames remain, so a kill
            # leaves final-named files of an uncommitted snapshot for a few renames at most.  The data
            # directories are fsynced before the commit rename so that, after a power loss, a visible
            # commit row implies visible data files.
            for d in self._writers.values():
                d.publish(fsync_dir=False)
            for d in sorted({os.path.dirname(d.final_path) for d in self._writers.values()}):
                try:
                    _fsync_dir(d)
                except OSError as e:
                    raise _storage_error(e, d) from None
            w.publish()
        except BaseException:
            w.discard()
            raise
        self._release()
        return self.bytes_written

    def abort(self) -> None:
        for w in self._writers.values():
            w.discard()
        self._release()

    def _release(self) -> None:
        try:
            os.unlink(self.marker)
        except FileNotFoundError:
            pass
        os.close(self._marker_fd)


def _snapshot_files(store: str, sid: str) -> list[str]:
    out = []
    for table in TABLES:
        out += glob.glob(layout.table_glob(store, table, snapshot_id=sid))
        out += glob.glob(layout.tmp_glob(store, table, sid))
    return out


def recover(store: str) -> list[str]:
    """Remove what crashed recorders left behind.  Returns the snapshot ids cleaned up."""
    try:
        return _recover(store)
    except OSError as e:  # read-only or foreign store: say so instead of a traceback
        raise _storage_error(e, e.filename or layout.inprogress_dir(store)) from None


def _recover(store: str) -> list[str]:
    inprog = layout.inprogress_dir(store)
    cleaned = []
    for marker in sorted(glob.glob(os.path.join(inprog, "*.lock"))):
        sid = os.path.basename(marker)[:-5]
        try:
            fd = os.open(marker, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live recorder owns it
            # Unlocked: its recorder is dead, or (empty marker) has created it but not locked it yet;
            # that one notices the unlink after its flock and creates a new marker (_take_marker).
            committed = glob.glob(layout.table_glob(store, "snapshots", snapshot_id=sid))
            for p in _snapshot_files(store, sid):
                if committed and not p.endswith(".tmp"):
                    continue  # crashed after the commit rename: the snapshot is complete
                os.unlink(p)
            os.unlink(marker)
            if not committed:
                cleaned.append(sid)
        finally:
            os.close(fd)
    return cleaned


def committed_snapshots(store: str, host: str | None = None) -> list[tuple[str, str]]:
    """(host, snapshot_id) of committed snapshots, oldest first (ids sort by capture time)."""
    return catalog.scan(store, TABLES, host).snapshot_ids()


def segment_bytes(store: str, seg: catalog.Segment) -> int:
    return sum(os.path.getsize(p) for p in catalog.segment_files(store, seg.host, seg.date, seg.name, TABLES))


def delete_segment(store: str, seg: catalog.Segment) -> bool:
    """Remove a committed segment (a loose snapshot, or a compacted file set) atomically: the commit file goes
    first (readers stop seeing it at once), then the data files.  A crash in between is finished by
    :func:`recover`, like a crashed capture.  Returns False if another process holds the segment."""
    _makedirs(layout.inprogress_dir(store))
    marker = layout.marker_path(store, seg.name)
    try:
        fd = _take_marker(marker, json.dumps({"pid": os.getpid(), "delete": seg.name}))
    except FileExistsError:
        return False  # another recorder is deleting (or writing) it
    try:
        p = layout.data_path(store, layout.COMMIT_TABLE, seg.host, seg.date, seg.name)
        if os.path.exists(p):
            os.unlink(p)
            _fsync_dir(os.path.dirname(p))
        for p in _snapshot_files(store, seg.name):
            if layout.host_of(p) == seg.host and layout.date_of(p) == seg.date:
                os.unlink(p)
        os.unlink(marker)
    finally:
        os.close(fd)
    return True


def prune_superseded(store: str, host: str | None = None) -> list[str]:
    """Delete the files of segments every snapshot of which is visible in a later compaction (left by a
    compaction killed after its commit).  Returns the segment names removed."""
    cat = catalog.scan(store, TABLES, host)
    return [seg.name for seg in cat.superseded if delete_segment(store, seg)]


def apply_retention(store: str, host: str, keep: int | None = None, max_bytes: int | None = None) -> list[str]:
    """Delete the oldest snapshots of ``host`` beyond ``keep``, then while the store exceeds ``max_bytes``.
    The newest snapshot is never deleted.  Returns the deleted snapshot ids.

    A compacted segment holds many snapshots and is deleted whole, only once all of them are beyond the limits
    (so with compaction, ``keep`` keeps at least N, up to one compacted file more)."""
    prune_superseded(store, host)  # else deleting a compaction could bring back what it superseded
    segs = catalog.scan(store, TABLES, host).segments()
    remaining = sum(len(s.snapshot_ids) for s in segs)
    doomed: list[catalog.Segment] = []
    if keep is not None:
        for seg in segs[:-1]:
            if remaining - len(seg.snapshot_ids) < max(keep, 1):
                break
            remaining -= len(seg.snapshot_ids)
            doomed.append(seg)
    if max_bytes is not None:
        total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs
                    if f.endswith(layout.SUFFIX))
        total -= sum(segment_bytes(store, seg) for seg in doomed)
        for seg in segs[:-1]:
            if total <= max_bytes:
                break
            if seg in doomed:
                continue
            total -= segment_bytes(store, seg)
            doomed.append(seg)
    removed: list[str] = []
    for seg in doomed:
        if delete_segment(store, seg):
            removed += seg.snapshot_ids
    return removed
