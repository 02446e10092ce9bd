"""``memsnap push`` (recorder/push.py): to a directory and to S3, a real S3 API on loopback (moto's server, started
here on 127.0.0.1; nothing of boto or pyarrow is mocked).

What a reader of the destination sees is read as a reader does: the catalog's visible files (common/catalog.py),
every row of them read with pyarrow, and ``memsnap sizes`` / ``snapshots`` (DuckDB) on the destination, an S3
destination downloaded first.  The oracle is the source stores as written, read the same way before any push.
"""
from __future__ import annotations

import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from conftest import ROOT, SAMPLE_STORE, download, free_port, memsnap, s3_env

spec = importlib.util.spec_from_file_location("series", ROOT / "bench" / "series.py")
series = importlib.util.module_from_spec(spec)
spec.loader.exec_module(series)

# ------------------------------------------------------------------------------------------- stores
@pytest.fixture(scope="module")
def source_tables():
    return series.load_latest(str(SAMPLE_STORE))


def write(store, tables, n, host, first=0, start=datetime(2026, 11, 20, 23, 40, tzinfo=timezone.utc), step=120.0):
    """``n`` snapshots of ``host`` (from the ``first``-th of its series), across midnight with the defaults."""
    return series.write_series(tables, str(store), n, host, start, step, first=first)


def compact(store, include_today=True):
    from recorder.compact import compact as run

    return run(str(store), include_today=include_today)


def contents(store) -> tuple[dict, list]:
    """What a reader sees: {(host, snapshot_id): {table: rows}} over the visible files, and the problems: a
    snapshot whose rows are in two visible files of a table (seen twice), a visible segment missing a table's
    file (partial)."""
    import pyarrow.parquet as pq

    from common import catalog, layout
    from schema import OPTIONAL_TABLES, TABLES

    cat = catalog.scan(str(store), TABLES)
    rows: dict = {k: dict.fromkeys(TABLES, 0) for k in cat.winners}
    problems, seen = [], Counter()
    for seg in cat.segments():
        have = {layout.table_of(str(store), p) for p in catalog.segment_files(str(store), seg.host, seg.date,
                                                                              seg.name, TABLES)}
        required = set(TABLES) - set(OPTIONAL_TABLES)  # the opt-in sources' tables exist only when recorded
        if not required <= have:
            problems.append(f"partial: {seg.host}/{seg.date}/{seg.name} lacks {sorted(required - have)}")
    for t, files in cat.files.items():
        for p in files:
            ids = Counter(pq.read_table(p, columns=["snapshot_id"]).column(0).to_pylist())
            for sid, n in ids.items():
                key = (layout.host_of(p), sid)
                seen[(t, key)] += 1
                if key not in rows:
                    problems.append(f"rows of an uncommitted snapshot visible: {t} {key}")
                    continue
                rows[key][t] += n
    problems += [f"seen twice: {t} {k}" for (t, k), n in seen.items() if n > 1]
    return rows, problems


def assert_sound(dest, oracle, sources=()) -> dict:
    """The destination shows each snapshot at most once and only whole (its rows equal the oracle's), and, given
    the ``sources``, no snapshot of the oracle is lost (it is at the destination or still at a source).  Returns
    what the destination shows."""
    got, problems = contents(dest)
    assert problems == []
    assert set(got) <= set(oracle)
    bad = {k: (v, oracle[k]) for k, v in got.items() if v != oracle[k]}
    assert bad == {}
    if sources:
        remaining = set(got)
        for s in sources:
            remaining |= committed(s)
        assert set(oracle) - remaining == set(), "snapshots lost"
    return got


def sizes(store, host=None, snapshot=None) -> list:
    args = ["sizes", str(store), "-f", "json", *(["--host", host] if host else []),
            *(["--snapshot", snapshot] if snapshot else [])]
    return json.loads(memsnap(*args).stdout)


def push(*args, env=None, check=True):
    cp = memsnap("push", *[str(a) for a in args], env=env, check=check)
    return cp


@pytest.fixture
def two_hosts(tmp_path, source_tables):
    """Two hosts' stores: ``web`` with 14 snapshots over two days, the first day compacted; ``db`` with 6."""
    web, db = tmp_path / "web", tmp_path / "db"
    write(web, source_tables, 14, "web")
    compact(web, include_today=False)  # 2026-11-20 merged: a compacted segment and loose ones
    write(db, source_tables, 6, "db", start=datetime(2026, 11, 21, 8, 0, tzinfo=timezone.utc))
    return web, db


