"""The physmem source, the cgroups table and `memsnap memory` (issue 16, items 1-3).

Fake trees for what this machine does not have (cgroup v2, container runtimes), a real v1 memory cgroup for
the rest: the kernel's own memory.stat, smaps_rollup and meminfo are the oracles.
"""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from conftest import needs_root, require_or_skip
from recorder.physmem import (PhysmemReader, find_memory_hierarchy, parse_iomem_ram, read_cgroups)
from recorder.procfs import parse_memory_cgroup
from analyzer.services import service_of

KPF = {"dirty": 4, "lru": 5, "active": 6, "slab": 7, "buddy": 10, "mmap": 11, "anon": 12, "swapcache": 13,
       "swapbacked": 14, "huge": 17, "nopage": 20, "ksm": 21, "zero": 24, "pgtable": 26, "reserved": 32,
       "uptodate": 3}


def _f(*names):
    return sum(1 << KPF[n] for n in names)


# (flags, kpagecount, memcg, the class the kernel's meaning gives it) -- written from the kernel's semantics
# (Documentation/admin-guide/mm/pagemap.rst), not from recorder/physmem.py's rules
FRAMES = [
    (_f("nopage"), 0, 0, "hole"),
    (_f("reserved"), 0, 0, "reserved"),
    (_f("buddy"), 0, 0, "free"),
    (_f("slab"), 0, 7, "slab"),
    (_f("pgtable"), 0, 0, "pagetable"),
    (_f("huge", "anon", "mmap"), 1, 9, "hugetlb"),
    (_f("zero", "mmap"), 5, 0, "zero_page"),
    (_f("ksm", "anon", "mmap", "lru"), 2, 9, "ksm"),
    (_f("swapcache", "swapbacked", "anon", "lru"), 0, 9, "swapcache"),
    (_f("anon", "swapbacked", "lru", "mmap", "active"), 1, 9, "anon"),
    (_f("swapbacked", "lru", "uptodate"), 0, 7, "shmem"),
    (_f("lru", "uptodate", "mmap"), 3, 7, "file_mapped"),
    (_f("lru", "uptodate", "dirty"), 0, 7, "file_unmapped"),
    (_f("uptodate"), 0, 7, "file_unmapped"),   # page cache not yet on the LRU (in a per-cpu batch)
    (0, 0, 0, "other_kernel"),
    (0, 0, 9, "other_kernel"),                 # kernel memory charged to a cgroup (kmem)
]


def _fake_proc(tmp_path, frames, iomem=None):
    root = tmp_path / "proc"
    root.mkdir()
    for name, idx in (("kpageflags", 0), ("kpagecount", 1), ("kpagecgroup", 2)):
        (root / name).write_bytes(b"".join(struct.pack("<Q", f[idx]) for f in frames))
    if iomem is not None:
        (root / "iomem").write_text(iomem)
    return root


def test_every_frame_has_its_class_and_counts_add_up(tmp_path):
    frames = FRAMES * 3
    root = _fake_proc(tmp_path, frames)
    r = PhysmemReader(str(root), 4096, chunk=16)  # several chunks, one partial
    warnings = []
    cols = r.run(warnings)
    assert r.frames == len(frames) == sum(cols["frames"])
    got = {}
    for cls, memcg, mapped, dirty, n in zip(cols["class"], cols["memcg_ino"], cols["mapped"], cols["dirty"],
                                           cols["frames"]):
        got[(cls, memcg, mapped, dirty)] = got.get((cls, memcg, mapped, dirty), 0) + n
    want = {}
    for flags, count, memcg, cls in frames:
        k = (cls, memcg, bool(flags >> KPF["mmap"] & 1 or count), bool(flags >> KPF["dirty"] & 1))
        want[k] = want.get(k, 0) + 1
    assert got == want


