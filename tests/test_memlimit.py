"""The recorder under a memory limit (issue 18, part 4): in a real memory cgroup whose limit is below what the
capture needs, `memsnap record` ends with one clear error line before the kernel's OOM killer ends it, nothing
of the snapshot stays behind, and an unlimited run afterwards commits.  Plus recorder/memlimit.py on fake
sysfs trees, for the cgroup version this machine does not have.
"""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import IS_ROOT, ROOT, require_or_skip
from recorder.memlimit import LIMIT_FRACTION, MIN_HEADROOM, CgroupMemory, MemoryGuard, MemoryLimitReached, \
    cgroup_memory

MiB = 1 << 20


# ---------------------------------------------------------------------------------------------- fake trees

def _fake(tmp_path: Path, cgroup: str, mountinfo: str) -> str:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    return str(proc)


def test_v2_lowest_memory_max_of_the_ancestors(tmp_path):
    root = tmp_path / "cg2"
    leaf = root / "system.slice" / "memsnap-record.service"
    leaf.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu io memory pids\n")  # the root has no memory.max
    (root / "system.slice" / "memory.max").write_text("800000000\n")
    (leaf / "memory.max").write_text("max\n")
    (leaf / "memory.stat").write_text("anon 123456789\nfile 999999999\nkernel 1000\n")
    proc = _fake(tmp_path, "0::/system.slice/memsnap-record.service\n",
                 f"24 1 0:22 / / rw - ext4 /dev/vda rw\n"
                 f"30 24 0:26 / {root} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n")
    cg = cgroup_memory(proc)
    assert cg == CgroupMemory(2, str(leaf), 800000000)
    assert cg.usage() == 123456789  # anon, not the page cache (file)
    (leaf / "memory.max").write_text("500000000\n")
    assert cgroup_memory(proc).limit == 500000000
    (leaf / "memory.max").write_text("max\n")
    (root / "system.slice" / "memory.max").write_text("max\n")
    assert cgroup_memory(proc) is None  # no limit anywhere: nothing to guard


