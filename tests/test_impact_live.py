"""Live: the low-impact recording mode (``memsnap record --impact low``, and ``--impact auto`` above
``--impact-threshold-mb``) reads neither smaps nor smaps_rollup, and ``memsnap sizes`` (the default smaps source)
still gives those processes' figures, from pages, equal to the kernel's own smaps_rollup to the kB.

The oracle is /proc/<pid>/smaps_rollup, read by the test itself (parsed here, not by the recorder) while the
targets are frozen (SIGSTOP: nothing of theirs moves).  What it can be compared with exactly, and why:

* kernel PSS divides each page by its mapcount *at read time*, and memsnap by the mapcount kpagecount gave it
  during the capture.  The targets' own anonymous, shmem and shared-file pages are mapped only by the frozen
  workload (it is exec'ed, so nothing is COW-shared with the test), so Rss, Pss_Anon, Pss_Shmem, Swap and
  SwapPss cannot move between the two reads whoever records;
* the library pages (libpython, libc) are shared with every Python process, the recorder's included: a
  ``memsnap record`` subprocess maps them during its capture and is gone when the test reads smaps_rollup, so
  Pss, Pss_File and the USS (Private_Clean + Private_Dirty) of such a recording legitimately differ.  The full
  comparison therefore records *in this process* (``Recorder(...).capture()``), after a warm-up capture that
  maps every page the capture code touches: the recorder's mappings are the same during its kpage read and
  the test's smaps_rollup read, which happens the moment kpagecount has been read (a hook on
  ``_FramesWriter.write``, which also reads it just before: if the frozen targets' own rollup moved during the
  kpage read, another process moved the mapcounts, a proven race, and the check is retried).  Processes starting or exiting elsewhere on the machine can still move a library
  page's mapcount in between: such a difference is accepted only when the recorded kpagecount of the target's
  file frames has changed since (test_sizes_live.explain_or_fail), and the check is then retried (counted);
* the CLI recordings (``--impact low`` and a low ``--impact-threshold-mb``) are compared on the figures no
  recorder can move (Rss, Pss_Anon, Pss_Shmem, Swap, SwapPss), and their process rows must show that smaps and
  smaps_rollup were not read (and were, for the small process below the threshold).
"""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time
from contextlib import contextmanager


from conftest import memsnap, needs_root, read_table, record_pids
from test_sizes_live import KernelMoved, explain_or_fail, settled

COLUMNS = ("rss", "pss", "uss", "swap", "swappss", "pss_anon", "pss_file", "pss_shmem")
#: sizes column -> the smaps_rollup lines it must equal
ROLLUP = {"rss": ("Rss",), "pss": ("Pss",), "uss": ("Private_Clean", "Private_Dirty"), "swap": ("Swap",),
          "swappss": ("SwapPss",), "pss_anon": ("Pss_Anon",), "pss_file": ("Pss_File",),
          "pss_shmem": ("Pss_Shmem",)}
#: the figures no recorder's own mappings can move (see the module docstring)
FIXED = ("rss", "swap", "swappss", "pss_anon", "pss_shmem")