def test_iomem_holes_and_chunks(tmp_path):
    # 40 frames, RAM at PFN 2..19 and 30..39: frames 0-1 and 20-29 are holes whatever their flags
    frames = [(_f("buddy"), 0, 0, None)] * 40
    iomem = ("00000000-00000fff : Reserved\n00002000-00013fff : System RAM\n  00002000-00002fff : Kernel code\n"
             "0001e000-00027fff : System RAM\n")
    assert parse_iomem_ram(iomem, 4096) == [(2, 20), (30, 40)]
    root = _fake_proc(tmp_path, frames, iomem)
    cols = PhysmemReader(str(root), 4096, chunk=8).run([])
    by = dict(zip(cols["class"], cols["frames"]))
    assert by == {"hole": 12, "free": 28}
    assert parse_iomem_ram("00000000-00000000 : System RAM\n", 4096) is None  # not root: zeros


def test_memory_cgroup_of_a_process():
    v1 = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n"
    assert parse_memory_cgroup(v1) == "/process_api/abc"
    assert parse_memory_cgroup("0::/system.slice/nginx.service\n") == "/system.slice/nginx.service"
    assert parse_memory_cgroup("5:cpu,memory:/a\n") == "/a"
    assert parse_memory_cgroup("") is None


def _v2_tree(tmp_path):
    root = tmp_path / "cgroup2"
    paths = {
        "": None,
        "system.slice": None,
        "system.slice/nginx.service": 3,
        "system.slice/docker-" + "a" * 64 + ".scope": 2,
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12345678_1234_1234_1234_123456789abc.slice"
        "/cri-containerd-" + "b" * 64 + ".scope": 1,
        "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod87654321_4321_4321_4321_cba987654321.slice"
        "/crio-" + "c" * 64 + ".scope": 1,
    }
    for i, (p, nprocs) in enumerate(paths.items()):
        d = root / p
        d.mkdir(parents=True, exist_ok=True)
        if p == "":
            (d / "cgroup.controllers").write_text("cpu io memory pids\n")
        (d / "cgroup.procs").write_text("".join(f"{100 + i * 10 + k}\n" for k in range(nprocs or 0)))
        (d / "memory.current").write_text(f"{(i + 1) * 1048576}\n")
        (d / "memory.max").write_text("max\n" if i % 2 else f"{(i + 1) * 4 << 20}\n")
        (d / "memory.peak").write_text(f"{(i + 2) * 1048576}\n")
        (d / "memory.stat").write_text(f"anon {i * 4096}\nfile {i * 8192}\nkernel 4096\nshmem 0\n")
        (d / "memory.events").write_text(f"low 0\nhigh 0\nmax {i}\noom 0\noom_kill 0\n")
    return root, paths


def test_v2_cgroups_read_from_a_fake_tree(tmp_path):
    root, paths = _v2_tree(tmp_path)
    rows = {r["path"]: r for r in read_cgroups(str(root))}
    assert {"/" + p if p else "/" for p in paths} <= set(rows)  # and the slices between, as directories
    for i, p in enumerate(paths):
        r = rows["/" + p if p else "/"]
        d = root / p
        assert r["version"] == 2 and r["ino"] == os.stat(d).st_ino
        assert r["memory_current_bytes"] == (i + 1) * 1048576
        assert r["memory_max_bytes"] == (None if i % 2 else (i + 1) * 4 << 20)
        assert dict(r["stat"])["file"] == i * 8192 and dict(r["events"])["max"] == i
        assert r["procs"] == (paths[p] or 0)