def test_v1_hierarchical_limit_and_escaped_mount_point(tmp_path):
    point = tmp_path / "sys fs" / "memory"  # a space: mountinfo writes it as \040
    leaf = point / "memsnap"
    leaf.mkdir(parents=True)
    (leaf / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # own: unlimited ...
    (leaf / "memory.stat").write_text("cache 5000\nrss 100\ntotal_cache 5000\ntotal_rss 4096000\n"
                                      "hierarchical_memory_limit 268435456\n"  # ... but the parent's applies
                                      "hierarchical_memsw_limit 9223372036854771712\n")
    escaped = str(point).replace(" ", "\\040")
    proc = _fake(tmp_path, "9:name=systemd:/\n4:memory:/memsnap\n0::/\n",
                 f"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
                 f"35 31 0:32 / {escaped} rw,relatime - cgroup cgroup rw,memory\n"
                 f"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n")
    cg = cgroup_memory(proc)
    assert cg == CgroupMemory(1, str(leaf), 268435456)
    assert cg.usage() == 4096000  # total_rss: the cgroup and its descendants
    # a memory.stat without the hierarchical lines (old kernels): the cgroup's own limit
    (leaf / "memory.stat").write_text("rss 2048\n")
    (leaf / "memory.limit_in_bytes").write_text("104857600\n")
    assert cgroup_memory(proc) == CgroupMemory(1, str(leaf), 104857600)
    assert cgroup_memory(proc).usage() == 2048


def test_no_cgroup_information(tmp_path):
    assert cgroup_memory(str(tmp_path)) is None  # no /proc/self/cgroup
    proc = _fake(tmp_path, "0::/\n", "24 1 0:22 / / rw - ext4 /dev/vda rw\n")  # no cgroup fs mounted
    assert cgroup_memory(proc) is None


def test_guard_threshold_and_error(tmp_path):
    leaf = tmp_path / "cg"
    leaf.mkdir()
    limit = 1 << 30
    cg = CgroupMemory(2, str(leaf), limit)
    guard = MemoryGuard(cg, check_every=0)
    threshold = min(int(limit * LIMIT_FRACTION), limit - MIN_HEADROOM)
    (leaf / "memory.stat").write_text(f"anon {threshold}\n")
    guard.check("here")  # at the threshold: fine
    (leaf / "memory.stat").write_text(f"anon {threshold + 1}\n")
    with pytest.raises(MemoryLimitReached) as e:
        guard.check("at process 3 of 9")
    assert "memory limit of the recorder's cgroup reached" in str(e.value) and "1024 MiB" in str(e.value)
    assert "at process 3 of 9" in str(e.value) and "MemoryMax=" in e.value.hint
    MemoryGuard(None).check("anywhere")  # no limit: never raises


# ---------------------------------------------------------------------------------------------- live

#: a parent that writes MIB MiB of private memory, then forks children that share it copy-on-write: many
#: pages to record, little RAM
_COW = r"""
import ctypes, mmap, os, sys
mib, kids = int(sys.argv[1]), int(sys.argv[2])
m = mmap.mmap(-1, mib << 20, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for _ in range(mib):
    m.write(b"\1" * (1 << 20))
pids = [os.getpid()]
for _ in range(kids):
    pid = os.fork()
    if pid == 0:
        ctypes.CDLL(None).prctl(1, 9)  # PR_SET_PDEATHSIG
        sys.stdin.read()
        os._exit(0)
    pids.append(pid)
print(" ".join(map(str, pids)), flush=True)
sys.stdin.read()
"""


def _memory_cgroup_parent() -> tuple[int, Path]:
    """(version, directory) of this process's memory cgroup, found independently of recorder/memlimit.py:
    v1 at /sys/fs/cgroup/memory, v2 at /sys/fs/cgroup (or its unified/) with the memory controller."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    for line in lines:
        _, ctrl, path = line.split(":", 2)
        if "memory" in ctrl.split(",") and Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
            return 1, Path("/sys/fs/cgroup/memory" + path)
    for line in lines:
        if line.startswith("0::"):
            for base in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified")):
                d = Path(str(base) + line[3:])
                if "memory" in (base / "cgroup.controllers").read_text().split() if (base / "cgroup.controllers").exists() else False:
                    return 2, d
    require_or_skip("no memory cgroup controller (v1 /sys/fs/cgroup/memory or v2 with memory) to limit the recorder")


class _Cgroup:
    """A memory cgroup below this process's own (so it nests within any limit the test runs under)."""

    def __init__(self):
        self.version, parent = _memory_cgroup_parent()
        self.path = parent / f"memsnap-test-{uuid.uuid4().hex[:8]}"
        try:
            self.path.mkdir()
        except OSError as e:
            require_or_skip(f"cannot create a memory cgroup under {parent}: {e}")

    def limit(self, nbytes: int | None) -> None:
        if self.version == 1:
            v = str(nbytes) if nbytes is not None else "-1"
            memsw = self.path / "memory.memsw.limit_in_bytes"
            # memsw >= memory at all times: lower memory first, raise memsw first
            order = [memsw, self.path / "memory.limit_in_bytes"] if nbytes is None else \
                [self.path / "memory.limit_in_bytes", memsw]
            for f in order:
                if f.exists():
                    f.write_text(v)
        else:
            (self.path / "memory.max").write_text(str(nbytes) if nbytes is not None else "max")
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")

    def peak(self) -> int:
        return int((self.path / ("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak")).read_text())

    def reset_peak(self) -> None:
        if self.version == 1:
            (self.path / "memory.max_usage_in_bytes").write_text("0")

    def oom_kills(self) -> int:
        f = self.path / ("memory.oom_control" if self.version == 1 else "memory.events")
        return int(dict(line.split() for line in f.read_text().splitlines()).get("oom_kill", 0))

    def run(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        """``argv`` in this cgroup from its first instruction: a shell joins it, then execs."""
        return subprocess.run(["sh", "-c", f'echo $$ > "{self.path}/cgroup.procs" && exec "$@"', "sh", *argv],
                              cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def remove(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # a process still exiting
                time.sleep(0.1)


def _committed(store) -> set[str]:
    return {os.path.basename(p)[:-len(".parquet")]
            for p in glob.glob(os.path.join(store, "snapshots", "host=*", "date=*", "*.parquet"))}


def _snapshot_ids(store) -> set[str]:
    """Every snapshot id any file of the store is named after (final or temporary names), and markers."""
    ids = set()
    for d, _, fs in os.walk(store):
        for f in fs:
            if f.endswith((".parquet", ".parquet.tmp", ".lock")):
                ids.add(f.lstrip(".").split(".")[0])
    return ids


@pytest.mark.needs_root
def test_record_fails_clean_under_its_memory_limit(tmp_path):
    store = tmp_path / "store"
    cow = subprocess.Popen([sys.executable, "-c", _COW, "256", "11"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    cg = _Cgroup()
    try:
        pids = cow.stdout.readline().split()
        assert len(pids) == 12
        record = [sys.executable, "-m", "cli", "record", "--store", str(store), "--quiet",
                  *[a for p in pids for a in ("--pid", p)]]
        # what the capture needs, by the kernel's account: an unlimited run in the cgroup
        first = cg.run(record)
        assert first.returncode == 0, first.stderr
        need = cg.peak()
        before = _committed(store)
        assert len(before) == 1 and _snapshot_ids(store) == before
        # the Python interpreter with the recorder imported, by the same account
        cg.reset_peak()
        idle = cg.run([sys.executable, "-c", "import cli.record, recorder.capture, pyarrow.parquet"])
        assert idle.returncode == 0, idle.stderr
        base = cg.peak()
        limit = (base + need) // 2 + MIN_HEADROOM // 2  # below the need, above what starting needs
        assert base + MIN_HEADROOM < limit < need, (base, need, limit)

        cg.limit(limit)
        kills = cg.oom_kills()
        cp = cg.run(record)
        assert cp.returncode == 1, (cp.returncode, cp.stderr)
        assert cg.oom_kills() == kills  # the recorder stopped itself: the kernel killed nobody
        lines = cp.stderr.strip().splitlines()
        assert len(lines) == 1 and "memory limit of the recorder's cgroup reached" in lines[0], cp.stderr
        assert f"of {limit / MiB:.0f} MiB used" in lines[0] and "snapshot discarded" in lines[0]
        assert cp.stdout == ""
        # nothing of the aborted snapshot: no file, temporary file or marker; the committed list unchanged
        assert _committed(store) == before and _snapshot_ids(store) == before
        listing = subprocess.run([sys.executable, "-m", "cli", "snapshots", str(store), "-f", "json"], cwd=ROOT,
                                 capture_output=True, text=True, timeout=120)
        assert listing.returncode == 0 and listing.stdout.count('"snapshot_id"') == 1, listing.stdout

        cg.limit(None)
        after = cg.run(record)
        assert after.returncode == 0, after.stderr
        new = _committed(store) - before
        assert len(new) == 1 and new == {after.stdout.strip()} and _snapshot_ids(store) == before | new
    finally:
        cow.stdin.close()
        cow.wait(timeout=30)
        cg.remove()
