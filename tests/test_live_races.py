"""Live: processes that exit mid-capture, a recorder without CAP_SYS_ADMIN, zombies, kernel threads,
processes the kernel refuses, and processes with hostile names.  The kernel is the oracle."""
from __future__ import annotations

import ctypes
import mmap
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from conftest import memsnap, needs_root, read_table, require_or_skip

pytestmark = [pytest.mark.live, needs_root]

PRESENT, FILE_SHARED, EXCLUSIVE = 63, 61, 56
PFN_MASK = np.uint64((1 << 55) - 1)
STATUSES = ("ok", "partial", "vanished", "denied", "zombie", "kernel_thread")

CHURN = textwrap.dedent("""
    import os, random, signal, sys, time
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    rnd = random.Random()
    while True:
        if os.fork() == 0:
            if rnd.random() < 0.5:
                b = bytearray(rnd.randrange(1, 8) << 20)   # some allocate (and touch) memory
                for i in range(0, len(b), 4096):
                    b[i] = 1
            time.sleep(rnd.uniform(0, 0.02))
            os._exit(0)
        time.sleep(0.002)
""")


def _snapshot(store, sid):
    snaps = read_table(store, "snapshots")
    return snaps.filter(pc.equal(snaps["snapshot_id"], sid)).to_pylist()[0]


def _rows(store, table, sid):
    t = read_table(store, table)
    return t.filter(pc.equal(t["snapshot_id"], sid))


def check_counts(store, sid) -> dict:
    snap = _snapshot(store, sid)
    procs = _rows(store, "processes", sid).to_pylist()
    by_status = {s: sum(1 for r in procs if r["status"] == s) for s in STATUSES}
    assert sum(by_status.values()) == len(procs), {r["status"] for r in procs}
    assert snap["processes_seen"] == len(procs) == (
        snap["processes_recorded"] + snap["processes_partial"] + snap["processes_vanished"]
        + snap["processes_denied"] + snap["processes_zombie"] + snap["kernel_threads"])
    assert (snap["processes_recorded"], snap["processes_partial"], snap["processes_vanished"],
            snap["processes_denied"], snap["processes_zombie"], snap["kernel_threads"]) == \
        tuple(by_status[s] for s in STATUSES)
    assert len({r["pid"] for r in procs}) == len(procs)
    return {"snap": snap, "procs": procs, "by_status": by_status}


def test_churn_during_capture(tmp_path):
    churn = subprocess.Popen([sys.executable, "-c", CHURN])
    try:
        time.sleep(0.3)
        vanished_total = 0
        for attempt in range(6):
            sid = memsnap("record", "--store", str(tmp_path), "--quiet").stdout.split()[-1]
            c = check_counts(tmp_path, sid)
            vanished = [r for r in c["procs"] if r["status"] == "vanished"]
            vanished_total += len(vanished)
            pids_with_maps = set(_rows(tmp_path, "mappings", sid)["pid"].to_pylist())
            pids_with_pages = set(_rows(tmp_path, "pages", sid)["pid"].to_pylist())
            for r in vanished:
                assert r["error"] and f"/{r['pid']}/" in r["error"], r
                assert r["mappings"] == 0 and r["pages"] == 0 and r["sources"] is None
                assert r["pid"] not in pids_with_maps and r["pid"] not in pids_with_pages
            for r in c["procs"]:  # rows agree with the data tables
                if r["status"] == "ok":
                    assert r["error"] is None
                assert (r["pid"] in pids_with_maps) == (r["mappings"] > 0), r
            assert c["snap"]["pages_rows"] == _rows(tmp_path, "pages", sid).num_rows
            if vanished_total >= 1 and attempt >= 1:
                break
        assert vanished_total >= 1, "no process exited during any capture; the race was not exercised"
    finally:
        churn.kill()
        churn.wait()


def _no_sys_admin_prefix():
    # setpriv is util-linux, an Essential package on Debian: missing means a broken setup, not a skip
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to drop CAP_SYS_ADMIN"
    return ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-sys_admin"]