def test_v1_cgroup_figures_from_a_fake_tree(tmp_path):
    root = tmp_path / "memory"
    (root / "a").mkdir(parents=True)
    for d in (root, root / "a"):
        (d / "memory.usage_in_bytes").write_text("8192\n")
        (d / "memory.limit_in_bytes").write_text("9223372036854771712\n")
        (d / "memory.max_usage_in_bytes").write_text("16384\n")
        (d / "memory.stat").write_text("cache 4096\nrss 4096\ntotal_cache 4096\n")
        (d / "memory.failcnt").write_text("3\n")
        (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
        (d / "cgroup.procs").write_text("1\n2\n")
    rows = {r["path"]: r for r in read_cgroups(str(root))}
    assert rows["/a"]["version"] == 1 and rows["/a"]["memory_max_bytes"] is None  # PAGE_COUNTER_MAX: unlimited
    assert dict(rows["/a"]["events"]) == {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 1, "failcnt": 3}
    assert rows["/"]["memory_current_bytes"] == 8192 and rows["/a"]["procs"] == 2


def test_memory_hierarchy_found_from_mounts(tmp_path):
    proc = tmp_path / "proc" / "self"
    proc.mkdir(parents=True)
    (proc / "mounts").write_text("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
                                 "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n")
    assert find_memory_hierarchy(str(tmp_path / "proc")) == ("/sys/fs/cgroup/memory", 1)
    root, _ = _v2_tree(tmp_path)
    (proc / "mounts").write_text(f"cgroup2 {root} cgroup2 rw 0 0\n")
    assert find_memory_hierarchy(str(tmp_path / "proc")) == (str(root), 2)


SERVICE_FORMS = [
    ("/system.slice/nginx.service", "nginx.service", "systemd", None),
    ("/user.slice/user-1000.slice/session-3.scope", "session-3.scope", "systemd", None),
    ("/system.slice/docker-" + "a" * 64 + ".scope", "docker:" + "a" * 12, "docker", None),
    ("/docker/" + "d" * 64, "docker:" + "d" * 12, "docker", None),
    ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12345678_1234_1234_1234_123456789abc.slice/"
     "cri-containerd-" + "b" * 64 + ".scope", "containerd:" + "b" * 12, "containerd",
     "12345678-1234-1234-1234-123456789abc"),
    ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod87654321_4321_4321_4321_cba987654321.slice/"
     "crio-" + "c" * 64 + ".scope", "crio:" + "c" * 12, "crio", "87654321-4321-4321-4321-cba987654321"),
    ("/kubepods.slice/kubepods-pod87654321_4321_4321_4321_cba987654321.slice",
     "pod:87654321-4321-4321-4321-cba987654321", "pod", "87654321-4321-4321-4321-cba987654321"),
    ("/kubepods/burstable/pod87654321-4321-4321-4321-cba987654321/" + "e" * 64, "containerd:" + "e" * 12,
     "containerd", "87654321-4321-4321-4321-cba987654321"),
    ("/machine.slice/libpod-" + "f" * 64 + ".scope", "podman:" + "f" * 12, "podman", None),
    ("/process_api/e76952ccdd94bcba3e964d883337acdd", "/process_api/e76952ccdd94bcba3e964d883337acdd", "cgroup", None),
    ("/", "(root)", "root", None),
]


@pytest.mark.parametrize("path,name,kind,pod", SERVICE_FORMS)
def test_service_names(path, name, kind, pod):
    s = service_of(path)
    assert (s.name, s.kind, s.pod) == (name, kind, pod)


def test_service_names_of_the_paths_recorded_here():
    """Every memory cgroup path of this machine gets a service (a unit, container, pod, or the path itself)."""
    found = find_memory_hierarchy()
    if found is None:
        require_or_skip("no memory cgroup hierarchy mounted")
    for r in read_cgroups(found[0], found[1]):
        s = service_of(r["path"])
        assert s.name and (s.kind != "cgroup" or s.name == r["path"])


def _run_cli(*args) -> str:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True, check=True,
                          env=dict(os.environ)).stdout


