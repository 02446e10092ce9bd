"""Bounded recorder memory (issue 18): the same rows whatever the batch sizes, every buffer within its bound,
and the peak RSS of `memsnap record` within 150 MiB on a machine bigger than the batches.

A fake procfs (``--procfs``) stands in for a machine: processes whose pagemap entries, and kpage* files whose
values, are known, so two captures of it are identical and a "machine" of millions of pages costs a few
files, not gigabytes of RAM."""
from __future__ import annotations

import os
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from conftest import ROOT, read_table
from recorder import capture
from recorder.capture import Options, Recorder
from test_parsers import _stat_line, _status, _write

PAGE = os.sysconf("SC_PAGE_SIZE")
PRESENT, SWAP = 1 << 63, 1 << 62
PFN_BASE = 1 << 28  # PFNs from 1 TiB up: high PFNs, as on a big machine


# the kpage* values at a PFN: few distinct ones, as on real machines (kpageflags is a bit mask of which a
# machine shows some hundreds of combinations; mapcounts and memory cgroups are few)
def count_at(p): return p % 5 + 1
def flags_at(p): return (p % 61) << 3 | 1
def memcg_at(p): return p % 11 + 100


def fake_machine(root: Path, n_procs: int, private: list[int], shared: int, pid0: int = 1000) -> None:
    """``n_procs`` processes; process i maps ``private[i]`` pages of its own (every 97th swapped, every 89th
    not present) and the same ``shared`` pages as every other process.  kpagecount/kpageflags/kpagecgroup
    hold a value derived from the PFN at each PFN used (sparse files: the 1 TiB below them costs nothing)."""
    _write(root / "meminfo", "MemTotal:       16000000 kB\nMemFree:         8000000 kB\n")
    _write(root / "stat", "cpu  1 2 3 4\nbtime 1700000000\n")
    _write(root / "uptime", "4321.25 8000.00\n")
    _write(root / "sys/kernel/random/boot_id", "0123abcd-fake-boot-id\n")
    next_pfn = PFN_BASE + shared + 5  # the shared pages are PFN_BASE + 5 ...
    for i in range(n_procs):
        pid = pid0 + i
        d = root / str(pid)
        _write(d / "stat", _stat_line(pid, f"fake{i}", "S", 1, 0, 1, 100 + i))
        _write(d / "status", _status(f"fake{i}", "S", 0, 0, 0, 1, None, False))
        _write(d / "cmdline", f"fake\0{i}\0".encode())
        _write(d / "comm", f"fake{i}\n")
        _write(d / "cgroup", "0::/fake.slice\n")
        (d / "ns").mkdir()
        os.symlink(f"/usr/bin/fake{i}", d / "exe")
        os.symlink(f"pid:[{4026531836 + i}]", d / "ns" / "pid")
        priv_vpn, shared_vpn = 0x10000, 0x800000
        _write(d / "maps", f"{priv_vpn * PAGE:x}-{(priv_vpn + private[i]) * PAGE:x} rw-p 00000000 00:00 0 [heap]\n"
                           f"{shared_vpn * PAGE:x}-{(shared_vpn + shared) * PAGE:x} rw-s 00000000 00:05 77 /dev/shm/f\n")
        priv = array("Q", bytes(8 * private[i]))
        for k in range(private[i]):
            if k % 97 == 3:
                priv[k] = SWAP | (k << 5)  # a swap entry: no PFN
            elif k % 89 != 7:
                priv[k] = PRESENT | (next_pfn + k)
        next_pfn += private[i]
        sh = array("Q", (PRESENT | (PFN_BASE + 5 + k) for k in range(shared)))
        with open(d / "pagemap", "wb") as f:
            f.seek(priv_vpn * 8)
            f.write(priv.tobytes())
            f.seek(shared_vpn * 8)
            f.write(sh.tobytes())
    used = range(PFN_BASE, next_pfn)
    for name, fn in (("kpagecount", count_at), ("kpageflags", flags_at), ("kpagecgroup", memcg_at)):
        with open(root / name, "wb") as f:
            f.seek(PFN_BASE * 8)
            f.write(array("Q", (fn(p) for p in used)).tobytes())