# ------------------------------------------------------------------------------------------- tests
def test_push_to_a_directory_from_two_hosts(tmp_path, two_hosts):
    web, db = two_hosts
    oracle = {**contents(web)[0], **contents(db)[0]}
    dest = tmp_path / "central"
    cp = push(web, dest)
    assert cp.stdout.startswith("pushed 14 snapshots (") and str(dest) in cp.stdout
    out = json.loads(push("-S", db, dest, "-f", "json").stdout)
    assert out["snapshots"] == 6 and out["already_there"] == 0 and len(out["pushed"]) == 6
    got = assert_sound(dest, oracle)
    assert set(got) == set(oracle)
    for host, src in (("web", web), ("db", db)):
        assert sizes(dest, host) == sizes(src)
    # the first day's snapshots of web, in the compacted file, and one of its loose ones
    first = sorted(k[1] for k in oracle if k[0] == "web")
    for sid in (first[0], first[-1]):
        assert sizes(dest, "web", sid) == sizes(web, snapshot=sid)
    snaps = json.loads(memsnap("snapshots", str(dest), "-f", "json").stdout)
    assert len(snaps) == 20 and len({(s["host"], s["snapshot_id"]) for s in snaps}) == 20
    # a rerun copies nothing
    files = sorted(p.relative_to(dest) for p in dest.rglob("*.parquet"))
    again = json.loads(push(web, dest, "-f", "json").stdout)
    assert again["snapshots"] == 0 and again["pushed"] == [] and again["already_there"] > 0
    assert sorted(p.relative_to(dest) for p in dest.rglob("*.parquet")) == files
    # every file is a byte copy, private like the recorder's
    for p in dest.rglob("*.parquet"):
        src = (web if "host=web" in str(p) else db) / p.relative_to(dest)
        assert p.read_bytes() == src.read_bytes() and p.stat().st_mode & 0o777 == 0o600


def test_push_to_s3_from_two_hosts(tmp_path, two_hosts, moto, bucket):
    web, db = two_hosts
    oracle = {**contents(web)[0], **contents(db)[0]}
    env = s3_env(moto)
    url = f"s3://{bucket}/fleet/memory"
    assert push(web, url, env=env).stdout.startswith("pushed 14 snapshots")
    assert push(db, url, "--endpoint-url", moto, env={**env, "AWS_ENDPOINT_URL": ""}).stdout.startswith(
        "pushed 6 snapshots")
    again = json.loads(push(web, url, "-f", "json", env=env).stdout)
    assert again["snapshots"] == 0 and again["pushed"] == []
    local = download(moto, f"{bucket}/fleet/memory", tmp_path / "down")
    got = assert_sound(local, oracle)
    assert set(got) == set(oracle)
    for host, src in (("web", web), ("db", db)):
        assert sizes(local, host) == sizes(src)
    # the objects are the files, byte for byte
    for p in (tmp_path / "down").rglob("*.parquet"):
        src = (web if "host=web" in str(p) else db) / p.relative_to(tmp_path / "down")
        assert p.read_bytes() == src.read_bytes()


def test_a_store_merged_from_pushes_pushes_on(tmp_path, two_hosts, moto, bucket):
    """Multi-host stores are normal input: the merged directory pushed on to S3, one host of it to another."""
    web, db = two_hosts
    merged = tmp_path / "merged"
    push(web, merged)
    push(db, merged)
    oracle = contents(merged)[0]
    url = f"s3://{bucket}/all"
    out = json.loads(push(merged, url, "-f", "json", env=s3_env(moto)).stdout)
    assert out["snapshots"] == 20
    assert assert_sound(download(moto, f"{bucket}/all", tmp_path / "down"), oracle) == oracle
    only_db = tmp_path / "only-db"
    push(merged, only_db, "--host", "db")
    assert set(contents(only_db)[0]) == {k for k in oracle if k[0] == "db"}


