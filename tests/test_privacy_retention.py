"""Secrets stay out of stores (--redact, --pseudonymize-pfns with a key outside the store); retention."""
from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.compute as pc

from conftest import memsnap, needs_root, read_table
from recorder.privacy import Pseudonymizer, redact_path
from recorder.store import apply_retention, committed_snapshots


def test_pseudonyms_are_keyed_stable_and_distinct():
    a, b = Pseudonymizer(b"k" * 32), Pseudonymizer(b"other-key-0123456789")
    pfns = np.array([1, 2, 3, 2, 1 << 40], dtype=np.uint64)
    pa_, pb = a.pfns(pfns), b.pfns(pfns)
    assert pa_[1] == pa_[3] and len(set(pa_.tolist())) == 4      # equality kept, distinct stay distinct
    assert not set(pa_.tolist()) & set(pfns.tolist())             # nothing physical shows through
    assert pa_.tolist() != pb.tolist()                            # depends on the key
    assert (pa_ < (1 << 55)).all() and (pa_ > 0).all()
    e = np.array([(1 << 63) | (1 << 61) | 5, (1 << 62) | (7 << 5) | 2], dtype=np.uint64)  # present, swapped
    out = a.entries(e)
    assert out[1] == e[1] and (out[0] >> np.uint64(55)) == (e[0] >> np.uint64(55))


def test_redact_path_keeps_system_files():
    assert redact_path(b"k" * 32, "/usr/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    assert redact_path(b"k" * 32, "[heap]") == "[heap]"
    r = redact_path(b"k" * 32, "/home/alice/secret.db (deleted)")
    assert "alice" not in r and r.endswith(" (deleted)") and r == redact_path(b"k" * 32, "/home/alice/secret.db (deleted)")


@needs_root
def test_pseudonymized_snapshot_keeps_sizes_and_sharing(tmp_path, workload, monkeypatch):
    key = tmp_path / "key"
    env = dict(os.environ, MEMSNAP_KEY_FILE=str(key))
    w = workload("--workers", "2")
    store = tmp_path / "s"
    for extra in ((), ("--pseudonymize-pfns", "--redact", "cmdline", "--redact", "paths")):
        args = ["record", "--store", str(store), "--quiet", *extra]
        for p in w.pids:
            args += ["--pid", str(p)]
        memsnap(*args, env=env)
    assert key.exists() and oct(key.stat().st_mode & 0o777) == "0o600"
    assert not any(str(key) in str(p) for p in store.rglob("*"))  # the key is not in the store
    snaps = sorted(read_table(store, "snapshots").to_pylist(), key=lambda r: r["capture_start"])
    plain, hidden = snaps[0]["snapshot_id"], snaps[1]["snapshot_id"]
    assert snaps[1]["pfn_pseudonymized"] and snaps[1]["redacted"] == "cmdline,paths"
    frames = read_table(store, "frames")
    real = set(frames.filter(pc.equal(frames["snapshot_id"], plain))["pfn"].to_pylist())
    fake = set(frames.filter(pc.equal(frames["snapshot_id"], hidden))["pfn"].to_pylist())
    assert len(fake) == len(real) and not fake & real
    procs = read_table(store, "processes").filter(pc.equal(read_table(store, "processes")["snapshot_id"], hidden))
    assert all(c.startswith("<redacted:") for c in procs["cmdline"].to_pylist())
    maps = read_table(store, "mappings").filter(pc.equal(read_table(store, "mappings")["snapshot_id"], hidden))
    assert not any("memsnap-workload-" in (p or "") for p in maps["path"].to_pylist())
    # sharing still works on pseudonyms: the same group costs as with real PFNs (machine quiet permitting)
    g = {s: json.loads(memsnap("shared", str(store), "--snapshot", s, "--groups", "user", "-f", "json").stdout)[0]
         for s in (plain, hidden)}
    assert abs(g[plain]["rss_kb"] - g[hidden]["rss_kb"]) <= 64
    assert abs(g[plain]["uss_kb"] - g[hidden]["uss_kb"]) <= 64


def test_retention_keep_and_max_bytes(tmp_path):
    store = tmp_path / "s"
    ids = [memsnap("record", "--store", str(store), "--pid", str(os.getpid()), "--sources", "smaps_rollup,smaps",
                   "--host", "h", "-q").stdout.strip() for _ in range(4)]
    assert [s for _, s in committed_snapshots(str(store), "h")] == ids
    out = memsnap("record", "--store", str(store), "--pid", str(os.getpid()), "--sources", "smaps_rollup,smaps",
                  "--host", "h", "--keep", "2")
    left = [s for _, s in committed_snapshots(str(store), "h")]
    assert len(left) == 2 and left[0] == ids[-1] and "retention removed 3" in out.stderr
    # nothing of the removed snapshots is left on disk
    assert not [p for p in store.rglob("*.parquet") if any(i in p.name for i in ids[:3])]
    # a size cap removes oldest first, never the newest
    removed = apply_retention(str(store), "h", max_bytes=1)
    assert removed == left[:1] and [s for _, s in committed_snapshots(str(store), "h")] == left[1:]
    cp = memsnap("snapshots", str(store), "-f", "json")
    assert [r["snapshot_id"] for r in json.loads(cp.stdout)] == left[1:]


def test_bad_key_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "short"
    bad.write_bytes(b"abc")
    cp = memsnap("record", "--store", str(tmp_path / "s"), "--pid", str(os.getpid()), "--pseudonymize-pfns",
                 "--key-file", str(bad), check=False, env=dict(os.environ, MEMSNAP_KEY=""))
    assert cp.returncode != 0 and cp.stderr.startswith("Error: ") and "Traceback" not in cp.stderr
    assert not (tmp_path / "s" / "snapshots").exists() or not list((tmp_path / "s" / "snapshots").rglob("*.parquet"))