def test_without_cap_sys_admin(tmp_path, workload):
    w = workload("--workers", "2")
    w.cow(0, 2)  # worker 0 writes 2 MiB of a COW-shared private region: its copies become exclusive
    prefix = _no_sys_admin_prefix()
    args = [*prefix, sys.executable, "-m", "cli", "record", "--store", str(tmp_path), "--quiet"]
    for p in w.pids:
        args += ["--pid", str(p)]
    cp = subprocess.run(args, capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
                        timeout=120)
    assert cp.returncode == 0, cp.stderr
    sid = cp.stdout.split()[-1]
    pfn_lines = [ln for ln in cp.stderr.splitlines() if "PFN" in ln]
    assert len(pfn_lines) == 1 and pfn_lines[0].startswith("warning:"), cp.stderr
    assert "Traceback" not in cp.stderr

    snap = _snapshot(tmp_path, sid)
    assert snap["pfn_available"] is False and snap["kpage_available"] is False
    assert snap["processes_recorded"] == len(w.pids)
    assert _rows(tmp_path, "frames", sid).num_rows == 0 and snap["frames_rows"] == 0
    pages = _rows(tmp_path, "pages", sid)
    assert pages.num_rows > 0
    entry = pages["entry"].to_numpy()
    present = (entry >> np.uint64(PRESENT)) & np.uint64(1) == 1
    assert present.any()
    assert not (entry[present] & PFN_MASK).any(), "a PFN leaked without CAP_SYS_ADMIN"

    maps = _rows(tmp_path, "mappings", sid).to_pylist()
    vpn_all, pid_all = pages["vpn"].to_numpy(), pages["pid"].to_numpy()
    shared_file_pages = exclusive_pages = swapped_kb = 0
    for m in maps:
        if {"pf", "io"} & set(m["vm_flags"].split()) or m["path"] == "[vsyscall]":
            continue
        sel = ((pid_all == m["pid"]) & (vpn_all >= m["start_addr"] // 4096) & (vpn_all < m["end_addr"] // 4096)
               & present)
        e = entry[sel]
        bit = lambda b: int(((e >> np.uint64(b)) & np.uint64(1)).sum())  # noqa: E731
        # the kernel's own smaps says which pages are private (mapcount 1): bit 56 must agree
        assert 4 * bit(EXCLUSIVE) == m["private_clean_kb"] + m["private_dirty_kb"], (m["pid"], m["path"], m["perms"])
        if m["path"] == w.info["file"] and m["perms"].endswith("s"):
            # the MAP_SHARED file mapping (fork does not copy its PTEs: the workers fault them lazily)
            assert bit(FILE_SHARED) == e.size and 4 * e.size == m["rss_kb"]
            if m["pid"] == w.parent:
                shared_file_pages += e.size
        # the region the workload's `cow` command writes (anonymous, or a private memfd `memsnap-cow`)
        if m["pid"] == w.workers[0] and m["perms"] == "rw-p" and (m["path"] is None or "memsnap-cow" in m["path"]):
            exclusive_pages += bit(EXCLUSIVE)
            swapped_kb += m["swap_kb"]  # other tests on this machine may push pages to swap
    assert shared_file_pages > 0
    assert 4 * exclusive_pages + swapped_kb >= 2048  # the 2 MiB worker 0 wrote


def _a_kernel_thread():
    """The first pid whose stat flags have PF_KTHREAD (usually 2, kthreadd), or None."""
    for name in sorted((n for n in os.listdir("/proc") if n.isdigit()), key=int):
        try:
            with open(f"/proc/{name}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[6]) & 0x00200000:
                    return int(name)
        except OSError:
            continue
    return None


def test_zombie_and_kernel_thread(tmp_path):
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        assert _wait_state(pid, "Z")
        kthread = _a_kernel_thread()
        if kthread is None:  # only inside a pid namespace, which hides the host's kernel threads
            require_or_skip("this pid namespace shows no kernel thread (PF_KTHREAD) to record")
        # with one readable process beside them: a capture that records nothing is refused (test_live_record)
        cp = memsnap("record", "--store", str(tmp_path), "--quiet", "--pid", str(pid), "--pid", str(kthread),
                     "--pid", str(os.getpid()))
        assert "Error" not in cp.stderr and "Traceback" not in cp.stderr
        sid = cp.stdout.split()[-1]
        c = check_counts(tmp_path, sid)
        rows = {r["pid"]: r for r in c["procs"]}
        assert rows.pop(os.getpid())["status"] == "ok"
        assert rows[pid]["status"] == "zombie" and rows[pid]["state"] == "Z"
        assert rows[kthread]["status"] == "kernel_thread" and rows[kthread]["kernel_thread"] is True
        for r in rows.values():
            assert r["error"] is None and r["mappings"] == 0 and r["pages"] == 0
            assert r["rollup_rss_kb"] is None  # not read: NULL, never a 0 posing as data
        assert c["snap"]["processes_zombie"] == 1 and c["snap"]["kernel_threads"] == 1
        assert c["snap"]["processes_seen"] == 3
    finally:
        os.waitpid(pid, 0)


def _wait_state(pid, state, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == state:
                return True
        time.sleep(0.01)
    return False


def test_denied_process(tmp_path):
    """A process the kernel refuses, made on purpose (not pid 1, which may or may not be readable): a root
    process, read by a recorder running as another user (nobody), which has no ptrace access to it."""
    victim = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    # and one process nobody may read (its own): a capture that records nothing is refused (test_live_record)
    own = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "120"])
    base = Path(tempfile.mkdtemp(prefix="memsnap-denied-"))  # tmp_path's parents are 0700: nobody cannot enter
    try:
        os.chmod(base, 0o777)
        store = base / "store"
        assert shutil.which("setpriv"), "setpriv (util-linux) is needed to run the recorder as nobody"
        cp = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                             "cli", "record", "--store", str(store), "--quiet", "--pid", str(victim.pid),
                             "--pid", str(own.pid)],
                            capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)),
                            timeout=120)
        assert cp.returncode == 0 and "Traceback" not in cp.stderr, cp.stderr
        sid = cp.stdout.split()[-1]
        c = check_counts(store, sid)
        rows = {r["pid"]: r for r in c["procs"]}
        assert rows.pop(own.pid)["status"] == "ok"
        (row,) = rows.values()
        assert row["pid"] == victim.pid and row["status"] == "denied", row
        assert f"1 process(es) denied by the kernel (first: pid {victim.pid}:" in cp.stderr
        assert f"/proc/{victim.pid}/" in row["error"]
        assert row["mappings"] == 0 and row["pages"] == 0 and row["rollup_rss_kb"] is None
        assert c["snap"]["processes_denied"] == 1
    finally:
        own.kill()
        own.wait()
        victim.stdin.close()
        victim.wait()
        shutil.rmtree(base)


