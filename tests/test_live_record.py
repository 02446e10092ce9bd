"""Live: record a real workload and check the stored data against the kernel's own smaps."""
from __future__ import annotations

import numpy as np
import pyarrow.compute as pc

from conftest import needs_root, read_table, record_pids

ZERO_PAGE = 24
PFN_MASK = np.uint64((1 << 55) - 1)


def _rows(table, sid, pid=None):
    mask = pc.equal(table["snapshot_id"], sid)
    if pid is not None:
        mask = pc.and_(mask, pc.equal(table["pid"], pid))
    return table.filter(mask)


@needs_root
def test_live_record_matches_kernel_smaps_rss(tmp_path, workload):
    w = workload("--workers", "2")
    sid = record_pids(tmp_path, w.pids)
    procs, maps = read_table(tmp_path, "processes"), read_table(tmp_path, "mappings")
    pages, frames = read_table(tmp_path, "pages"), read_table(tmp_path, "frames")
    snap = read_table(tmp_path, "snapshots").to_pylist()[0]
    assert snap["snapshot_id"] == sid and snap["pfn_available"] and snap["kpage_available"]
    assert snap["processes_recorded"] == len(w.pids)

    flags = dict(zip(frames["pfn"].to_numpy().tolist(), frames["flags"].to_numpy().tolist()))
    checked = 0
    for pid in w.pids:
        prow = _rows(procs, sid, pid).to_pylist()
        assert len(prow) == 1 and prow[0]["status"] == "ok", prow
        assert prow[0]["rollup_rss_kb"] > 0 and prow[0]["rollup_pss_kb"] > 0  # smaps_rollup recorded
        pg = _rows(pages, sid, pid)
        vpn = pg["vpn"].to_numpy()
        entry = pg["entry"].to_numpy()
        assert vpn.size == prow[0]["pages"] > 0
        for m in _rows(maps, sid, pid).to_pylist():
            # the workload's anonymous and file mappings (everything but special pf/io mappings)
            if {"pf", "io"} & set(m["vm_flags"].split()) or m["path"] == "[vsyscall]":
                continue
            sel = (vpn >= m["start_addr"] // 4096) & (vpn < m["end_addr"] // 4096)
            e = entry[sel]
            pfns = (e[(e >> np.uint64(63)) == 1] & PFN_MASK).tolist()
            # every present PFN must have a frames row
            assert all(p in flags for p in pfns)
            rss_kb = 4 * sum(1 for p in pfns if not (flags[p] >> ZERO_PAGE) & 1)
            assert rss_kb == m["rss_kb"], (pid, m["path"], m["perms"], rss_kb, m["rss_kb"])
            checked += 1
    assert checked > 20
    # the recorder did not record itself but named its pid
    assert snap["recorder_pid"] not in procs["pid"].to_pylist()
