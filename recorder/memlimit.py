"""The memory limit of the recorder's own cgroup, so that a capture stops with a clear error before the kernel's
OOM killer ends the recorder (docs/deploy.md, "Resource controls").

A systemd unit's ``MemoryMax=`` (cgroup v2 ``memory.max``, v1 ``memory.limit_in_bytes``) is enforced by the
kernel with SIGKILL: the snapshot in progress is then discarded by the commit protocol (the next run's
:func:`recorder.store.recover`), but the operator only sees "killed".  :class:`MemoryGuard` reads the limit
once per capture and the cgroup's anonymous memory between processes; when that, plus what the capture is about
to need (the page rows it holds still have to be sorted, encoded and written: ``pending``), is past
:data:`LIMIT_FRACTION` of the limit it raises :class:`MemoryLimitReached`, the snapshot is aborted and its files removed, and the CLI prints one
line that names the limit.

Both hierarchies: v1 (a ``cgroup`` mount with the ``memory`` controller; ``memory.stat`` has the effective
``hierarchical_memory_limit`` and ``total_rss``) and v2 (a ``cgroup2`` mount; the lowest ``memory.max`` of the
cgroup and its ancestors; ``anon`` of its ``memory.stat``).  Anonymous memory, not ``memory.usage_in_bytes`` /
``memory.current``: those include the page cache of the files the recorder writes, which the kernel reclaims
before it kills anyone.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass

from common.errors import MemsnapError

#: stop once the cgroup's anonymous memory exceeds this fraction of its limit ...
LIMIT_FRACTION = 0.9
#: ... or the limit minus this, whichever leaves more room: what one more process may need before the next check
MIN_HEADROOM = 16 << 20
#: values at or above this mean "no limit" (v1 reports PAGE_COUNTER_MAX pages as 9223372036854771712)
UNLIMITED = 1 << 62
#: seconds between two reads of memory.stat (a few hundred microseconds each) during a capture
CHECK_EVERY = 0.02


class MemoryLimitReached(MemsnapError):
    """The recorder's cgroup is about to run out of memory: the snapshot in progress was discarded."""


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 ...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def _mounts(mountinfo: str) -> list[tuple[str, str, str, set[str]]]:
    """(root, mount point, fstype, super options) of the cgroup and cgroup2 mounts."""
    out = []
    for line in mountinfo.splitlines():
        pre, sep, post = line.partition(" - ")
        f, g = pre.split(), post.split()
        if not sep or len(f) < 5 or len(g) < 3 or g[0] not in ("cgroup", "cgroup2"):
            continue
        out.append((_unescape(f[3]), _unescape(f[4]), g[0], set(g[2].split(","))))
    return out


def _under(mount_root: str, mount_point: str, cg_path: str) -> str | None:
    """The directory of cgroup ``cg_path`` in a mount of the hierarchy with root ``mount_root``."""
    rel = os.path.relpath(cg_path, mount_root)
    if rel.startswith(".."):
        return None  # outside what this mount shows (another cgroup namespace)
    return os.path.normpath(os.path.join(mount_point, rel))


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _stat(text: str | None) -> dict[str, int]:
    out = {}
    for line in (text or "").splitlines():
        k, _, v = line.partition(" ")
        if v.strip().isdigit():
            out[k] = int(v)
    return out


@dataclass
class CgroupMemory:
    """The memory cgroup a process is in: its directory, hierarchy version and effective limit (bytes)."""
    version: int
    path: str
    limit: int

    def usage(self) -> int | None:
        """Anonymous memory of the cgroup and its descendants, in bytes (None if unreadable)."""
        st = _stat(_read(os.path.join(self.path, "memory.stat")))
        if self.version == 1:
            return st.get("total_rss", st.get("rss"))
        return st.get("anon")


def _v1(path: str) -> int | None:
    st = _stat(_read(os.path.join(path, "memory.stat")))
    limits = [st[k] for k in ("hierarchical_memory_limit", "hierarchical_memsw_limit") if k in st]
    if not limits:
        own = _read(os.path.join(path, "memory.limit_in_bytes"))
        limits = [int(own)] if own and own.strip().isdigit() else []
    limit = min(limits, default=None)
    return limit if limit is not None and limit < UNLIMITED else None


def _v2(path: str, mount_point: str) -> int | None:
    """The lowest memory.max of ``path`` and its ancestors up to the mount point (the root has none)."""
    limit = None
    d = path
    while True:
        v = _read(os.path.join(d, "memory.max"))
        if v is not None and v.strip().isdigit():
            limit = int(v) if limit is None else min(limit, int(v))
        if os.path.normpath(d) == os.path.normpath(mount_point) or d in ("/", ""):
            break
        d = os.path.dirname(d)
    return limit if limit is not None and limit < UNLIMITED else None


def cgroup_memory(proc: str = "/proc", pid: str = "self") -> CgroupMemory | None:
    """The memory cgroup of ``pid`` with its limit, from ``<proc>/<pid>/cgroup`` and ``mountinfo``; None if
    it has no memory limit or none can be found (no cgroup fs mounted, another namespace, unreadable)."""
    cg, mi = _read(os.path.join(proc, pid, "cgroup")), _read(os.path.join(proc, pid, "mountinfo"))
    if cg is None or mi is None:
        return None
    v1_path = v2_path = None
    for line in cg.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        elif "memory" in parts[1].split(","):
            v1_path = parts[2]
    mounts = _mounts(mi)
    if v1_path is not None:  # the memory controller is on a v1 hierarchy: v2 has no memory files then
        for root, point, fstype, opts in mounts:
            if fstype == "cgroup" and "memory" in opts:
                d = _under(root, point, v1_path)
                limit = _v1(d) if d else None
                return CgroupMemory(1, d, limit) if limit is not None else None
        return None
    if v2_path is not None:
        for root, point, fstype, _ in mounts:
            if fstype == "cgroup2":
                d = _under(root, point, v2_path)
                limit = _v2(d, point) if d else None
                return CgroupMemory(2, d, limit) if limit is not None else None
    return None


class MemoryGuard:
    """Raises :class:`MemoryLimitReached` from :meth:`check` once the recorder's cgroup is near its limit.
    Without a limit every check is free."""

    def __init__(self, cg: CgroupMemory | None, check_every: float = CHECK_EVERY):
        self.cg = cg
        self.threshold = None if cg is None else min(int(cg.limit * LIMIT_FRACTION), cg.limit - MIN_HEADROOM)
        self.check_every = check_every
        self._next = 0.0

    @classmethod
    def for_self(cls, proc: str = "/proc") -> "MemoryGuard":
        return cls(cgroup_memory(proc))

    def check(self, where: str, pending: int = 0, force: bool = False) -> None:
        """Raise :class:`MemoryLimitReached` if the cgroup's anonymous memory plus ``pending`` (bytes the
        capture is about to need, e.g. to sort and write the page rows it holds) is past the threshold.
        At most every ``check_every`` seconds unless ``force``."""
        if self.threshold is None:
            return
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.check_every
        used = self.cg.usage()
        if used is not None and used + pending > self.threshold:
            mib = lambda b: f"{b / (1 << 20):.0f} MiB"  # noqa: E731
            more = f", {mib(pending)} more needed" if pending else ""
            raise MemoryLimitReached(
                f"memory limit of the recorder's cgroup reached ({mib(used)} of {mib(self.cg.limit)} used{more}, "
                f"{where}): snapshot discarded, nothing committed",
                hint="raise the limit (MemoryMax= in the unit, docs/deploy.md), or record less per snapshot "
                     "(--smaps-max-rss-mb, --sources, --match)", path=self.cg.path)