def test_snapshots_compacted_after_a_push_supersede_the_loose_copies(tmp_path, source_tables, moto, bucket):
    src = tmp_path / "h"
    write(src, source_tables, 6, "h", start=datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc))
    oracle = contents(src)[0]
    url, env = f"s3://{bucket}/p", s3_env(moto)
    dirdest = tmp_path / "central"
    for d in (url, dirdest):
        push(src, d, env=env)
    compact(src)
    for d in (url, dirdest):
        out = json.loads(push(src, d, "-f", "json", env=env).stdout)
        assert out["snapshots"] == 6 and len(out["pushed"]) == 1 and len(out["pruned"]) == 6
    for d in (download(moto, f"{bucket}/p", tmp_path / "down"), dirdest):
        assert assert_sound(d, oracle) == oracle
        assert len(list(__import__("pathlib").Path(d).rglob("*.parquet"))) == 6  # one compacted file per table


def test_move_deletes_only_what_is_pushed(tmp_path, source_tables):
    from recorder.store import SnapshotWriter

    src = tmp_path / "h"
    ids = write(src, source_tables, 5, "h", start=datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc))
    oracle = contents(src)[0]
    # a snapshot being written (its recorder alive: the marker is locked) and one whose recorder died
    live = SnapshotWriter(str(src), "h", "20261120T090000000000Z-live-1", "2026-11-20")
    live.table("processes").write(source_tables["processes"])
    live.table("processes").finish()
    live.table("processes").publish()
    dead = src / "mappings" / "host=h" / "date=2026-11-20" / "20261120T090100000000Z-dead-2.parquet"
    shutil.copy(next((src / "mappings").rglob("*.parquet")), dead)
    dest = tmp_path / "central"
    out = json.loads(push(src, dest, "--move", "-f", "json").stdout)
    assert sorted(out["moved"]) == sorted(ids) and out["snapshots"] == 5
    assert assert_sound(dest, oracle) == oracle
    assert dead.exists() and os.path.exists(live.path("processes"))  # not committed: not the push's to touch
    assert json.loads(memsnap("snapshots", str(src), "-f", "json", check=False).stdout or "[]") == []
    live.abort()
    # what is already at the destination is deleted by --move too (a push killed after the commit)
    more = write(src, source_tables, 2, "h", first=5, start=datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc))
    push(src, dest)
    out = json.loads(push(src, dest, "--move", "-f", "json").stdout)
    assert out["snapshots"] == 0 and sorted(out["moved"]) == sorted(more)
    assert len(contents(dest)[0]) == 7


def test_dry_run_changes_nothing(tmp_path, two_hosts, moto, bucket):
    web, _ = two_hosts
    before = sorted(p.relative_to(web) for p in web.rglob("*"))
    out = json.loads(push(web, tmp_path / "new", "--dry-run", "--move", "-f", "json").stdout)
    assert out["dry_run"] and out["snapshots"] == 14 and out["moved"] == []
    assert not (tmp_path / "new").exists()
    out = json.loads(push(web, f"s3://{bucket}/x", "--dry-run", "-f", "json", env=s3_env(moto)).stdout)
    assert out["snapshots"] == 14
    assert download(moto, bucket, tmp_path / "down") and not any((tmp_path / "down").iterdir())
    assert sorted(p.relative_to(web) for p in web.rglob("*")) == before


def test_errors_are_one_line(tmp_path, moto, bucket):
    src = tmp_path / "s"
    shutil.copytree(SAMPLE_STORE, src)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x").write_text("x")
    env = s3_env(moto)
    port = free_port()  # nothing listens there
    cases = [
        ([tmp_path / "nope", tmp_path / "d"], env, "not a memsnap store"),
        ([src, tmp_path / "junk"], env, "not a memsnap store"),
        ([src, src], env, "is the source store itself"),
        ([src, "gs://b/p"], env, "gs:// is not supported"),
        ([src, "s3:///p"], env, "no bucket"),
        ([src, f"s3://no-such-bucket-{os.getpid()}/p"], env, "no such bucket"),
        ([src, f"s3://{bucket}/p", "--endpoint-url", f"http://127.0.0.1:{port}"], env, "check the endpoint"),
        ([src, f"s3://{bucket}/p", "--endpoint-url", "ftp://x"], env, "not an http(s) URL"),
        ([src, tmp_path / "d", "--endpoint-url", moto], env, "s3:// destinations only"),
        ([src, tmp_path / "d", "extra"], env, "push takes [STORE] DEST"),
    ]
    for args, e, text in cases:
        cp = push(*args, env=e, check=False)
        assert cp.returncode == 1, (args, cp.stdout, cp.stderr)
        assert text in cp.stderr and cp.stderr.startswith("Error: ") and cp.stderr.count("\n") == 1, (args, cp.stderr)