TINY = dict(FLUSH_PAGE_ROWS=4099, FLUSH_MAPPING_ROWS=3, FLUSH_PROCESS_ROWS=7, PFN_MERGE_FAN=3,
            PFN_MERGE_CHUNK=257, FRAMES_WINDOW=1000, KPAGE_BATCH=333, PAGEMAP_CHUNK_PAGES=4096)


def _capture(root: Path, store: Path) -> Recorder:
    rec = Recorder(Options(store=str(store), procfs=str(root), host="fakehost", sources=("maps", "pagemap", "kpage")))
    rec.capture()
    return rec


def _rows(store: Path, table: str, drop=("snapshot_id",)) -> list[tuple]:
    t = read_table(store, table)
    cols = [c for c in t.column_names if c not in drop and c not in ("date", "host")]
    return [tuple(r[c] for c in cols) for r in t.select(cols).to_pylist()]


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    root = tmp_path_factory.mktemp("fakeproc") / "proc"
    # processes of 1,000 to 4,900 private pages: the small ones filtered together with others (one pagemap
    # batch), the big ones batch by batch (with TINY's PAGEMAP_CHUNK_PAGES), the biggest spooled to a file
    fake_machine(root, 40, [1000 + 100 * i for i in range(40)], 2000)
    return root


def test_tiny_batches_write_the_same_rows(machine, tmp_path, monkeypatch):
    """The rows of every table are the same with tiny batches (dozens of page batches, PFN runs merged on
    three levels, frames in windows of 1,000) as with the default sizes; frames identical, in PFN order."""
    default, default_batch = _capture(machine, tmp_path / "default"), capture.FLUSH_PAGE_ROWS
    for k, v in TINY.items():
        monkeypatch.setattr(capture, k, v)
    tiny = _capture(machine, tmp_path / "tiny")

    for table in ("pages", "mappings"):
        a, b = _rows(tmp_path / "default", table), _rows(tmp_path / "tiny", table)
        assert len(a) == len(b) > 0 and sorted(a) == sorted(b), table
    proc_drop = ("snapshot_id", "captured_at", "capture_ms")
    assert sorted(_rows(tmp_path / "default", "processes", proc_drop)) == \
        sorted(_rows(tmp_path / "tiny", "processes", proc_drop))
    frames = _rows(tmp_path / "tiny", "frames")
    assert frames == _rows(tmp_path / "default", "frames")  # same rows, same (PFN) order

    # frames: one row per distinct nonzero PFN of a present page, ascending, with the values at that PFN
    pages = _rows(tmp_path / "tiny", "pages", drop=("snapshot_id", "pid", "vpn", "map_idx"))
    want = sorted({e & ((1 << 55) - 1) for (e,) in pages if e >> 63} - {0})
    assert [f[0] for f in frames] == want and len(want) > 100_000
    assert all((m, fl, cg) == (count_at(p), flags_at(p), memcg_at(p)) for p, m, fl, cg, _ in frames)
    assert all(refs is None for *_, refs in frames)  # a fake procfs has no recorder pid: its own refs unknown

    # what each buffer held at most, with the tiny sizes
    pages_sink, maps_sink, frames_writer = tiny.sinks
    assert 0 < pages_sink.max_batch_rows <= TINY["FLUSH_PAGE_ROWS"]
    assert pages_sink.spooled > 0  # big processes' pages spilled while they were read
    assert pages_sink._runs.depth >= 3  # runs merged into runs of runs (of runs)
    assert 0 < pages_sink._runs.max_held <= TINY["PFN_MERGE_FAN"] * TINY["PFN_MERGE_CHUNK"]
    assert 0 < frames_writer.max_window <= TINY["FRAMES_WINDOW"] + TINY["PFN_MERGE_FAN"] * TINY["PFN_MERGE_CHUNK"]
    assert 0 < maps_sink.max_rows <= TINY["FLUSH_MAPPING_ROWS"] + 2  # + one process's mappings
    # the default sizes: batches of FLUSH_PAGE_ROWS, their runs merged once at the end
    assert default.sinks[0].max_batch_rows == min(len(pages), default_batch)
    assert default.sinks[0]._runs.depth == 1


