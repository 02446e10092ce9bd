"""Pushing committed snapshots from a host's store to a central store: a directory or an object store
(``s3://bucket/prefix``), with pyarrow's filesystems only (the recorder's lean install has them).

What is copied is the store's *segments* (common/catalog.py), whole and byte for byte: a loose snapshot's six
files, or a compacted day's.  A compacted segment is not split into its snapshots: that would re-encode the
data, and ``--move`` could then not delete the source by the rule that deletes everything else (a segment
whole).  The destination applies the same visibility rule, so a segment pushed after some of its snapshots
were pushed loose (the host compacted in between) wins them, and the loose copies are superseded (and pruned).

The commit protocol, kept at the destination:

1. a segment's data files are copied first: on a directory each to a staging name, fsynced and renamed, under
   the segment's marker in the destination's ``.inprogress/`` (so ``recover`` removes what a killed push left,
   as it does for a killed recorder); on an object store each is one PUT of its final key (a PUT is atomic:
   the object is absent or whole);
2. the ``snapshots`` file is copied last: the commit.  A reader (``catalog.scan``) sees data files only of
   segments whose ``snapshots`` file exists, so the destination never shows a half segment; data files of a
   killed push's segment stay invisible until a rerun puts them again (same bytes) and commits;
3. with ``move``, the source segment is deleted (``store.delete_segment``: commit first, then data) only once
   the destination's commit returned: renamed and its directory fsynced, or PUT acknowledged.

A segment is skipped when a segment at the destination holds all its snapshots (:func:`_plan` has the cases),
so a rerun copies only what is missing; a kill at any moment, then a rerun, leaves each snapshot visible once.  One push per source store at a
time (a lock in the source's ``.inprogress/``); concurrent pushes of different hosts into one destination are
safe (each writes only its own host's partitions).
"""
from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass, field

from common import catalog, layout, objstore
from common.errors import MemsnapError, StoreError
from schema import TABLES

from .store import _fsync_dir, _makedirs, _storage_error, _take_marker, delete_segment, prune_superseded, recover

#: bytes per read/write when copying a file
CHUNK = 8 << 20
DATA_TABLES = [t for t in TABLES if t != layout.COMMIT_TABLE]


@dataclass
class Pushed:
    host: str
    date: str
    segment: str
    snapshots: int
    files: int
    bytes: int
    #: its name at the destination: its own, or a new compaction id (see :func:`_plan`)
    stored_as: str


@dataclass
class PushResult:
    source: str
    dest: str
    dry_run: bool = False
    pushed: list[Pushed] = field(default_factory=list)
    #: segments the destination has (or has superseded by a later compaction of its own)
    present: int = 0
    #: segments deleted from the source (``move``)
    moved: list[str] = field(default_factory=list)
    #: segments removed from the source while this push ran (by compaction or retention): their snapshots are
    #: in a newer segment, pushed by the next run
    vanished: list[str] = field(default_factory=list)
    #: segments not pushed: a compacted file at the destination holds some of their snapshots and others
    conflicts: list[str] = field(default_factory=list)
    #: segments another process holds (a push into the same destination directory, or a deletion at the source)
    busy: list[str] = field(default_factory=list)
    #: destination directory: files of killed pushes removed first
    recovered: list[str] = field(default_factory=list)
    #: superseded segments removed at the destination (loose copies of snapshots pushed again compacted)
    pruned: list[str] = field(default_factory=list)

    @property
    def snapshots(self) -> int:
        return sum(p.snapshots for p in self.pushed)

    @property
    def bytes(self) -> int:
        return sum(p.bytes for p in self.pushed)

    def as_dict(self) -> dict:
        return {"source": self.source, "dest": self.dest, "dry_run": self.dry_run, "snapshots": self.snapshots,
                "bytes": self.bytes, "pushed": [vars(p) for p in self.pushed], "already_there": self.present,
                "moved": self.moved, "conflicts": self.conflicts, "vanished": self.vanished, "busy": self.busy, "recovered": self.recovered,
                "pruned": self.pruned}


# ------------------------------------------------------------------------------------------- destinations
class _Destination:
    """Where segments go.  ``root`` is the store's path as the filesystem names it."""

    url: str
    root: str

    def check(self, create: bool = True) -> None:
        """Fail with one line if the destination cannot hold a store; ``create``: make it one if it is not."""

    def exists(self) -> bool:
        """Whether there is a store to list."""
        return True

    def recover(self) -> list[str]:
        return []

    def committed(self, host: str | None) -> list[catalog.Segment]:
        raise NotImplementedError

    def begin(self, seg: catalog.Segment) -> bool:
        """Start writing ``seg``; False if another process writes it."""
        return True

    def end(self, seg: catalog.Segment) -> None:
        pass

    def put(self, src, size: int, table: str, seg: catalog.Segment) -> None:
        """Copy the open file ``src`` to ``table``'s file of ``seg``, atomically (absent or whole)."""
        raise NotImplementedError

    def sync(self, seg: catalog.Segment, tables) -> None:
        """Make the files put so far durable (before the commit, and before the source is deleted)."""

    def remove(self, seg: catalog.Segment) -> bool:
        raise NotImplementedError


