"""smem's offline capture format ("smemcap"): import into a store, and write one from live processes.

The format (smem's smemcap.c): a tar, plain or gzip, holding ``meminfo``, ``version``, and for each
process a directory entry ``<pid>`` whose owner is the process's uid/gid, plus ``<pid>/smaps``,
``<pid>/cmdline`` and ``<pid>/stat``.  Debian's smem 1.5 cannot read tarballs under Python 3, but reads
the same files laid out as ``DIR/proc/<pid>/...`` plus ``DIR/proc/meminfo`` with ``smem -S DIR``; both
forms are accepted (a directory may also hold the files directly, without ``proc/``).

An imported capture becomes one snapshot with processes, mappings and meminfo, and no pagemap
(``pfn_available`` NULL, ``sources`` = ``smaps``).  Everything is parsed before anything is written, so
a bad or truncated archive leaves the store untouched.
"""
from __future__ import annotations

import hashlib
import io
import lzma
import os
import pwd
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pyarrow as pa

from schema import arrow_schema

from common.errors import MemsnapError
from common.layout import ID_TIME, partition_date
from .procfs import PF_KTHREAD, parse_cmdline, parse_meminfo, parse_smaps, parse_stat
from .rows import map_items, meminfo_columns, snapshot_row
from .store import SnapshotWriter, recover, safe_host


class BadCapture(MemsnapError):
    """The smemcap archive or directory is unreadable, truncated or not in smemcap format."""

    hint = "pass a tar/tar.gz written by smemcap, or a directory with proc/<pid>/smaps and proc/meminfo"


@dataclass
class _Proc:
    pid: int
    uid: int | None = None
    gid: int | None = None
    user: str | None = None
    files: dict = field(default_factory=dict)


@dataclass
class Capture:
    source: str
    mtime: float
    meminfo: bytes
    version: str | None
    procs: dict


def _norm(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    name = name.lstrip("/")
    return name[5:] if name.startswith("proc/") else name


PID_MAX_LIMIT = 1 << 22  # include/linux/threads.h: no pid is larger


def _pid(name: str, path: str) -> int | None:
    """The pid a member name stands for; None if it is not a number (not a process entry)."""
    if not (name.isascii() and name.isdigit()):
        return None
    pid = int(name)
    if not 0 < pid <= PID_MAX_LIMIT:
        raise BadCapture(f"{path}: entry {name!r} is not a valid pid (1..{PID_MAX_LIMIT})", path=path)
    return pid


def _load_tar(path: str) -> Capture:
    procs: dict[int, _Proc] = {}
    meminfo = version = None
    try:
        with tarfile.open(path, "r:*") as tar:
            for ti in tar:
                name = _norm(ti.name).rstrip("/")
                parts = name.split("/")
                if name == "meminfo" and ti.isfile():
                    meminfo = tar.extractfile(ti).read()
                elif name == "version" and ti.isfile():
                    version = tar.extractfile(ti).read().decode("utf-8", "replace")
                elif (pid := _pid(parts[0], path)) is not None:
                    p = procs.setdefault(pid, _Proc(pid))
                    if len(parts) == 1:
                        p.uid, p.gid, p.user = ti.uid, ti.gid, ti.uname or None
                    elif len(parts) == 2 and ti.isfile() and parts[1] in ("smaps", "cmdline", "stat"):
                        p.files[parts[1]] = tar.extractfile(ti).read()
            mtime = os.stat(path).st_mtime
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error, lzma.LZMAError) as e:
        # a damaged compressed stream raises its codec's own error (zlib, lzma), not TarError
        raise BadCapture(f"{path}: cannot read smemcap archive: {e}", path=path) from None
    return Capture(path, mtime, meminfo, version, procs)


def _load_dir(path: str) -> Capture:
    base = os.path.join(path, "proc") if os.path.isdir(os.path.join(path, "proc")) else path
    procs: dict[int, _Proc] = {}

    def read(p):
        with open(p, "rb") as f:
            return f.read()

    try:
        meminfo = read(os.path.join(base, "meminfo")) if os.path.exists(os.path.join(base, "meminfo")) else None
        vpath = os.path.join(base, "version")
        version = read(vpath).decode("utf-8", "replace") if os.path.exists(vpath) else None
        for name in os.listdir(base):
            d = os.path.join(base, name)
            pid = _pid(name, path)
            if pid is None or not os.path.isdir(d):
                continue
            st = os.stat(d)
            p = procs[pid] = _Proc(pid, st.st_uid, st.st_gid)
            for f in ("smaps", "cmdline", "stat"):
                if os.path.exists(os.path.join(d, f)):
                    p.files[f] = read(os.path.join(d, f))
        mtime = os.stat(base).st_mtime
    except OSError as e:
        raise BadCapture(f"{path}: cannot read smemcap directory: {e.strerror}", path=path) from None
    return Capture(path, mtime, meminfo, version, procs)


