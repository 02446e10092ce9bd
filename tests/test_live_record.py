"""Live: record a real workload and check the stored data against the kernel's own smaps."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from conftest import ROOT, memsnap, needs_root, read_table, record_pids

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


# ---------------------------------------------------------------------------------------------- empty captures

def _parquet_files(store):
    return sorted(str(p) for p in store.rglob("*.parquet")) if store.exists() else []


@needs_root
def test_a_capture_that_records_nothing_commits_nothing(tmp_path):
    store = tmp_path / "s"
    for args in (["--pid", "999999"], ["--match", "no-such-command-zq7"]):
        cp = memsnap("record", str(store), *args, check=False)
        assert cp.returncode == 1 and cp.stdout == "", cp
        assert cp.stderr.startswith("Error: no process matched: nothing was recorded") and "Traceback" not in cp.stderr
        assert len(cp.stderr.strip().splitlines()) == 1
        assert _parquet_files(store) == []
    # --interval mode: a warning per empty capture, and it goes on
    cp = memsnap("record", str(store), "--match", "no-such-command-zq7", "--count", "2", "--interval", "0.1")
    assert cp.stderr.count("warning: no process matched") == 2 and _parquet_files(store) == []


@needs_root
def test_match_skips_the_commands_that_started_the_recorder(tmp_path):
    """`time memsnap record --match X`: the wrapper's command line holds X, but it is not what was meant;
    a real process whose command line holds X is still recorded."""
    marker = f"zq-marker-{os.getpid()}"
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", marker])
    try:
        store = tmp_path / "s"
        cli = f"{sys.executable} -m cli record {store} --match {marker} --format json"
        cp = subprocess.run(["bash", "-c", f"time {cli}"], capture_output=True, text=True, cwd=ROOT)
        assert cp.returncode == 0, cp.stderr
        assert json.loads(cp.stdout)["processes"]["ok"] == 1
        pids = read_table(store, "processes")["pid"].to_pylist()
        assert pids == [target.pid]  # not bash, not time
    finally:
        target.kill()
        target.wait()


@needs_root
def test_a_user_who_is_denied_everything_is_told_why():
    """As nobody, every other process is denied: an error that says so and why, and nothing committed."""
    top = Path(tempfile.mkdtemp(prefix="memsnap-nobody-"))  # pytest's own temp tree is root-only
    try:
        top.chmod(0o777)
        store = top / "s"
        cp = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                             "cli", "record", str(store)], capture_output=True, text=True, cwd=ROOT)
        assert cp.returncode == 1, cp
        err = cp.stderr.strip().splitlines()
        assert err[-1].startswith("Error: none of the") and "denied" in err[-1], err
        assert "run the recorder as root" in err[-1]
        assert _parquet_files(store) == []
    finally:
        shutil.rmtree(top, ignore_errors=True)


@needs_root
def test_recorded_map_idx_is_the_mapping_found_by_address(tmp_path, workload):
    """pages.map_idx as the recorder writes it (schema 4) is the idx of the mapping whose address range holds the
    page, found by an independent range join over the Parquet files (not the analyzer's views)."""
    import duckdb

    w = workload("--workers", "2")
    record_pids(tmp_path, w.pids)
    con = duckdb.connect()
    glob_of = {t: str(tmp_path / t / "*" / "*" / "*.parquet") for t in ("pages", "mappings", "snapshots")}
    total, nulls, wrong = con.execute(f"""
        WITH s AS (SELECT snapshot_id, page_size_bytes AS ps FROM read_parquet('{glob_of['snapshots']}')),
        m AS (SELECT m.snapshot_id, m.pid, m.idx, m.start_addr, m.end_addr FROM read_parquet('{glob_of['mappings']}') m),
        p AS (SELECT p.snapshot_id, p.pid, p.vpn, p.map_idx, p.vpn * s.ps AS addr
              FROM read_parquet('{glob_of['pages']}') p JOIN s USING (snapshot_id)),
        found AS (SELECT p.*, m.idx FROM p LEFT JOIN m ON m.snapshot_id = p.snapshot_id AND m.pid = p.pid
                  AND p.addr >= m.start_addr AND p.addr < m.end_addr)
        SELECT count(*), count(*) FILTER (WHERE map_idx IS NULL), count(*) FILTER (WHERE map_idx IS DISTINCT FROM idx)
        FROM found""").fetchone()
    assert total > 1000 and nulls == 0 and wrong == 0, (total, nulls, wrong)