class _Dir(_Destination):
    def __init__(self, path: str):
        self.url = self.root = path
        self._markers: dict[str, int] = {}

    def exists(self) -> bool:
        return layout.is_store(self.root)

    def check(self, create: bool = True) -> None:
        p = self.root
        if os.path.exists(p) and not os.path.isdir(p):
            raise StoreError(f"{p}: not a directory", hint="give a directory (created if missing) or s3://bucket/prefix")
        if os.path.isdir(p) and not layout.is_store(p) and any(n != layout.INPROGRESS for n in os.listdir(p)):
            raise StoreError(f"{p}: not a memsnap store (no snapshots/ directory, and not empty)",
                             hint="push into a store, an empty directory, or a new path")
        if not create:
            return
        try:
            _makedirs(os.path.join(p, layout.COMMIT_TABLE))
            _makedirs(layout.inprogress_dir(p))
        except OSError as e:
            raise _storage_error(e, e.filename or p) from None

    def recover(self) -> list[str]:
        return recover(self.root)

    def committed(self, host):
        cat = catalog.scan(self.root, [layout.COMMIT_TABLE], host)
        return cat.segments() + cat.superseded

    def begin(self, seg) -> bool:
        marker = layout.marker_path(self.root, seg.name)
        try:
            self._markers[seg.name] = _take_marker(marker, json.dumps({"pid": os.getpid(), "push": seg.name}))
        except FileExistsError:
            return False
        except OSError as e:
            raise _storage_error(e, marker) from None
        return True

    def end(self, seg) -> None:
        fd = self._markers.pop(seg.name)
        try:
            os.unlink(layout.marker_path(self.root, seg.name))
        except FileNotFoundError:
            pass
        os.close(fd)

    def put(self, src, size, table, seg) -> None:
        final = layout.data_path(self.root, table, seg.host, seg.date, seg.name)
        tmp = layout.tmp_path(final)
        try:
            _makedirs(os.path.dirname(final))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, layout.FILE_MODE)
            try:
                while True:
                    buf = src.read(CHUNK)
                    if not buf:
                        break
                    view = memoryview(buf)
                    while view:
                        view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, final)
        except OSError as e:
            raise _storage_error(e, e.filename or final) from None

    def sync(self, seg, tables) -> None:
        for t in tables:
            d = layout.partition_dir(self.root, t, seg.host, seg.date)
            try:
                _fsync_dir(d)
            except OSError as e:
                raise _storage_error(e, d) from None

    def remove(self, seg) -> bool:
        return delete_segment(self.root, seg)


class _S3(_Destination):
    """An object store through ``pyarrow.fs.S3FileSystem``: credentials, region and endpoint from the standard
    AWS variables and files (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``,
    ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL``), the endpoint overridable by ``endpoint_url``."""

    def __init__(self, url: str, endpoint_url: str | None = None):
        import pyarrow.fs as pfs

        self.url = url
        self.root = objstore.key(objstore.normalize(url))
        self.bucket = self.root.split("/", 1)[0]
        self.fs = objstore.fs(endpoint_url)
        self._pfs = pfs

    def check(self, create: bool = True) -> None:
        try:
            info = self.fs.get_file_info(self.bucket)
        except Exception as e:
            raise objstore.error(e, f"s3://{self.bucket}") from None
        if info.type == self._pfs.FileType.NotFound:
            raise MemsnapError(f"s3://{self.bucket}: no such bucket", hint="create the bucket first, or check its name")

    def committed(self, host):
        pfs = self._pfs
        base = os.path.join(self.root, layout.COMMIT_TABLE) + ("/host=" + host if host else "")
        try:
            infos = self.fs.get_file_info(pfs.FileSelector(base, recursive=True, allow_not_found=True))
        except Exception as e:
            raise objstore.error(e, f"s3://{base}") from None
        segs = []
        for i in infos:
            if i.type != pfs.FileType.File or not i.base_name.endswith(layout.SUFFIX) or i.base_name.startswith("."):
                continue
            parts = i.path.split("/")
            if len(parts) < 3 or not parts[-3].startswith("host=") or not parts[-2].startswith("date="):
                continue
            h, d, name = layout.host_of(i.path), layout.date_of(i.path), layout.segment_of(i.path)
            ids = [name]
            if layout.is_compacted(name):
                import pyarrow.parquet as pq

                try:
                    ids = sorted(pq.read_table(i.path, filesystem=self.fs, columns=["snapshot_id"])
                                 .column(0).to_pylist())
                except Exception as e:
                    raise objstore.error(e, f"s3://{i.path}") from None
            segs.append(catalog.Segment(h, d, name, ids))
        return segs

    def put(self, src, size, table, seg) -> None:
        key = layout.data_path(self.root, table, seg.host, seg.date, seg.name)
        try:
            with self.fs.open_output_stream(key, metadata={}) as out:
                while True:
                    buf = src.read(CHUNK)
                    if not buf:
                        break
                    out.write(buf)
        except Exception as e:
            raise objstore.error(e, f"s3://{key}") from None

    def remove(self, seg) -> bool:
        # the commit first: the segment stops being committed at once, then its data
        for t in [layout.COMMIT_TABLE, *DATA_TABLES]:
            key = layout.data_path(self.root, t, seg.host, seg.date, seg.name)
            try:
                self.fs.delete_file(key)
            except FileNotFoundError:
                pass
            except Exception as e:
                raise objstore.error(e, f"s3://{key}") from None
        return True