def load(path: str) -> Capture:
    if os.path.isdir(path):
        cap = _load_dir(path)
    elif os.path.isfile(path):
        cap = _load_tar(path)
    else:
        raise BadCapture(f"{path}: no such file or directory", path=path)
    if cap.meminfo is None:
        raise BadCapture(f"{path}: no meminfo in the capture (truncated, or not an smemcap capture)", path=path)
    if not any("smaps" in p.files for p in cap.procs.values()):
        raise BadCapture(f"{path}: no <pid>/smaps files in the capture", path=path)
    return cap


def _kernel_release(version: str | None) -> str | None:
    parts = (version or "").split()
    return parts[2] if len(parts) > 2 and parts[0] == "Linux" and parts[1] == "version" else None


def import_smemcap(path: str, store: str, host: str | None = None) -> dict:
    """Import one capture as a snapshot.  Returns a summary dict (snapshot_id, host, processes, mappings)."""
    cap = load(path)
    meminfo = parse_meminfo(cap.meminfo, f"{path}:meminfo")
    proc_rows, map_rows = _rows(cap, path)
    start = datetime.fromtimestamp(cap.mtime, timezone.utc)
    digest = hashlib.sha1(f"{os.path.abspath(path)}\0{cap.mtime}".encode()).hexdigest()[:16]
    host = safe_host(host or f"smemcap-{os.path.basename(os.path.normpath(path)).split('.')[0]}")
    sid = f"{start.strftime(ID_TIME)}Z-{digest[:8]}-smemcap"
    for r in proc_rows:
        r["snapshot_id"] = sid
    for m in map_rows:
        m["snapshot_id"] = sid
    tables = _tables(path, sid, meminfo, proc_rows, map_rows)
    recover(store)
    writer = SnapshotWriter(store, host, sid, partition_date(start))
    try:
        for name, table in tables.items():
            writer.table(name).write(table)
        writer.commit(_snapshot_row(path, cap, sid, digest, start, proc_rows))
    except BaseException:
        writer.abort()
        raise
    return {"snapshot_id": sid, "host": host, "processes": len(proc_rows), "mappings": len(map_rows)}


def _rows(cap: Capture, path: str) -> tuple[list[dict], list[dict]]:
    """The processes and mappings rows (no snapshot id yet) of the processes that have an smaps file."""
    local_users = os.path.isdir(path)  # a directory was captured here: uids name local users
    proc_rows, map_rows = [], []
    for pid in sorted(cap.procs):
        p = cap.procs[pid]
        if "smaps" not in p.files:
            continue
        row, maps = _process(p, f"{path}:", local_users)
        proc_rows.append(row)
        map_rows += maps
    return proc_rows, map_rows


def _process(p: _Proc, where: str, local_users: bool) -> tuple[dict, list[dict]]:
    pid = p.pid
    row = {"pid": pid, "status": "ok", "sources": "smaps", "uid": p.uid, "euid": p.uid, "gid": p.gid}
    row["user"] = p.user or (_user(p.uid) if local_users else (str(p.uid) if p.uid is not None else None))
    if "stat" in p.files:
        st = parse_stat(p.files["stat"], f"{where}{pid}/stat")
        row.update(comm=st["comm"], state=st["state"], ppid=st["ppid"], threads=st["threads"],
                   starttime_ticks=st["starttime_ticks"], kernel_thread=bool(st["flags"] & PF_KTHREAD))
    if "cmdline" in p.files:
        row["cmdline"] = parse_cmdline(p.files["cmdline"]) or None
    maps = parse_smaps(p.files["smaps"], f"{where}{pid}/smaps")
    if row.get("kernel_thread") is None:
        row["kernel_thread"] = not row.get("cmdline")  # smem's rule when there is no stat
    if row.get("state") == "Z":
        row["status"] = "zombie"
    for i, m in enumerate(maps):
        m.update(pid=pid, idx=i, source="smaps")
        map_items(m, "other_kb")
    row["mappings"] = len(maps)
    row["pages"] = 0
    return row, maps


