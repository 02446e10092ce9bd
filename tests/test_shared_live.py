"""Live: shared-page attribution checked against the recorded pagemap by an independent route."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.compute as pc

from conftest import memsnap, needs_root, read_table, record_pids

PFN_MASK = np.uint64((1 << 55) - 1)


def _frames_by_pid(store, pids):
    """{pid: list of PFNs of counted present pages} and {pfn: (mapcount, flags)}, straight from Parquet."""
    pages, frames, maps = read_table(store, "pages"), read_table(store, "frames"), read_table(store, "mappings")
    info = dict(zip(frames["pfn"].to_pylist(), zip(frames["mapcount"].to_pylist(), frames["flags"].to_pylist())))
    out = {}
    for pid in pids:
        pg = pages.filter(pc.equal(pages["pid"], pid))
        vpn, entry = pg["vpn"].to_numpy(), pg["entry"].to_numpy()
        keep = np.zeros(vpn.size, bool)
        for m in maps.filter(pc.equal(maps["pid"], pid)).to_pylist():
            if {"pf", "io", "ht"} & set((m["vm_flags"] or "").split()):
                continue
            keep |= (vpn >= m["start_addr"] // 4096) & (vpn < m["end_addr"] // 4096)
        e = entry[keep & ((entry >> np.uint64(63)) == 1)]
        pfns = [p for p in (e & PFN_MASK).tolist() if not (info[p][1] >> 24) & 1]  # not the zero page
        out[pid] = pfns
    return out, info


def _region_pfns(store, pid, path_part):
    pages, maps = read_table(store, "pages"), read_table(store, "mappings")
    pg = pages.filter(pc.equal(pages["pid"], pid))
    vpn, entry = pg["vpn"].to_numpy(), pg["entry"].to_numpy()
    out = []
    for m in maps.filter(pc.equal(maps["pid"], pid)).to_pylist():
        if path_part in (m["path"] or ""):
            sel = (vpn >= m["start_addr"] // 4096) & (vpn < m["end_addr"] // 4096) & ((entry >> np.uint64(63)) == 1)
            out += (entry[sel] & PFN_MASK).tolist()
    return out


@needs_root
def test_group_uss_pairs_and_pss_conservation(tmp_path, workload):
    w = workload("--workers", "2", "--cow-mb", "8")
    # an unrelated process mapping the same shared file
    other = subprocess.Popen([sys.executable, "-c",
                              "import mmap,sys\nf=open(sys.argv[1],'rb')\nm=mmap.mmap(f.fileno(),0,mmap.MAP_SHARED,"
                              "mmap.PROT_READ)\ns=sum(m[i] for i in range(0,len(m),4096))\nprint('ready',flush=True)\n"
                              "sys.stdin.read()", w.info["file"]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    try:
        assert other.stdout.readline().strip() == "ready"
        w.cow(0, 2)  # worker 0 rewrites 2 MiB of the inherited memory before the snapshot
        record_pids(tmp_path, [*w.workers, w.parent, other.pid])
        groups = json.loads(memsnap("shared", str(tmp_path), "--groups", "regex:workload.py",
                                    "-P", "workload|mmap", "-f", "json").stdout)
        g = {r["group"]: r for r in groups}["regex:workload.py"]
        assert g["processes"] == 3

        fr, info = _frames_by_pid(tmp_path, [w.parent, *w.workers, other.pid])
        group = [w.parent, *w.workers]
        maps_in_group: dict[int, int] = {}
        for pid in group:
            for p in fr[pid]:
                maps_in_group[p] = maps_in_group.get(p, 0) + 1
        only = [p for p, n in maps_in_group.items() if n >= info[p][0]]
        assert g["uss_kb"] == len(only) * 4
        assert g["rss_kb"] == len(maps_in_group) * 4
        assert g["shared_outside_kb"] == (len(maps_in_group) - len(only)) * 4
        # the file the other process maps is shared outside the group: not part of the group's USS
        assert set(fr[other.pid]) & set(maps_in_group) and not set(fr[other.pid]) & set(only)
        members = {r["pid"]: r for r in json.loads(memsnap("sizes", str(tmp_path), "--source", "pages",
                                                             "-c", "pid uss pss", "-f", "json").stdout)}
        assert g["uss_kb"] >= sum(members[p]["uss"] for p in group)
        assert g["members_uss_kb"] == sum(members[p]["uss"] for p in group)

        # pairs: the two workers share exactly the frames both still map
        pairs = json.loads(memsnap("shared", str(tmp_path), "--pairs", "-f", "json").stdout)
        a, b = sorted(w.workers)
        row = next(r for r in pairs if (r["pid_a"], r["pid_b"]) == (a, b))
        assert row["shared_kb"] == len(set(fr[a]) & set(fr[b])) * 4
        # ... and of the inherited `cow` region that is exactly what worker 0 did not rewrite (8 - 2 MiB)
        cow = {pid: set(_region_pfns(tmp_path, pid, "memsnap-cow")) for pid in w.workers}
        assert len(cow[w.workers[0]] & cow[w.workers[1]]) * 4 == 6 * 1024
        assert cow[w.workers[0]] & cow[w.workers[1]] <= set(fr[a]) & set(fr[b])

        # PSS is conserved across groupings, up to one floor (< 1 kB) per group / process
        by_cmd = json.loads(memsnap("shared", str(tmp_path), "--groups", "user", "-f", "json").stdout)
        total_groups = sum(r["pss_kb"] for r in by_cmd)
        total_procs = sum(r["pss"] for r in members.values())
        assert abs(total_groups - total_procs) <= len(members)

        hist = json.loads(memsnap("shared", str(tmp_path), "--histogram", "-f", "json").stdout)
        assert sum(r["kb"] for r in hist) == len(set().union(*map(set, fr.values()))) * 4
        _check_reconcile(tmp_path)
    finally:
        other.stdin.close()
        other.wait()


def _all_frames(store):
    """{pfn: flags} of every present page of every recorded process that lies in one of its mappings, straight
    from Parquet (no query of the analyzer): what `shared --reconcile` counts."""
    pages, frames, maps = read_table(store, "pages"), read_table(store, "frames"), read_table(store, "mappings")
    flags = dict(zip(frames["pfn"].to_pylist(), frames["flags"].to_pylist()))
    out = {}
    for pid in set(pages["pid"].to_pylist()):
        pg = pages.filter(pc.equal(pages["pid"], pid))
        vpn, entry = pg["vpn"].to_numpy(), pg["entry"].to_numpy()
        inside = np.zeros(vpn.size, bool)
        for m in maps.filter(pc.equal(maps["pid"], pid)).to_pylist():
            inside |= (vpn >= m["start_addr"] // 4096) & (vpn < m["end_addr"] // 4096)
        for p in (entry[inside & ((entry >> np.uint64(63)) == 1)] & PFN_MASK).tolist():
            out[p] = flags[p]
    return out


def _check_reconcile(store):
    """Each row of --reconcile against its own independent count, not against the other rows: the
    'unaccounted' row is a remainder by definition, so a sum check alone holds whatever the frame counts."""
    rec = json.loads(memsnap("shared", str(store), "--reconcile", "-f", "json").stdout)
    by = {r["ord"] if "ord" in r else i + 1: r for i, r in enumerate(rec)}
    fr = _all_frames(store)
    bit = lambda f, b: (f >> b) & 1  # noqa: E731
    anon = sum(1 for f in fr.values() if bit(f, 12) and not bit(f, 24)) * 4
    file = sum(1 for f in fr.values() if not bit(f, 12) and not bit(f, 14) and not bit(f, 24)) * 4
    shmem = sum(1 for f in fr.values() if not bit(f, 12) and bit(f, 14)) * 4
    mi = {r["key"]: r["value_kb"] for r in read_table(store, "meminfo").to_pylist()}
    assert anon > 0 and file > 0 and shmem > 0
    assert by[1]["kb"] == anon and by[1]["meminfo_kb"] == mi["AnonPages"]
    assert anon <= mi["AnonPages"], "more anonymous frames mapped than the kernel's AnonPages"
    assert by[2]["kb"] == file
    assert by[3]["kb"] == shmem and by[3]["meminfo_kb"] == mi["Shmem"]
    assert by[4]["kb"] == file + shmem and by[4]["meminfo_kb"] == mi["Mapped"]
    assert by[5]["kb"] == len(fr) * 4 and by[5]["meminfo_kb"] == mi["MemTotal"] - mi["MemFree"]
    assert len(fr) * 4 <= mi["MemTotal"] - mi["MemFree"]
    assert by[6]["kb"] == mi["MemTotal"] - mi["MemFree"] - len(fr) * 4
    assert by[7]["kb"] == by[7]["meminfo_kb"] == mi["MemFree"]
    assert by[8]["kb"] == by[8]["meminfo_kb"] == mi["MemTotal"]
    assert by[5]["kb"] + by[6]["kb"] + by[7]["kb"] == by[8]["kb"]


def test_shared_refuses_snapshots_without_pfns(tmp_path):
    """An smemcap import has no PFNs: the command names the reason and what still works."""
    import os

    from recorder.smemcap import write_smemcap

    write_smemcap(str(tmp_path / "c.tar.gz"), [os.getpid()])
    memsnap("import", "smemcap", str(tmp_path / "c.tar.gz"), "--store", str(tmp_path / "s"))
    cp = memsnap("shared", str(tmp_path / "s"), "--pairs", check=False)
    assert cp.returncode != 0 and "no PFNs" in cp.stderr and "smemcap" in cp.stderr and "--source smaps" in cp.stderr
    assert cp.stdout == "" and "Traceback" not in cp.stderr
