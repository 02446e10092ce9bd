"""memsnap import smemcap: both forms, and bad input leaves the store untouched."""
from __future__ import annotations

import os

from conftest import memsnap, read_table
from recorder.smemcap import write_smemcap


def _files(store):
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file()) if store.exists() else []


def test_import_tar_records_processes_and_mappings(tmp_path):
    pids = [os.getpid(), os.getppid()]
    assert write_smemcap(str(tmp_path / "c.tar.gz"), pids) == 2
    store = tmp_path / "s"
    out = memsnap("import", "smemcap", str(tmp_path / "c.tar.gz"), "--store", str(store), "-f", "json").stdout
    assert '"processes": 2' in out
    snap = read_table(store, "snapshots").to_pylist()[0]
    assert snap["pfn_available"] is None and snap["sources"] == "smaps" and snap["host"] == "smemcap-c"
    procs = read_table(store, "processes").to_pylist()
    assert sorted(p["pid"] for p in procs) == sorted(pids)
    maps = read_table(store, "mappings")
    assert maps.num_rows > 10 and read_table(store, "pages").num_rows == 0
    # --source pages is refused with a reason, never zeros
    cp = memsnap("sizes", str(store), "--source", "pages", check=False)
    assert cp.returncode != 0 and "no PFNs" in cp.stderr and cp.stdout == "" and "Traceback" not in cp.stderr


def test_truncated_or_foreign_captures_write_nothing(tmp_path):
    write_smemcap(str(tmp_path / "c.tar.gz"), [os.getpid()])
    data = (tmp_path / "c.tar.gz").read_bytes()
    (tmp_path / "trunc.tar.gz").write_bytes(data[: len(data) // 2])
    (tmp_path / "foreign.tar").write_bytes(b"this is not a tar file at all" * 100)
    (tmp_path / "emptydir").mkdir()
    store = tmp_path / "s"
    memsnap("import", "smemcap", str(tmp_path / "c.tar.gz"), "--store", str(store))
    before = _files(store)
    for bad in ("trunc.tar.gz", "foreign.tar", "emptydir", "missing.tar"):
        cp = memsnap("import", "smemcap", str(tmp_path / bad), "--store", str(store), check=False)
        assert cp.returncode != 0, bad
        assert cp.stderr.startswith("Error: ") and bad in cp.stderr and "Traceback" not in cp.stderr, cp.stderr
        assert _files(store) == before, bad


def test_malformed_smaps_names_file_and_line(tmp_path):
    cap = tmp_path / "cap" / "proc"
    (cap / "42").mkdir(parents=True)
    (cap / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 10 kB\n")
    (cap / "42" / "smaps").write_text("00400000-00452000 r-xp 00000000 08:02 173521 /bin/x\nRss: lots kB\n")
    (cap / "42" / "cmdline").write_bytes(b"x\0")
    cp = memsnap("import", "smemcap", str(tmp_path / "cap"), "--store", str(tmp_path / "s"), check=False)
    assert cp.returncode != 0 and "42/smaps:2" in cp.stderr and "Traceback" not in cp.stderr
    assert _files(tmp_path / "s") == []