def _tables(path: str, sid: str, meminfo: list, proc_rows: list[dict], map_rows: list[dict]) -> dict:
    """Arrow tables before any file: a value the schema cannot hold (a 30-digit kB figure) writes nothing."""
    try:
        return {
            "meminfo": pa.table(meminfo_columns(sid, meminfo), schema=arrow_schema("meminfo")),
            "processes": pa.Table.from_pylist(proc_rows, schema=arrow_schema("processes")),
            "mappings": pa.Table.from_pylist(map_rows, schema=arrow_schema("mappings")),
        }
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as e:
        raise BadCapture(f"{path}: a value does not fit memsnap's schema ({e})", path=path) from None


def _snapshot_row(path: str, cap: Capture, sid: str, digest: str, start: datetime, proc_rows: list[dict]) -> dict:
    """An imported capture has no pagemap, no recorder process, and smem's assumed page size and clock."""
    system = {"boot_id": f"smemcap:{digest}", "hostname": None, "kernel_release": _kernel_release(cap.version),
              "page_size_bytes": 4096, "clock_ticks_hz": 100}
    counts = {s: sum(1 for r in proc_rows if r["status"] == s) for s in ("ok", "zombie")}
    counts["kernel_thread"] = sum(1 for r in proc_rows if r.get("kernel_thread"))
    return snapshot_row(
        sid, system, start=start, end=start, sources=("smaps",), seen=len(proc_rows), counts=counts,
        options={"imported_from": os.path.abspath(path), "format": "smemcap"}, pfn_available=None,
        warnings=["imported from smemcap: page size and clock ticks assumed 4096 and 100; boot id unknown"])


def _user(uid):
    if uid is None:
        return None
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def write_smemcap(out: str, pids, procfs: str = "/proc", as_dir: bool = False) -> int:
    """Capture live processes in smemcap format (tar.gz, or ``out/proc/...`` with ``as_dir``).

    Returns the number of processes captured (those that exited meanwhile are skipped, like smemcap).
    """
    entries, owners = _read_live(procfs, pids)
    if as_dir:
        _write_dir(out, entries, owners)
    else:
        _write_tar(out, entries, owners)
    return len(owners)


def _read_live(procfs: str, pids) -> tuple[dict[str, bytes], dict[int, tuple[int, int]]]:
    """The capture's files by member name, and each captured process's (uid, gid)."""
    def rd(*parts):
        with open(os.path.join(procfs, *map(str, parts)), "rb") as f:
            return f.read()

    entries = {"meminfo": rd("meminfo"), "version": rd("version")}
    owners = {}
    for pid in pids:
        try:
            files = {n: rd(pid, n) for n in ("smaps", "cmdline", "stat")}
            st = os.stat(os.path.join(procfs, str(pid)))
        except OSError:
            continue
        owners[pid] = (st.st_uid, st.st_gid)
        for n, data in files.items():
            entries[f"{pid}/{n}"] = data
    return entries, owners


def _write_dir(out: str, entries: dict[str, bytes], owners: dict[int, tuple[int, int]]) -> None:
    base = os.path.join(out, "proc")
    for name, data in entries.items():
        p = os.path.join(base, name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    for pid, (uid, gid) in owners.items():
        os.chown(os.path.join(base, str(pid)), uid, gid)


def _write_tar(out: str, entries: dict[str, bytes], owners: dict[int, tuple[int, int]]) -> None:
    with tarfile.open(out, "w:gz") as tar:
        now = time.time()
        for name in ("meminfo", "version"):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(entries[name]), now
            tar.addfile(ti, io.BytesIO(entries[name]))
        for pid, (uid, gid) in owners.items():
            d = tarfile.TarInfo(str(pid))
            d.type, d.mode, d.uid, d.gid, d.mtime = tarfile.DIRTYPE, 0o555, uid, gid, now
            d.uname = _user(uid)  # names travel with the capture, as smem's tardata reads them
            tar.addfile(d)
            for n in ("smaps", "cmdline", "stat"):
                data = entries[f"{pid}/{n}"]
                ti = tarfile.TarInfo(f"{pid}/{n}")
                ti.size, ti.uid, ti.gid, ti.mtime = len(data), uid, gid, now
                tar.addfile(ti, io.BytesIO(data))