def kernel_rollup(pid: int) -> dict:
    """The kernel's smaps_rollup of ``pid`` as {field: kB}, parsed here (independent of recorder.procfs)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f.read().splitlines()[1:]:
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key] = int(parts[0])
    return out


def want_from(rollup: dict) -> dict:
    return {col: sum(rollup[k] for k in keys) for col, keys in ROLLUP.items()}


@contextmanager
def frozen(pids):
    for p in pids:
        os.kill(p, signal.SIGSTOP)
    try:
        for p in pids:  # stopped for real before anything is read
            for _ in range(200):
                with open(f"/proc/{p}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "T":
                        break
                time.sleep(0.01)
        yield
    finally:
        for p in pids:
            os.kill(p, signal.SIGCONT)


def sizes_by_pid(store, *extra) -> tuple[dict, str]:
    cp = memsnap("sizes", str(store), "-c", "pid " + " ".join(COLUMNS), "-f", "json", *extra)
    return {r["pid"]: r for r in json.loads(cp.stdout)}, cp.stderr


def process_rows(store) -> dict:
    return {r["pid"]: r for r in read_table(store, "processes").to_pylist()}


def assert_low_impact_rows(store, pids) -> None:
    rows = process_rows(store)
    for pid in pids:
        r = rows[pid]
        read = set((r["sources"] or "").split(","))
        assert read == {"maps", "pagemap"}, (pid, r["sources"])  # neither smaps nor smaps_rollup
        assert r["status"] == "ok" and r["rollup_rss_kb"] is None and r["rollup_pss_kb"] is None, r


@needs_root
def test_low_impact_sizes_equal_smaps_rollup(tmp_path, workload, monkeypatch):
    """In-process recording with --impact low: every sizes column equals the kernel's smaps_rollup, read the
    moment the recorder has read kpagecount (the mapcounts PSS divides by), before it writes anything."""
    from recorder import capture
    from recorder.capture import Options, Recorder

    rollup: dict = {}
    before: dict = {}
    kpage_write = capture._FramesWriter.write

    def write_then_read_rollup(self, pfns, warnings):
        before.update({pid: kernel_rollup(pid) for pid in w.pids})
        n = kpage_write(self, pfns, warnings)
        rollup.update({pid: kernel_rollup(pid) for pid in w.pids})
        return n
    monkeypatch.setattr(capture._FramesWriter, "write", write_then_read_rollup)

    w = workload("--workers", "2", "--thp-mb", "4")
    with frozen(w.pids):
        Recorder(Options(store=str(tmp_path / "warm"), pids=tuple(w.pids), impact="low")).capture()  # warm-up

        def check():
            store = tmp_path / f"s{time.monotonic_ns()}"
            rollup.clear()
            Recorder(Options(store=str(store), pids=tuple(w.pids), impact="low")).capture()
            assert set(rollup) == set(w.pids)
            moved = {p: {c: d for c in COLUMNS if (d := want_from(rollup[p])[c] - want_from(before[p])[c])}
                     for p in w.pids}
            if any(moved.values()):  # the frozen targets' own rollup moved while kpagecount was read: a race
                raise KernelMoved(f"smaps_rollup of the frozen targets changed during the kpage read: {moved}")
            assert_low_impact_rows(store, w.pids)
            got, err = sizes_by_pid(store)
            assert set(got) == set(w.pids)
            assert "low-impact mode" in err and "figures from pages" in err, err
            for pid in w.pids:
                want = want_from(rollup[pid])
                assert got[pid]["rss"] > 0 and want["pss_anon"] > 0 and want["pss_file"] > 0
                diffs = {c: want[c] - got[pid][c] for c in COLUMNS}
                if any(diffs.values()):
                    explain_or_fail(store, pid, diffs)
            assert want_from(rollup[w.parent])["pss_shmem"] > 0  # the parent wrote its shmem (workers did not)
            return store, got

        # a busy machine's processes move the mapcounts of library pages all the time: more attempts than the
        # other live tests (each is one capture and one `sizes`; every retry is proven and counted)
        store, got = settled(check, "low-impact", attempts=25)
    # deterministic on the recorded store (no retry needed): --source pages gives the same rows: the smaps source computed them the same way
        pages, _ = sizes_by_pid(store, "--source", "pages")
        assert pages == got
        # per mapping too: no holes where a low-impact process's mappings are grouped
        maps = json.loads(memsnap("sizes", str(store), "--by", "mapping", "-c", "map pids rss pss uss swap",
                                  "-f", "json").stdout)
        assert maps and all(r[c] is not None for r in maps for c in ("rss", "pss", "uss", "swap"))
        # ... and the same rows as --source pages: PSS floored once per output group (here a mapping name
        # across the processes sharing it), not per process
        assert maps == json.loads(memsnap("sizes", str(store), "--by", "mapping", "-c", "map pids rss pss uss swap",
                                          "--source", "pages", "-f", "json").stdout)
        assert sum(r["rss"] for r in maps) == sum(got[p]["rss"] for p in w.pids)


@needs_root
def test_cli_low_impact_and_threshold(tmp_path, workload):
    """`memsnap record --impact low` and `--impact-threshold-mb` below the workload's size: the big processes'
    rows show no smaps/smaps_rollup, the small one's do, and the figures no recorder can move equal the
    kernel's smaps_rollup; the small process keeps its smaps figures."""
    w = workload("--workers", "2", "--thp-mb", "4")
    small = subprocess.Popen(["sleep", "600"])
    try:
        def rss_kb(pid):
            with open(f"/proc/{pid}/status") as f:
                return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))

        threshold_mb = min(rss_kb(p) for p in w.pids) // 1024 - 1
        assert rss_kb(small.pid) < threshold_mb * 1024 < min(rss_kb(p) for p in w.pids)
        pids = [*w.pids, small.pid]
        with frozen(pids):
            want = {pid: want_from(kernel_rollup(pid)) for pid in pids}
            low = tmp_path / "low"
            record_pids(low, pids, "--impact", "low")
            auto = tmp_path / "auto"
            record_pids(auto, pids, "--impact-threshold-mb", str(threshold_mb))
            full = tmp_path / "full"
            record_pids(full, pids, "--impact", "full", "--impact-threshold-mb", "0")
        assert_low_impact_rows(low, pids)
        assert_low_impact_rows(auto, w.pids)
        for store in (auto, full):
            r = process_rows(store)[small.pid]
            assert r["sources"] == "smaps_rollup,smaps,pagemap" and r["rollup_rss_kb"] > 0, r
        assert all(r["sources"] == "smaps_rollup,smaps,pagemap" for r in process_rows(full).values())
        for store in (low, auto):
            got, err = sizes_by_pid(store)
            assert set(got) == set(pids), store
            for pid in w.pids:
                assert {c: got[pid][c] for c in FIXED} == {c: want[pid][c] for c in FIXED}, (store.name, pid)
                assert all(got[pid][c] is not None for c in COLUMNS), got[pid]
            assert f"{len(w.pids) + (store is low)} process(es)" in err, err
        # below the threshold: its smaps figures (libc's PSS moves with the processes of the machine: the fixed
        # ones are compared), and the note does not name it
        got_auto, err_auto = sizes_by_pid(auto)
        got_full, err_full = sizes_by_pid(full)
        for got in (got_auto, got_full):
            assert {c: got[small.pid][c] for c in FIXED} == {c: want[small.pid][c] for c in FIXED}
            assert all(got[small.pid][c] is not None for c in COLUMNS), got[small.pid]
        assert f"{small.pid} (sleep)" not in err_auto and "low-impact" not in err_full
        opts = json.loads(read_table(auto, "snapshots").to_pylist()[0]["options_json"])
        assert opts["impact"] == "auto" and opts["impact_threshold_kb"] == threshold_mb * 1024
    finally:
        small.kill()
        small.wait()