def test_fake_v2_tree_names_each_service_in_memory_by_service(tmp_path):
    """A snapshot recorded with cgroup_root on the fake v2 tree: --by service names every runtime's form."""
    from recorder.capture import DEFAULT_SOURCES, Options, Recorder

    root, paths = _v2_tree(tmp_path)
    store = tmp_path / "store"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        Recorder(Options(store=str(store), pids=(sleeper.pid,), sources=DEFAULT_SOURCES + ("cgroups",),
                         cgroup_root=str(root), impact="full")).capture()
    finally:
        sleeper.kill()
        sleeper.wait()
    # physmem not recorded: memory says how to get it, in one line
    p = subprocess.run([sys.executable, "-m", "cli", "memory", str(store), "--by", "service"], capture_output=True,
                       text=True)
    assert p.returncode != 0 and "--sources +physmem" in p.stderr
    from analyzer import open_store
    from analyzer.memory import service_rows

    with open_store([str(store)]) as st:
        rows = st.execute("SELECT path, ino FROM cgroups").fetchall()
    fake = [dict(cgroup=path, charged_kb=4, current_kb=None) for path, _ in rows]
    names = {r["service"]: r["kind"] for r in service_rows(fake)}
    assert names["nginx.service"] == "systemd" and names["docker:" + "a" * 12] == "docker"
    assert names["containerd:" + "b" * 12] == "containerd" and names["crio:" + "c" * 12] == "crio"


# --------------------------------------------------------------------------- live, real v1 cgroup

V1_ROOT = "/sys/fs/cgroup/memory"
FILE_MIB = 64
ANON_MIB = 32


def _fadvise_dontneed(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


@pytest.fixture
def v1_cgroup(tmp_path):
    if not os.path.exists(os.path.join(V1_ROOT, "memory.usage_in_bytes")):
        require_or_skip("no cgroup v1 memory controller at /sys/fs/cgroup/memory")
    cg = os.path.join(V1_ROOT, f"memsnap-test-{os.getpid()}")
    os.mkdir(cg)
    procs = []
    try:
        yield cg, procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)