# ------------------------------------------------------------------------------------------- kills
#: where a push kills itself (its own code, so the moment is exact): before the k-th file it puts (6 files a
#: loose snapshot: 5 data files, then the commit), or in --move's first deletion of a source segment
KILL_AT = {
    "mid-data": "import recorder.push as m\nfor c in (m._Dir, m._S3):\n    o = c.put\n"
                "    def put(self, *a, _o=o, **k):\n        N[0] += 1\n        if N[0] == 15: die()\n"
                "        return _o(self, *a, **k)\n    c.put = put",
    "before-commit": "import recorder.push as m\nfor c in (m._Dir, m._S3):\n    o = c.put\n"
                     "    def put(self, *a, _o=o, **k):\n        N[0] += 1\n        if N[0] == 18: die()\n"
                     "        return _o(self, *a, **k)\n    c.put = put",
    "before-move": "import recorder.push as m\no = m.delete_segment\n"
                   "def ds(*a, **k):\n    N[0] += 1\n    if N[0] == 3: die()\n    return o(*a, **k)\n"
                   "m.delete_segment = ds",
}


@pytest.mark.parametrize("where", sorted(KILL_AT))
@pytest.mark.parametrize("to", ["dir", "s3"])
def test_sigkill_at_each_step(tmp_path, source_tables, moto, bucket, to, where):
    """A push --move SIGKILLed at a chosen step: nothing is visible twice or in part, nothing is lost, and the
    rerun finishes the job."""
    src = tmp_path / "h"
    write(src, source_tables, 5, "h", start=datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc))
    oracle = contents(src)[0]
    dest = str(tmp_path / "central") if to == "dir" else f"s3://{bucket}/p"
    env = s3_env(moto)
    script = ("import os, signal, sys\nN = [0]\ndef die(): os.kill(os.getpid(), signal.SIGKILL)\n" + KILL_AT[where] +
              f"\nfrom recorder.push import push\npush({str(src)!r}, {dest!r}, move=True)")
    cp = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, env=env)
    assert cp.returncode == -signal.SIGKILL, cp.stderr

    def seen():
        return download(moto, f"{bucket}/p", tmp_path / f"down{time.monotonic_ns()}") if to == "s3" else dest

    got = assert_sound(seen(), oracle, [src])
    assert len(got) == {"mid-data": 2, "before-commit": 2, "before-move": 3}[where]
    out = json.loads(push(src, dest, "--move", "-f", "json", env=env).stdout)
    assert assert_sound(seen(), oracle, [src]) == oracle
    assert contents(src)[0] == {}
    if to == "dir" and where != "before-move":
        assert out["recovered"] == [sorted(oracle)[2][1]]  # the killed push's half segment removed, then pushed
    assert out["snapshots"] == {"mid-data": 3, "before-commit": 3, "before-move": 2}[where]


def committed(store) -> set:
    """(host, snapshot_id) of the committed snapshots of a store (its commit files alone: the cheap check)."""
    from common import catalog
    from schema import TABLES

    return set(catalog.scan(str(store), TABLES).winners)