@needs_root
def test_low_impact_without_page_data_says_so(tmp_path, workload):
    """A snapshot whose low-impact processes have no PFNs or kpage data: a note names them and says why their
    figures are empty, instead of empty figures alone."""
    from analyzer import sizes as sz
    from analyzer.store import open_store

    w = workload("--workers", "1")
    record_pids(tmp_path, w.pids, "--impact", "low")
    with open_store(str(tmp_path)) as st:
        snaps = st.resolve()
        ok = sz.sizes(st, snaps)
        assert all(r["pss"] is not None for r in ok.rows) and any("figures from pages" in n for n in ok.notes)
        blind = sz.sizes(st, [dataclasses.replace(s, pfn_available=False) for s in snaps])
        assert all(r["pss"] is None and r["rss"] is None for r in blind.rows)
        assert any("no page data" in n and str(w.parent) in n and "CAP_SYS_ADMIN" in n for n in blind.notes), \
            blind.notes
        nokpage = sz.sizes(st, [dataclasses.replace(s, kpage_available=False) for s in snaps])
        assert any("recorded without kpage" in n for n in nokpage.notes), nokpage.notes


def test_low_impact_needs_pagemap_and_kpage(tmp_path):
    cp = memsnap("record", str(tmp_path), "--impact", "low", "--sources", "smaps_rollup,maps", check=False)
    assert cp.returncode != 0
    assert "--impact low reads pagemap and kpage" in cp.stderr and "pagemap and kpage" in cp.stderr, cp.stderr
    assert len([ln for ln in cp.stderr.splitlines() if ln.strip()]) <= 2, cp.stderr  # one line and a hint
    bad = memsnap("record", str(tmp_path), "--impact", "lowest", check=False)
    assert bad.returncode != 0 and "lowest" in bad.stderr


def test_cli_default_threshold_is_the_recorders():
    from cli.record import DEFAULT_IMPACT_THRESHOLD_MB
    from recorder.capture import DEFAULT_IMPACT_THRESHOLD_KB, Options

    assert DEFAULT_IMPACT_THRESHOLD_MB * 1024 == DEFAULT_IMPACT_THRESHOLD_KB == Options().impact_threshold_kb