@needs_root
def test_live_v1_cgroup_page_cache_anon_and_memtotal(tmp_path, v1_cgroup):
    from recorder.capture import DEFAULT_SOURCES, Options, Recorder
    from analyzer import open_store

    cg, procs = v1_cgroup
    data = "/var/tmp/memsnap-physmem-test-%d" % os.getpid()  # a disk file system (not tmpfs: that is shmem)
    try:
        with open(data, "wb") as f:
            f.write(os.urandom(FILE_MIB << 20))
        _fadvise_dontneed(data)  # its pages leave the page cache (written back first): the cat brings them in
        enter = f"echo $$ > {cg}/cgroup.procs && exec "
        subprocess.run(["sh", "-c", enter + f"cat {data} > /dev/null"], check=True)  # exits: cache stays charged
        child = subprocess.Popen(["sh", "-c", enter + f"{sys.executable} -c \"import sys, time; "
                                  f"b = bytearray({ANON_MIB << 20}); b[::4096] = b'x' * len(b[::4096]); "
                                  "print('ready', flush=True); time.sleep(120)\""], stdout=subprocess.PIPE, text=True)
        procs.append(child)
        assert child.stdout.readline().strip() == "ready"
        rollup = open(f"/proc/{child.pid}/smaps_rollup").read()
        anon_smaps_kb = int(next(ln.split()[1] for ln in rollup.splitlines() if ln.startswith("Anonymous:")))
        store = tmp_path / "store"
        rec = Recorder(Options(store=str(store), sources=DEFAULT_SOURCES + ("physmem",)))
        rec.capture()
        after = _meminfo()  # meminfo is recorded at capture start; the frames are read over the next seconds
        stat = dict(ln.split() for ln in open(f"{cg}/memory.stat").read().splitlines())
        path = "/" + os.path.basename(cg)
        with open_store([str(store)]) as st:
            by_cg = {r["cgroup"]: r for r in st.memory(by="cgroup").rows}
            classes = st.memory(by="class").rows
            mi = dict(st.execute("SELECT key, value_kb FROM meminfo").fetchall())
            ino = st.execute("SELECT ino FROM cgroups WHERE path = ?", [path]).fetchone()[0]
        assert ino == os.stat(cg).st_ino
        row = by_cg[path]
        # >= 90 % of the file's pages: unmapped page cache charged to the cgroup
        assert row["file_unmapped_kb"] >= 0.9 * (FILE_MIB << 10), row
        # the cgroup's own accounting agrees (memory.stat cache, bytes; read just after the capture)
        assert abs(row["file_unmapped_kb"] + row["file_mapped_kb"] - int(stat["cache"]) // 1024) <= 0.05 * (FILE_MIB << 10)
        # the child's anonymous memory is charged there: at least what it touched, and what its smaps says
        assert row["anon_kb"] >= ANON_MIB << 10 and row["anon_kb"] >= anon_smaps_kb
        assert row["pids"] == 1 and row["pss_kb"] >= ANON_MIB << 10
        # the whole machine adds up to MemTotal exactly
        total = next(r for r in classes if r["class"] == "total")
        assert total["kb"] == mi["MemTotal"]
        assert sum(r["kb"] for r in classes if r["ord"] < 21) == total["kb"]
        kb = {r["class"]: r["kb"] for r in classes}
        # anon and file against meminfo, read at capture start (recorded) and again after it: the frames were read
        # in between, so they lie between the two, within SLACK_KB
        def file_kb(m):
            return m["Cached"] + m["Buffers"] - m["Shmem"]
        for name, frames_kb, lo_hi in (("anon", kb["anon"] + kb["swapcache"], (mi["AnonPages"], after["AnonPages"])),
                                       ("file", kb["file_mapped"] + kb["file_unmapped"], (file_kb(mi), file_kb(after)))):
            lo, hi = min(lo_hi), max(lo_hi)
            print(f"{name}: frames {frames_kb} kB, meminfo {lo}..{hi} kB: outside by "
                  f"{max(lo - frames_kb, frames_kb - hi, 0)} kB")
            assert lo - SLACK_KB <= frames_kb <= hi + SLACK_KB, (name, frames_kb, lo_hi)
    finally:
        if os.path.exists(data):
            os.unlink(data)


#: anon/file frames against meminfo: meminfo is read at capture start and after the capture, the frames in
#: between (~7-15 s of kpage* reads, 2 cores shared).  Against the start alone the spread measured here was 37
#: and 100 MiB for anon, 2 MiB for file (busy machine, four helpers running tests: BENCHMARKS.md, "Whole memory");
#: bracketed by both readings, what is left is what moved and came back during the read. A clean-clone run of
#: the suite (session 8, other test processes exiting beside it) read anon frames 43 MiB above the higher of the
#: two readings (343,408 kB against 292,980..300,248), over the 32 MiB first chosen: 96 MiB.
SLACK_KB = 96 << 10


def _meminfo() -> dict:
    return {ln.split(":")[0]: int(ln.split()[1]) for ln in open("/proc/meminfo") if ln.rstrip().endswith("kB")}


@needs_root
def test_optional_tables_survive_compaction(tmp_path):
    """physmem/cgroups files exist only for snapshots that recorded them; compaction keeps their rows and writes
    no file for a day where no snapshot did."""
    from recorder.capture import DEFAULT_SOURCES, Options, Recorder
    from recorder.compact import compact_partition
    from analyzer import open_store

    root, _ = _v2_tree(tmp_path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        store = str(tmp_path / "store")
        for extra in (("cgroups",), (), ("cgroups",)):
            r = Recorder(Options(store=store, host="h", pids=(sleeper.pid,), sources=DEFAULT_SOURCES + extra,
                                 cgroup_root=str(root))).capture()
    finally:
        sleeper.kill()
        sleeper.wait()
    files = lambda t: list((tmp_path / "store" / t).rglob("*.parquet"))  # noqa: E731
    assert len(files("cgroups")) == 2 and not files("physmem")
    with open_store([store]) as st:
        before = st.execute("SELECT snapshot_id, path, ino FROM cgroups ORDER BY ALL").fetchall()
    date = files("snapshots")[0].parent.name.split("=")[1]
    compact_partition(store, "h", date)
    assert len(files("cgroups")) == 1 and not files("physmem") and len(files("snapshots")) == 1
    with open_store([store]) as st:
        assert st.execute("SELECT snapshot_id, path, ino FROM cgroups ORDER BY ALL").fetchall() == before