@pytest.mark.slow
@pytest.mark.parametrize("to", ["dir", "s3"])
def test_sigkill_at_random_moments(tmp_path, source_tables, moto, bucket, to):
    """12 SIGKILLs per destination (24 in all) of pushes from two hosts, some with --move, the sources growing and
    compacted between runs.  After every kill the destination shows each snapshot at most once and whole, and no
    snapshot is lost; a final rerun completes, and the destination then equals the sources (``sizes`` too)."""
    rng = random.Random(int(os.environ.get("MEMSNAP_KILL_SEED", "14")))
    env = s3_env(moto)
    dest = str(tmp_path / "central") if to == "dir" else f"s3://{bucket}/p"
    srcs = {"web": tmp_path / "web", "db": tmp_path / "db"}
    written = {"web": 0, "db": 0}
    pending = {"web": 0, "db": 0}  # segments added since the host's last completed push
    oracle: dict = {}

    def grow(host, n):
        write(srcs[host], source_tables, n, host, first=written[host])
        written[host] += n
        pending[host] += n
        oracle.update(contents(srcs[host])[0])

    def seen():
        if to == "dir":
            return dest
        return download(moto, f"{bucket}/p", tmp_path / f"down{time.monotonic_ns()}")

    grow("web", 12)
    grow("db", 6)
    argv = [sys.executable, "-m", "cli", "push"]
    t = time.monotonic()
    subprocess.run([*argv, "--dry-run", str(srcs["web"]), dest], cwd=ROOT, env=env, capture_output=True, check=True)
    startup = time.monotonic() - t
    scratch = str(tmp_path / "scratch") if to == "dir" else f"s3://{bucket}/scratch"
    t = time.monotonic()
    subprocess.run([*argv, str(srcs["web"]), scratch], cwd=ROOT, env=env, capture_output=True, check=True)
    per_segment = max(0.02, (time.monotonic() - t - startup) / 12)
    kills, completed, attempts, moved, copying = 0, 0, 0, 0, 0
    before: set = set()
    while kills < 12 or copying < 4:  # at least 4 of them while it copies (a loaded machine shifts the timing)
        attempts += 1
        assert attempts < 120, f"only {kills} kills landed in {attempts} attempts, {copying} while copying"
        host = rng.choice(sorted(srcs))
        move = rng.random() < 0.3
        p = subprocess.Popen([*argv, str(srcs[host]), dest, *(["--move"] if move else [])], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        # from the end of its start-up (imports, listings) to the end of the copies it has to make
        time.sleep(rng.uniform(startup * 0.9, startup + per_segment * (pending[host] + 1)))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        _, err = p.communicate()
        where = seen()
        after = {(str(f.relative_to(where)), f.stat().st_size) for f in __import__("pathlib").Path(where).rglob("*")
                 if f.is_file()}
        if p.returncode == -signal.SIGKILL:
            kills += 1
            moved += move
            copying += after != before  # it had started copying (or deleting) when it was killed
        else:
            assert p.returncode == 0, err
            completed += 1
            pending[host] = 0
        before = after
        assert_sound(where, oracle, srcs.values())
        if p.returncode == 0 or rng.random() < 0.3:  # new work: more snapshots, sometimes a compaction
            grow(host, rng.randint(2, 5))
            if rng.random() < 0.4:
                compact(srcs[host], include_today=rng.random() < 0.5)
                oracle.update(contents(srcs[host])[0])
                pending[host] += 1
    for host in sorted(srcs):
        grow(host, 2)  # the latest snapshot of each host is at its source, for `sizes`
        push(srcs[host], dest, env=env)
    final = seen()
    got = assert_sound(final, oracle, srcs.values())
    assert got == oracle
    for host in sorted(srcs):
        assert sizes(final, host) == sizes(srcs[host])
    print(f"push kill test ({to}): start-up {startup:.2f} s, {per_segment:.3f} s per segment; {kills} kills "
          f"({moved} with --move, {copying} while copying), {completed} runs completed, {len(oracle)} snapshots")
    assert copying >= 4, f"only {copying} of {kills} kills landed while the push was copying"


def test_a_destination_compacted_in_place_still_takes_pushes(tmp_path, source_tables):
    """The destination compacts a day itself; the host's own compaction of that day (earlier, so its name sorts
    first) holds those snapshots and more: it is stored under a new compaction id that wins them all.  A store
    holding some of a compacted file's snapshots and others is refused, one line, nothing written."""
    start = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
    src, dest = tmp_path / "h", tmp_path / "central"
    write(src, source_tables, 6, "h", start=start)
    push(src, dest)
    write(src, source_tables, 2, "h", first=6, start=start)
    compact(src)  # the host's compaction first ...
    time.sleep(0.01)
    memsnap("compact", str(dest), "--include-today")  # ... then the destination's, of the 6 it has
    oracle = contents(src)[0]
    out = json.loads(push(src, dest, "-f", "json").stdout)
    (p,) = out["pushed"]
    assert p["snapshots"] == 8 and p["stored_as"] > p["segment"] and len(out["pruned"]) == 1
    assert assert_sound(dest, oracle) == oracle
    assert json.loads(push(src, dest, "-f", "json").stdout)["pushed"] == []
    # another store of the same host: snapshots 7..10 compacted, against the destination's 1..8
    other = tmp_path / "other"
    write(other, source_tables, 4, "h", first=6, start=start)
    compact(other)
    files = sorted(dest.rglob("*.parquet"))
    cp = push(other, dest, "--move", check=False)
    assert cp.returncode == 1 and cp.stderr.startswith("Error: 1 file set(s) not pushed (c") and \
        cp.stderr.count("\n") == 1, cp.stderr
    assert sorted(dest.rglob("*.parquet")) == files and len(contents(other)[0]) == 4  # nothing moved