@pytest.mark.needs_root
def test_live_capture_with_tiny_batches(workload, tmp_path, monkeypatch):
    """A live capture with tiny batches: frames are exactly the distinct nonzero PFNs of the present pages,
    sorted; every process's pages rows add up to its row in processes."""
    w = workload()
    for k, v in TINY.items():
        monkeypatch.setattr(capture, k, v)
    Recorder(Options(store=str(tmp_path), pids=tuple(w.pids))).capture()
    pages = read_table(tmp_path, "pages")
    frames = read_table(tmp_path, "frames")
    pfns = frames["pfn"].to_pylist()
    entries = pages["entry"].to_pylist()
    assert pfns == sorted({e & ((1 << 55) - 1) for e in entries if e >> 63} - {0}) and len(pfns) > 1000
    per_pid = {}
    for p in pages["pid"].to_pylist():
        per_pid[p] = per_pid.get(p, 0) + 1
    procs = {r["pid"]: r["pages"] for r in read_table(tmp_path, "processes").to_pylist()}
    assert procs == {p: per_pid.get(p, 0) for p in w.pids}


# 4M pages rows and 3.3M distinct frames: the recorder before issue 18 peaked at 287 MiB on a quarter of that
BIG = dict(n=8, private=420_000, shared=100_000)
PEAK_MIB = 150
#: RSS also counts the pages of pyarrow's and Python's shared libraries the recorder maps: 48 MiB here on a warm
#: machine, 90 MiB right after `pip install` (freshly written files sit in the page cache as large folios, mapped
#: whole on a fault): the same capture peaked at 117 MiB in a warm venv and 152 MiB in a fresh clean-clone venv,
#: with the same anonymous memory.  The recorder controls the rest: its peak without those file pages (VmHWM
#: less RssFile at exit) must leave room for the warm libraries under PEAK_MIB.
LIBRARY_FILE_MIB = 40


# the child's own peak: VmHWM, written at its exit.  (Not ru_maxrss from wait4: a child spawned with vfork
# inherits the parent's high-water mark at exec, and pytest's is above 150 MiB.)
PEAK_CHILD = ("import atexit, sys\n"
              "def hwm(path=sys.argv[1]):\n"
              "    with open('/proc/self/status') as f, open(path, 'w') as out:\n"
              "        st = {ln.split(':')[0]: ln.split()[1] for ln in f if ln.startswith(('VmHWM:', 'RssFile:'))}\n"
              "        out.write(st['VmHWM'] + ' ' + st['RssFile'])\n"
              "atexit.register(hwm)\n"
              "from cli import main\n"
              "sys.argv = ['memsnap'] + sys.argv[2:]\n"
              "main()\n")


def test_record_peak_rss_is_bounded_on_a_big_machine(tmp_path):
    """`memsnap record` of a fake machine with 4M pages rows and 3.3M frames at PFNs above 1 TiB stays within
    150 MiB of peak RSS (VmHWM of the recorder process: interpreter and imports included)."""
    root = tmp_path / "proc"
    fake_machine(root, BIG["n"], [BIG["private"]] * BIG["n"], BIG["shared"])
    store, hwm = tmp_path / "store", tmp_path / "hwm"
    cp = subprocess.run([sys.executable, "-c", PEAK_CHILD, str(hwm), "record", "--store", str(store), "--procfs",
                         str(root), "--host", "fakehost", "--sources", "maps,pagemap,kpage", "--quiet"], cwd=ROOT,
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    snap = read_table(store, "snapshots").to_pylist()[0]
    n_pages = BIG["n"] * (BIG["private"] + BIG["shared"])
    absent = sum(1 for k in range(BIG["private"]) if k % 97 != 3 and k % 89 == 7)  # neither present nor swapped
    assert snap["pages_rows"] == n_pages - BIG["n"] * absent
    assert snap["frames_rows"] > 3_000_000
    peak_kb, file_kb = map(int, hwm.read_text().split())
    own_mib = (peak_kb - file_kb) / 1024
    assert own_mib <= PEAK_MIB - LIBRARY_FILE_MIB, (f"peak RSS {peak_kb / 1024:.0f} MiB, of which {own_mib:.0f} MiB "
                                                   f"not library file pages, for {snap['pages_rows']} pages rows")