def destination(dest: str, endpoint_url: str | None = None) -> _Destination:
    """The destination named by ``dest``: ``s3://bucket[/prefix]``, or a directory (``file://`` or a path)."""
    if dest.startswith("s3://"):
        return _S3(dest, endpoint_url)
    if "://" in dest:
        scheme = dest.split("://", 1)[0]
        if scheme != "file":
            raise MemsnapError(f"{dest!r}: {scheme}:// is not supported",
                               hint="push to a directory or to s3://bucket/prefix (any S3-compatible store, "
                                    "with --endpoint-url)")
        dest = dest[len("file://"):]
    if endpoint_url:
        raise MemsnapError("--endpoint-url applies to s3:// destinations only", hint="drop it, or push to s3://...")
    return _Dir(os.path.abspath(dest))


# ------------------------------------------------------------------------------------------- the push
def _source_lock(store: str) -> int | None:
    """The source's push lock (one push per store at a time); None if the store is read-only for us."""
    path = os.path.join(layout.inprogress_dir(store), "push.flock")
    try:
        _makedirs(layout.inprogress_dir(store))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, layout.FILE_MODE)
    except (PermissionError, OSError) as e:
        if e.errno in (13, 30):  # EACCES, EROFS: read-only pushes cannot collide with a --move
            return None
        raise _storage_error(e, path) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"{store}: another push from this store is running", hint="wait for it to finish",
                         path=store) from None
    return fd


def _open_segment(store: str, seg: catalog.Segment) -> dict[str, object] | None:
    """Every file of ``seg`` opened (table -> file), the commit included; None if the segment was removed
    meanwhile.  Open files stay readable whatever deletes them afterwards, so the copy is of one consistent
    segment."""
    out = {}
    try:
        for t in [*DATA_TABLES, layout.COMMIT_TABLE]:
            p = layout.data_path(store, t, seg.host, seg.date, seg.name)
            try:
                out[t] = open(p, "rb")
            except FileNotFoundError:
                if t == layout.COMMIT_TABLE:
                    raise
                # a table with no file in an old store: it has no rows, and the destination no file
    except FileNotFoundError:
        for f in out.values():
            f.close()
        return None
    except OSError as e:
        for f in out.values():
            f.close()
        raise _storage_error(e, e.filename or store) from None
    return out


