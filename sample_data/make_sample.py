#!/usr/bin/env python3
"""Re-create sample_data/store: two real snapshots of sample_data/workload.py on this machine.

Run as root (for PFNs):  python sample_data/make_sample.py
Afterwards update the sample pids in docs/cookbook.sql (the "shared by exactly these pids" recipe) and run
`make docs`; tests/test_sql.py fails until then.
Snapshot 1: the parent and 3 forked workers right after the fork.
Snapshot 2: after worker 0 wrote 4 MiB of the inherited anonymous memory (copy-on-write broken).
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE = HERE / "store"


def consistent(store) -> bool:
    """kpagecount is global: a process starting or exiting elsewhere during a capture moves the mapcount
    of shared library pages between the smaps and the kpagecount reads.  The sample must be exact (tests
    compare --source pages with the recorded smaps_rollup), so only a capture where they agree is kept."""
    sys.path.insert(0, str(HERE.parent))
    from analyzer.store import open_store

    with open_store(str(store)) as st:
        for snap in st.resolve("latest"):
            rows = st.sizes(source="pages", snapshot=snap.snapshot_id, host=snap.host,
                            columns=["pid", "rss", "pss", "uss", "swap", "pss_anon", "pss_file", "pss_shmem"]).rows
            roll = {r[0]: r[1:] for r in st.execute(
                "SELECT pid, rollup_rss_kb, rollup_pss_kb, rollup_private_clean_kb + rollup_private_dirty_kb, "
                "rollup_swap_kb, rollup_pss_anon_kb, rollup_pss_file_kb, rollup_pss_shmem_kb FROM processes "
                "WHERE snapshot_id = ?", [snap.snapshot_id]).fetchall()}
            for r in rows:
                got = (r["rss"], r["pss"], r["uss"], r["swap"], r["pss_anon"], r["pss_file"], r["pss_shmem"])
                if got != roll[r["pid"]]:
                    return False
    return True


def main(attempts: int = 20):
    for i in range(attempts):
        capture()
        if consistent(STORE) and consistent_first(STORE):
            return
        print(f"attempt {i + 1}: the machine changed mapcounts during the capture; trying again", file=sys.stderr)
    raise SystemExit("could not make a consistent capture: is the machine busy?")


def consistent_first(store) -> bool:
    """The first snapshot too (``consistent`` checks the latest)."""
    import tempfile

    snaps = sorted((store / "snapshots").rglob("*.parquet"))
    with tempfile.TemporaryDirectory() as d:
        first = snaps[0].stem
        for table_dir in store.iterdir():
            if table_dir.name.startswith("."):
                continue
            for f in table_dir.rglob(first + ".parquet"):
                dest = Path(d) / f.relative_to(store)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, dest)
        return consistent(Path(d))


def capture():
    if STORE.exists():
        shutil.rmtree(STORE)
    w = subprocess.Popen([sys.executable, str(HERE / "workload.py"), "--workers", "3", "--anon-mb", "8",
                          "--file-mb", "4", "--shared-mb", "4", "--memfd-mb", "2", "--thp-mb", "4"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(w.stdout.readline())
    pids = [info["parent"], *info["workers"]]
    cmd = [sys.executable, "-m", "cli", "record", "--store", str(STORE), "--host", "sample"]
    for p in pids:
        cmd += ["--pid", str(p)]
    try:
        subprocess.run(cmd, check=True, cwd=HERE.parent)
        w.stdin.write("cow 0 4\n")
        w.stdin.flush()
        assert w.stdout.readline().strip() == "ok"
        subprocess.run(cmd, check=True, cwd=HERE.parent)
    finally:
        w.stdin.write("quit\n")
        w.stdin.flush()
        w.wait()
    shutil.rmtree(STORE / ".inprogress", ignore_errors=True)
    for d, _, files in os.walk(STORE):
        for f in files:
            os.chmod(os.path.join(d, f), 0o640)  # shipped in the repo: readable by the group


if __name__ == "__main__":
    main()
