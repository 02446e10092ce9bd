"""Live diffs: copy-on-write loss to the page, and churn (exit/start, PID reuse) never shown as a change."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from conftest import memsnap, needs_root, record_pids, require_or_skip

MIB_KB = 1024


@needs_root
@pytest.mark.parametrize("n_mib", [3])
def test_cow_break_is_reported_to_the_page(tmp_path, workload, n_mib):
    w = workload("--workers", "3", "--cow-mb", "8")
    record_pids(tmp_path, w.pids)
    w.cow(1, n_mib)  # worker 1 writes exactly n MiB of the inherited, still shared `cow` region
    record_pids(tmp_path, w.pids)
    out = memsnap("diff", str(tmp_path), "--source", "pages", "-M", "memsnap-cow", "-f", "json")
    rows = {r["pid"]: r for r in json.loads(out.stdout)}
    assert set(rows) == set(w.pids)
    writer = w.workers[1]
    for pid, r in rows.items():
        assert r["status"] in ("changed", "same")  # nobody appears as new or exited
        if pid == writer:
            assert r["became_private_kb"] == n_mib * MIB_KB
            assert r["uss_delta"] == n_mib * MIB_KB
            assert r["became_shared_kb"] == 0 and r["new_pages_kb"] == 0 and r["gone_pages_kb"] == 0
        else:
            assert r["became_private_kb"] == 0, (pid, r)
            assert r["uss_delta"] == 0
    # without the map filter the writer still lost at least that much sharing (interpreter noise adds pages)
    allrows = {r["pid"]: r for r in json.loads(memsnap("diff", str(tmp_path), "--source", "pages",
                                                        "-f", "json").stdout)}
    assert allrows[writer]["became_private_kb"] >= n_mib * MIB_KB


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)


def _spawn_with_pid(target: int):
    """Start a sleeper whose PID is `target` (real PID reuse, via ns_last_pid); None if another process won."""
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(target - 1))
    p = _sleeper()
    if p.pid == target:
        return p
    p.stdin.close()
    p.wait()
    return None


def _reuse_pid(target: int, attempts: int = 20):
    """A sleeper with PID ``target``: a bounded number of tries (another process may take the PID first);
    skip visibly (a failure under MEMSNAP_REQUIRE_LIVE=1) when it cannot be arranged."""
    if not os.path.exists("/proc/sys/kernel/ns_last_pid"):
        require_or_skip("no /proc/sys/kernel/ns_last_pid: PID reuse cannot be arranged")
    for _ in range(attempts):
        p = _spawn_with_pid(target)
        if p is not None:
            return p
    require_or_skip(f"PID {target} was taken by another process on each of {attempts} tries")


@needs_root
@pytest.mark.parametrize("reuse", [False, True], ids=["churn", "pid-reuse"])
def test_churn_and_pid_reuse_are_exit_plus_new(tmp_path, reuse):
    a, b = _sleeper(), _sleeper()
    try:
        record_pids(tmp_path, [a.pid, b.pid], "--sources", "smaps_rollup,smaps")
        old_pid = a.pid
        a.stdin.close()
        a.wait()
        c = _reuse_pid(old_pid) if reuse else _sleeper()
        try:
            assert (c.pid == old_pid) == reuse  # the same PID, two identities: one exited row and one new row
            record_pids(tmp_path, [old_pid, b.pid, c.pid], "--sources", "smaps_rollup,smaps")
            rows = json.loads(memsnap("diff", str(tmp_path), "-f", "json").stdout)
            by_status = {}
            for r in rows:
                by_status.setdefault(r["status"], []).append(r["pid"])
            assert by_status.get("exited") == [old_pid]
            assert by_status.get("new") == [c.pid]
            assert b.pid in by_status.get("same", []) + by_status.get("changed", [])
            # groups still match: one python command, count before/after
            cmd = json.loads(memsnap("diff", str(tmp_path), "--by", "command", "-f", "json").stdout)
            assert [(r["count_before"], r["count_after"]) for r in cmd] == [(2, 2)]
        finally:
            c.stdin.close()
            c.wait()
    finally:
        b.stdin.close()
        b.wait()


def test_reboot_refuses_process_matching(tmp_path):
    """Two snapshots with different boot ids: --by process is refused with a hint; --by command works."""
    import shutil

    from conftest import SAMPLE_STORE

    store = tmp_path / "s"
    shutil.copytree(SAMPLE_STORE, store)
    snaps = sorted((store / "snapshots").rglob("*.parquet"))
    t = pq.read_table(snaps[-1])
    t = t.set_column(t.schema.get_field_index("boot_id"), "boot_id",
                     __import__("pyarrow").array(["another-boot"], __import__("pyarrow").string()))
    pq.write_table(t, snaps[-1])
    cp = memsnap("diff", str(store), check=False)
    assert cp.returncode != 0 and "reboot" in cp.stderr and "--by command" in cp.stderr
    assert "Traceback" not in cp.stderr
    ok = memsnap("diff", str(store), "--by", "command", "-f", "json")
    assert json.loads(ok.stdout)[0]["command"] == "workload.py"  # python workload.py: named by its script (process_commands)


@needs_root
def test_cross_host_diff_by_command_and_mapping_normalizes_names(tmp_path, workload):
    from analyzer.diff import normalize_name

    assert normalize_name("/usr/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so"
    assert normalize_name("/usr/lib/libssl-3.0.2.so") == "/usr/lib/libssl.so"
    assert normalize_name("/tmp/worker-12345.sock") == "/tmp/worker-N.sock"
    w = workload("--workers", "2")
    ids = []
    for host in ("web-a", "web-b"):
        ids.append(record_pids(tmp_path, w.pids, "--host", host))
    cp = memsnap("diff", str(tmp_path), "--from", ids[0], "--to", ids[1], check=False)
    assert cp.returncode != 0 and "different hosts" in cp.stderr and "--by command" in cp.stderr
    rows = json.loads(memsnap("diff", str(tmp_path), "--from", ids[0], "--to", ids[1], "--by", "command",
                              "-f", "json").stdout)
    assert [(r["command"], r["count_before"], r["count_after"]) for r in rows] == [("workload.py", 3, 3)]
    maps = {r["map"]: r for r in json.loads(memsnap("diff", str(tmp_path), "--from", ids[0], "--to", ids[1],
                                                     "--by", "mapping", "-f", "json").stdout)}
    libc = [m for m in maps if m.endswith("/libc.so")]
    assert libc and maps[libc[0]]["status"] in ("same", "changed")
    assert not any(m.endswith(".so.6") for m in maps)  # versions stripped on both sides
