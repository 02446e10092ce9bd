"""The store layout, written once: every path, glob and id format of a store comes from here.

A store is a directory tree, one directory per table, Hive-partitioned so that any Parquet engine reads it::

    <store>/<table>/host=<host>/date=<YYYY-MM-DD>/<snapshot_id>.parquet

plus ``<store>/.inprogress/<snapshot_id>.lock``, the marker a writer holds while a snapshot is not committed
(docs/design.md, "Committing a snapshot").  A file is first written as ``.<snapshot_id>.parquet.tmp`` in its
partition directory and renamed into place.

A file's name (without ``.parquet``) is its *segment*: a snapshot id for a file written by the recorder (a
*loose* file, one snapshot), or a compaction id ``c<UTC time>Z-<pid>`` for a file written by ``memsnap
compact`` (many snapshots of one host and day).  Compaction ids sort after every snapshot id and by time
among themselves; which file of a snapshot is visible is decided by :mod:`common.catalog`.
"""
from __future__ import annotations

import os
import re
from datetime import datetime

from .errors import StoreError

FILE_MODE = 0o600
DIR_MODE = 0o750
INPROGRESS = ".inprogress"
SUFFIX = ".parquet"
TMP_SUFFIX = ".parquet.tmp"
#: the directory a store must have to be one (its commit rows)
COMMIT_TABLE = "snapshots"
_HOST_BAD = re.compile(r"[^A-Za-z0-9._-]")


def safe_host(host: str) -> str:
    """Host names become a path component (and a Hive partition value)."""
    h = _HOST_BAD.sub("_", host.strip())
    if not h or h in (".", ".."):
        raise StoreError(f"invalid host name {host!r}", hint="pass --host with letters, digits, '.', '_' or '-'")
    return h


#: the UTC time that starts every snapshot id (its capture start: ids sort by time) and compaction id
ID_TIME = "%Y%m%dT%H%M%S%f"
ID_TIME_LEN = 21  # len("20261130T015500123456")


def new_snapshot_id(start: datetime, host: str, boot_id: str, pid: int | None = None) -> str:
    """UTC capture start (so ids sort by time), a hash of host and boot, and the writer's pid: unique across
    hosts and across recorders running at the same time."""
    import hashlib  # here: the analyzer, which only reads ids, does not load OpenSSL (3-5 ms)

    h = hashlib.sha1(f"{host}\0{boot_id}".encode()).hexdigest()[:8]
    return f"{start.strftime(ID_TIME)}Z-{h}-{os.getpid() if pid is None else pid}"


#: first character of a compaction id: sorts after the digits that start every snapshot id
COMPACT_PREFIX = "c"


def new_compaction_id(now: datetime) -> str:
    """A compacted segment's name: UTC time (so a newer compaction sorts later) and the compactor's pid."""
    return f"{COMPACT_PREFIX}{now.strftime(ID_TIME)}Z-{os.getpid()}"


def is_compacted(segment: str) -> bool:
    return segment.startswith(COMPACT_PREFIX)


def partition_date(start: datetime) -> str:
    return start.strftime("%Y-%m-%d")


def partition_dir(store: str, table: str, host: str, date: str) -> str:
    return os.path.join(store, table, f"host={host}", f"date={date}")


def data_path(store: str, table: str, host: str, date: str, snapshot_id: str) -> str:
    return os.path.join(partition_dir(store, table, host, date), snapshot_id + SUFFIX)


def tmp_path(final_path: str) -> str:
    d, name = os.path.split(final_path)
    return os.path.join(d, "." + name[:-len(SUFFIX)] + TMP_SUFFIX)


def table_glob(store: str, table: str, host: str | None = None, snapshot_id: str | None = None) -> str:
    """Glob of a table's committed-name files, optionally of one host and/or one snapshot."""
    return os.path.join(store, table, f"host={host}" if host else "host=*", "date=*",
                        (snapshot_id or "*") + SUFFIX)


def tmp_glob(store: str, table: str, snapshot_id: str) -> str:
    return os.path.join(store, table, "host=*", "date=*", "." + snapshot_id + TMP_SUFFIX)


def segment_of(path: str) -> str:
    """A data file's segment (its name without ``.parquet``): the snapshot id of a loose file, the compaction
    id of a compacted one."""
    return os.path.basename(path)[:-len(SUFFIX)]


snapshot_id_of = segment_of  # of a loose file, the segment is the snapshot id


def date_of(path: str) -> str:
    """The date partition of a data file."""
    return os.path.basename(os.path.dirname(path))[len("date="):]


def host_of(path: str) -> str:
    """The host partition of a data file."""
    return os.path.basename(os.path.dirname(os.path.dirname(path)))[len("host="):]


def table_of(store: str, path: str) -> str:
    """The table of a data file of ``store``."""
    return os.path.relpath(path, store).split(os.sep, 1)[0]


def inprogress_dir(store: str) -> str:
    return os.path.join(store, INPROGRESS)


def marker_path(store: str, snapshot_id: str) -> str:
    return os.path.join(store, INPROGRESS, snapshot_id + ".lock")


def compact_lock_path(store: str, host: str, date: str) -> str:
    """The lock one compactor of a (host, date) partition holds."""
    return os.path.join(store, INPROGRESS, f"compact-{host}-{date}.flock")


def is_store(path: str) -> bool:
    return os.path.isdir(os.path.join(path, COMMIT_TABLE))
