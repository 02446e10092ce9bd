"""The store's commit protocol under SIGKILL, SIGTERM/SIGINT, concurrency, permissions and write failures.

All of these run the real CLI (`python -m cli record`) on the real /proc, as a user would.
"""
from __future__ import annotations

import glob
import hashlib
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import ROOT, needs_root, require_or_skip
from schema import META_VERSION, OPTIONAL_TABLES, SCHEMA_VERSION, TABLES

CLI = [sys.executable, "-m", "cli"]
INPROGRESS = ".inprogress"

# live tests (real recorders, /proc) carry both marks; the store-function tests at the end need neither
def live(f):
    return pytest.mark.live(needs_root(f))


def start(store, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen([*CLI, "record", "--store", str(store), "--quiet", *args], cwd=ROOT,
                            stdout=kw.pop("stdout", subprocess.DEVNULL), stderr=kw.pop("stderr", subprocess.PIPE),
                            text=True, **kw)


def run(store, *args, prefix=(), **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, *CLI, "record", "--store", str(store), "--quiet", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, **kw)


def committed(store) -> set[str]:
    return {os.path.basename(p)[:-len(".parquet")]
            for p in glob.glob(os.path.join(store, "snapshots", "host=*", "date=*", "*.parquet"))}


def markers(store) -> set[str]:
    return {os.path.basename(p)[:-len(".lock")] for p in glob.glob(os.path.join(store, INPROGRESS, "*.lock"))}


def all_files(store) -> list[str]:
    """Every file but the compaction locks (``.inprogress/compact-<host>-<date>.flock``: empty, kept, only ever
    flock-ed; a recorder in --interval mode compacts finished days, e.g. after midnight UTC)."""
    return [os.path.join(d, f) for d, _, fs in os.walk(store) for f in fs if not f.endswith(".flock")]


def sid_of(path: str) -> str:
    name = os.path.basename(path)
    if name.endswith(".parquet.tmp"):
        return name[1:-len(".parquet.tmp")]
    if name.endswith(".parquet"):
        return name[:-len(".parquet")]
    if name.endswith(".lock"):
        return name[:-len(".lock")]
    raise AssertionError(f"unexpected file in the store: {path}")


def check_snapshot(store, sid) -> None:
    """A committed snapshot: one readable file per table, consistent with its snapshots row."""
    tables = {}
    for table in TABLES:
        files = glob.glob(os.path.join(store, table, "host=*", "date=*", sid + ".parquet"))
        if table in OPTIONAL_TABLES and not files:
            continue  # an opt-in source (physmem, cgroups) this snapshot did not record
        assert len(files) == 1, (sid, table, files)
        t = pq.read_table(files[0])
        assert t.schema.metadata[META_VERSION] == str(SCHEMA_VERSION).encode()
        tables[table] = t
    snap = tables["snapshots"].to_pylist()
    assert len(snap) == 1 and snap[0]["snapshot_id"] == sid
    snap = snap[0]
    assert tables["processes"].num_rows == snap["processes_seen"]
    assert tables["pages"].num_rows == snap["pages_rows"]
    assert tables["frames"].num_rows == snap["frames_rows"]
    assert tables["meminfo"].num_rows > 10


def check_store(store, verified: set[str], stats: dict) -> None:
    """Every visible (committed) snapshot is complete; nothing of an uncommitted one is visible, except
    while its recorder was killed inside the commit (its marker then still exists and recovery removes it)."""
    done = committed(store)
    assert verified <= done, "a committed snapshot disappeared"
    for sid in sorted(done - verified):
        check_snapshot(store, sid)
        verified.add(sid)
    live_markers = markers(store)
    for path in all_files(store):
        sid = sid_of(path)
        name = os.path.basename(path)
        if sid in done or name.endswith(".tmp") or os.path.dirname(path).endswith(INPROGRESS):
            continue
        # a final-named file of an uncommitted snapshot: only possible between the data renames and the
        # commit rename (a few renames), and then its marker is still there for recovery
        assert sid in live_markers, f"{path}: visible file of an uncommitted snapshot without marker"
        stats["killed_in_commit"] = stats.get("killed_in_commit", 0) + 1


@live
def test_sigkill_never_leaves_a_half_snapshot_visible(tmp_path, workload):
    store = tmp_path / "store"
    # A known set of processes (a workload with fork/COW/shmem/THP, init, kthreadd) keeps each capture
    # short whatever else runs on the machine, so random signals land in every phase: start-up, recovery,
    # capture, commit.  Recording every process is covered by the other tests.
    w = workload("--workers", "2")
    pids = [a for p in (*w.pids, 1, 2) for a in ("--pid", str(p))]
    seed = random.randrange(1 << 30)
    rnd = random.Random(seed)
    verified: set[str] = set()
    stats: dict = {}
    kills = 0
    sent = {signal.SIGKILL: 0, signal.SIGTERM: 0}
    # at least 50 signals, 2 in 3 SIGKILL (the hard case) and every third SIGTERM; more (bounded) if none
    # committed a snapshot yet or the last SIGKILL did not hit a capture: the test ends with a recovery
    while kills < 50 or ((not markers(store) or not verified) and kills < 80):
        stale = markers(store)
        # --no-compact: this is the capture's commit protocol on loose files; compaction's own kill tests are in
        # test_compact.py (with compaction, 60 loose snapshots of the day would become one compacted file)
        p = start(store, "--count", "0", "--interval", "0", "--no-compact", *pids)
        if kills % 2:
            # the delay counts from the first capture of this run: interpreter start-up can take longer
            # than 1.5 s on a loaded machine, and then no signal would land in a capture or a commit
            assert _wait_for(lambda: markers(store) - stale, timeout=60), p.stderr.read() if p.poll() else ""
        time.sleep(rnd.uniform(0.05, 1.5))
        sig = signal.SIGTERM if kills < 50 and kills % 3 == 2 else signal.SIGKILL  # fixed mix; random timing
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
        sent[sig] += 1
        kills += 1
        if sig == signal.SIGTERM:  # handled: exit 0, or killed by it while Python was still starting
            assert p.returncode in (0, -signal.SIGTERM) and "Traceback" not in err, (p.returncode, err)
        check_store(store, verified, stats)
    assert sent[signal.SIGTERM] == 16 and sent[signal.SIGKILL] >= 34, (sent, seed)
    assert verified, f"no snapshot committed in {kills} runs (seed {seed})"
    leftovers = markers(store)
    assert leftovers, f"no SIGKILL hit a capture in {kills} tries (seed {seed})"
    uncommitted = {sid_of(p) for p in all_files(store)} - committed(store)

    cp = run(store, *pids)
    assert cp.returncode == 0, cp.stderr
    new_sid = cp.stdout.strip().splitlines()[-1]
    warn = [ln for ln in cp.stderr.splitlines() if "incomplete snapshot" in ln]
    assert len(warn) == 1 and warn[0].startswith("warning: removed"), cp.stderr
    for sid in uncommitted:
        assert sid in warn[0]
    # recovered: no marker, no staging file, no file of an uncommitted snapshot; all committed ones intact
    assert markers(store) == set()
    assert not [p for p in all_files(store) if p.endswith(".tmp")]
    assert {sid_of(p) for p in all_files(store)} == committed(store) == verified | {new_sid}
    verified.clear()
    check_store(store, verified, {})


def _wait_for(pred, timeout=20.0, step=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


@live
@pytest.mark.parametrize("phase", ["first-capture", "capture", "sleep"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_sigint_discard_the_snapshot_in_progress(tmp_path, sig, phase):
    """One rule at every moment: SIGINT exits 130, SIGTERM 0, with one line saying that the snapshot in
    progress was discarded and how many were committed; what was reported is exactly what is committed."""
    store = tmp_path / "store"
    # asleep, the recorder waits out a 10-minute interval unless the signal wakes it: no timing threshold needed
    p = start(store, "--interval", "600" if phase == "sleep" else "1", "--count", "0", stdout=subprocess.PIPE)
    try:
        if phase == "first-capture":  # before anything was committed
            assert _wait_for(lambda: markers(store), timeout=20)
            first, in_progress = None, markers(store)
        else:
            first = p.stdout.readline().strip()  # first snapshot committed; now sleeping ~1 s
            assert first in committed(store)
            if phase == "capture":  # the second capture has started: its marker exists until commit
                assert _wait_for(lambda: markers(store), timeout=10)
                in_progress = markers(store)
            else:
                time.sleep(0.3)
                in_progress = set()
        p.send_signal(sig)
        out, err = p.communicate(timeout=120)  # a hang, not a speed target (benchmarks check speed)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == {signal.SIGINT: 130, signal.SIGTERM: 0}[sig], err
    assert "Traceback" not in err
    printed = {first, *out.split()} - {None}
    assert committed(store) == printed  # nothing committed that was not reported, and vice versa
    for sid in printed:
        check_snapshot(store, sid)
    n = len(printed)
    assert f"interrupted: the snapshot in progress was discarded; {n} snapshot{'s' if n != 1 else ''} committed" \
        in err.splitlines()
    for sid in in_progress - printed:  # the signal arrived before its commit (the usual case)
        assert not [f for f in all_files(store) if sid_of(f) == sid], "the interrupted snapshot left files"
    assert markers(store) == set() and not [f for f in all_files(store) if f.endswith(".tmp")]


@live
def test_file_and_directory_permissions(tmp_path):
    # umask 0: the worst case; the recorder must not rely on the caller's umask
    store = tmp_path / "a" / "b" / "store"
    cp = run(store, preexec_fn=lambda: os.umask(0))
    assert cp.returncode == 0, cp.stderr
    created = [tmp_path / "a", tmp_path / "a" / "b"]
    n_files = n_dirs = 0
    for d, dirs, files in os.walk(store):
        created.append(Path(d))
        for f in files:
            mode = os.stat(os.path.join(d, f)).st_mode & 0o7777
            assert mode in (0o600, 0o640), (os.path.join(d, f), oct(mode))
            n_files += 1
    for d in created:
        mode = os.stat(d).st_mode & 0o7777
        assert mode & ~0o750 == 0, (str(d), oct(mode))
        n_dirs += 1
    assert n_files >= 6 and n_dirs >= 3 * (len(TABLES) - len(OPTIONAL_TABLES))


@live
def test_two_recorders_on_one_store(tmp_path):
    store = tmp_path / "store"
    procs = [start(store, "--count", "2", "--interval", "0", stdout=subprocess.PIPE) for _ in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err
        outs.append(out.split())
    assert all(len(o) == 2 for o in outs)
    sids = set(outs[0]) | set(outs[1])
    assert len(sids) == 4 and committed(store) == sids
    for sid in sids:
        check_snapshot(store, sid)
    assert markers(store) == set()
    assert {sid_of(f) for f in all_files(store)} == sids


def _digest(store) -> dict[str, str]:
    return {p: hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in all_files(store)}


def _fake_crash_leftover(store) -> str:
    """What a SIGKILLed recorder leaves: an unlocked marker and a staged file."""
    sid = "20000101T000000000000Z-deadbeef-1"
    (Path(store) / INPROGRESS / f"{sid}.lock").write_text('{"pid": 1}')
    d = Path(store) / "pages" / "host=x" / "date=2000-01-01"
    d.mkdir(parents=True)
    (d / f".{sid}.parquet.tmp").write_bytes(b"PAR1 half")
    return sid


def _assert_clean_failure(cp) -> None:
    assert cp.returncode != 0, (cp.stdout, cp.stderr)
    assert "Traceback" not in cp.stderr, cp.stderr
    errors = [ln for ln in cp.stderr.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and " — " in errors[0], cp.stderr
    assert cp.stdout.strip() == ""


def _nonroot_prefix():
    # setpriv is util-linux, an Essential package on Debian: missing means a broken setup, not a skip
    assert shutil.which("setpriv"), "setpriv (util-linux) is needed to run the recorder as an unprivileged user"
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _ro_prefix(store):
    assert shutil.which("unshare"), "unshare (util-linux) is needed for the read-only store test"
    if os.geteuid() != 0:
        require_or_skip("a private mount namespace with a read-only bind mount needs root")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    assert probe.returncode == 0, f"root cannot create a mount namespace here: {probe.stderr.decode().strip()}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"', str(store)]


@live
@pytest.mark.parametrize("how", ["read_only_mount", "non_root_user", "rlimit_fsize"])
def test_unwritable_store_fails_cleanly(how):
    # not under tmp_path: its parents are 0700, which a non-root user cannot even traverse
    base = Path(tempfile.mkdtemp(prefix="memsnap-ro-"))
    try:
        os.chmod(base, 0o755)
        store = base / "store"
        first = run(store)
        assert first.returncode == 0, first.stderr
        os.chmod(store, 0o755)
        kw = {}
        if how == "read_only_mount":
            _fake_crash_leftover(store)  # recovery has to write too
            prefix = _ro_prefix(store)
        elif how == "non_root_user":
            _fake_crash_leftover(store)
            prefix = _nonroot_prefix()
        else:
            prefix = ()
            kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        before = _digest(store)
        cp = run(store, prefix=prefix, **kw)
        _assert_clean_failure(cp)
        assert _digest(store) == before  # earlier snapshots (and everything else) untouched
        sid = first.stdout.strip()
        assert committed(store) == {sid}
        check_snapshot(store, sid)
    finally:
        shutil.rmtree(base)


# --- the marker's create→flock window, deterministically (no root, no /proc: pure store functions) ---

@pytest.mark.parametrize("open_by_other", [False, True], ids=["creator_dead", "creator_alive"])
def test_recovery_removes_an_empty_unlocked_marker_at_once(tmp_path, open_by_other):
    """A recorder SIGKILLed between creating its marker and flock-ing it leaves an empty, unlocked marker
    (CI hit this: the next recorder left it for a minute).  Recovery removes it, and its staged files,
    at once; a creator that was merely slow is covered by the next test."""
    from recorder import store as st
    store = tmp_path / "store"
    sid = "20000101T000000000000Z-deadbeef-2"
    (store / INPROGRESS).mkdir(parents=True)
    marker = store / INPROGRESS / f"{sid}.lock"
    marker.write_bytes(b"")
    fd = os.open(marker, os.O_RDONLY) if open_by_other else None  # open, not locked: like a slow creator
    try:
        assert st.recover(str(store)) == [sid]
        assert not marker.exists()
    finally:
        if fd is not None:
            os.close(fd)


def test_marker_taken_again_when_recovery_removed_it_before_the_flock(tmp_path, monkeypatch):
    """The other side of the window: recovery runs between our create and our flock and unlinks the marker.
    The writer notices (the locked file has no link) and creates the marker again, so a capture never runs
    without a marker that recovery can see and respects."""
    from recorder import store as st
    store = tmp_path / "store"
    real_flock = st.fcntl.flock
    recovered = []

    def flock_after_a_recovery(fd, op):
        if not recovered:  # first flock call: the writer's, right after its O_EXCL create
            recovered.append(None)  # recovery flocks too
            recovered[0] = st.recover(str(store))
        return real_flock(fd, op)

    monkeypatch.setattr(st.fcntl, "flock", flock_after_a_recovery)
    sid = "20000101T000000000000Z-deadbeef-3"
    w = st.SnapshotWriter(str(store), "h", sid, "2000-01-01")
    monkeypatch.setattr(st.fcntl, "flock", real_flock)
    try:
        assert recovered == [[sid]]  # recovery did remove the first, empty marker
        assert markers(store) == {sid}
        assert os.fstat(w._marker_fd).st_nlink == 1  # the writer holds the marker that exists now
        assert b'"pid"' in (store / INPROGRESS / f"{sid}.lock").read_bytes()
        assert st.recover(str(store)) == []  # and recovery respects it: locked
        assert markers(store) == {sid}
    finally:
        w.abort()
    assert markers(store) == set()