def test_hostile_names_do_not_break_the_snapshot(tmp_path):
    """comm, argv and mapped file names are arbitrary bytes chosen by any user: non-UTF-8 bytes and
    characters that str.splitlines() treats as line breaks must neither abort the snapshot nor be lost."""
    d = tempfile.mkdtemp(prefix="memsnap-names-")
    name = os.path.join(d.encode(), b"f\xe9\xe2\x80\xa8x\rend\x0bz")
    with open(name, "wb") as f:
        f.write(b"x" * 8192)
    r, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        ctypes.CDLL(None).prctl(15, b"bad\xc3(n) \x80", 0, 0, 0)  # PR_SET_NAME
        fd = os.open(name, os.O_RDONLY)
        m = mmap.mmap(fd, 8192, prot=mmap.PROT_READ)
        m[0]
        os.write(wfd, b"x")
        signal.pause()
        os._exit(0)
    try:
        os.read(r, 1)
        cp = memsnap("record", "--store", str(tmp_path), "--quiet", "--pid", str(pid), "--match", ".")
        sid = cp.stdout.split()[-1]
        c = check_counts(tmp_path, sid)
        rows = {r["pid"]: r for r in c["procs"]}
        assert rows[pid]["status"] == "ok", rows[pid]
        with open(f"/proc/{pid}/comm", "rb") as f:
            comm = f.read().rstrip(b"\n")
        assert rows[pid]["comm"] == comm.decode("utf-8", "backslashreplace")
        maps = _rows(tmp_path, "mappings", sid)
        paths = maps.filter(pc.equal(maps["pid"], pid))["path"].to_pylist()
        assert name.decode("utf-8", "backslashreplace") in paths
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        shutil.rmtree(d)