def push(store: str, dest: str, host: str | None = None, move: bool = False, dry_run: bool = False,
         endpoint_url: str | None = None, progress=None) -> PushResult:
    """Copy every committed segment of ``store`` (of ``host``) that the destination ``dest`` lacks; see the
    module's docstring.  ``progress(done, total, description)`` is called per segment."""
    if not os.path.isdir(store) or not layout.is_store(store):
        raise StoreError(f"{store}: not a memsnap store (no snapshots/ directory)",
                         hint="pass the directory given to `memsnap record --store`", path=store)
    d = destination(dest, endpoint_url)
    if isinstance(d, _Dir) and os.path.realpath(d.root) == os.path.realpath(store):
        raise MemsnapError(f"{dest}: is the source store itself", hint="push to another directory or to s3://...")
    res = PushResult(store, d.url, dry_run=dry_run)
    lock = None if dry_run else _source_lock(store)
    try:
        if move and not dry_run:
            prune_superseded(store, host)  # else deleting a compaction could bring back what it superseded
        segs = catalog.scan(store, TABLES, host).segments()
        d.check(create=not dry_run)
        if not dry_run:
            res.recovered = d.recover()
        # only the source's hosts: a central store of many hosts is listed one host at a time
        there = [x for h in sorted({s.host for s in segs}) for x in d.committed(h)] if d.exists() else []
        winners, _ = catalog.decide(there)
        names = {(s.host, s.date, s.name) for s in there}
        touched: set[str] = set()
        for i, seg in enumerate(segs):
            if progress:
                progress(i, len(segs), f"{seg.host} {seg.date}")
            what, name = _plan(seg, winners, names)
            if what == "present":
                res.present += 1
            elif what == "conflict":
                res.conflicts.append(seg.name)
                continue
            elif dry_run:
                files = catalog.segment_files(store, seg.host, seg.date, seg.name, TABLES)
                res.pushed.append(Pushed(seg.host, seg.date, seg.name, len(seg.snapshot_ids), len(files),
                                         sum(os.path.getsize(p) for p in files), name))
                continue
            else:
                done = _push_segment(store, d, seg, name, res)
                if done is None:
                    continue
                res.pushed.append(done)
                touched.add(seg.host)
                stored = catalog.Segment(seg.host, seg.date, name, seg.snapshot_ids)
                names.add((seg.host, seg.date, name))
                for sid in seg.snapshot_ids:
                    winners[(seg.host, sid)] = stored
            if move and not dry_run:
                if delete_segment(store, seg):
                    res.moved.append(seg.name)
                else:
                    res.busy.append(seg.name)
        if progress:
            progress(len(segs), len(segs))
        if not dry_run and touched:
            for h in sorted(touched):
                _, superseded = catalog.decide(d.committed(h))
                for seg in superseded:
                    if d.remove(seg):
                        res.pruned.append(seg.name)
    finally:
        if lock is not None:
            os.close(lock)
    return res


def _plan(seg: catalog.Segment, winners: dict, names: set[tuple[str, str, str]]) -> tuple[str, str]:
    """What to do with ``seg`` given the destination's ``winners`` and segment ``names``: ``("present", _)``,
    ``("push", name)`` or ``("conflict", _)``.

    The visibility rule needs a segment to win all its snapshots or none (a reader shows every row of a visible
    file).  So ``seg`` goes only where that stays true of it and of every visible segment at the destination
    holding one of its snapshots: such a segment holding all of ``seg``'s snapshots makes ``seg`` present; if
    all of them hold only snapshots of ``seg``, ``seg`` is pushed and supersedes them: under its own name when it
    sorts after theirs (a day compacted at the source after its loose snapshots were pushed: the central store
    gets the compacted file, the loose copies are pruned), else under a new compaction id that does (the
    destination compacted part of the day itself, earlier).  One holding some of ``seg``'s snapshots and others
    is a conflict: nothing can be pushed without rewriting files (stores merged by hand, or compacted on both
    sides with different snapshots)."""
    mine = set(seg.snapshot_ids)
    over = {(w.date, w.name): w for sid in mine if (w := winners.get((seg.host, sid))) is not None}
    if any(mine <= set(w.snapshot_ids) for w in over.values()):
        return "present", seg.name
    if any(not set(w.snapshot_ids) <= mine for w in over.values()):
        return "conflict", seg.name
    if all(w.name < seg.name for w in over.values()):
        return "push", seg.name
    from datetime import datetime, timezone

    name = layout.new_compaction_id(datetime.now(timezone.utc))
    if any(w.name >= name for w in over.values()) or (seg.host, seg.date, name) in names:
        return "conflict", seg.name  # the destination's clock ran ahead of ours
    return "push", name


def _push_segment(store: str, d: _Destination, src: catalog.Segment, name: str, res: PushResult) -> Pushed | None:
    """Copy the files of ``src`` to the destination as segment ``name``, the commit last."""
    files = _open_segment(store, src)
    if files is None:
        res.vanished.append(src.name)
        return None
    seg = catalog.Segment(src.host, src.date, name, src.snapshot_ids)
    try:
        if not d.begin(seg):
            res.busy.append(seg.name)
            return None
        try:
            sizes = {t: os.fstat(f.fileno()).st_size for t, f in files.items()}
            data = [t for t in DATA_TABLES if t in files]
            for t in data:
                d.put(files[t], sizes[t], t, seg)
            d.sync(seg, data)  # every data file durable before the commit names them
            d.put(files[layout.COMMIT_TABLE], sizes[layout.COMMIT_TABLE], layout.COMMIT_TABLE, seg)
            d.sync(seg, [layout.COMMIT_TABLE])  # the commit durable before the source may be deleted
        finally:
            d.end(seg)
    finally:
        for f in files.values():
            f.close()
    return Pushed(src.host, src.date, src.name, len(src.snapshot_ids), len(files), sum(sizes.values()), name)
