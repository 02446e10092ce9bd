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


# ------------------------------------------------------------------ fuzzing smemcap archives and directories

import io  # noqa: E402
import shutil  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pyarrow.parquet as pq  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from common.errors import MemsnapError  # noqa: E402
from recorder.smemcap import import_smemcap  # noqa: E402

DATA = Path(__file__).parent / "data"
REAL = {"smaps": (DATA / "cat.smaps").read_bytes(), "stat": (DATA / "cat.stat").read_bytes(),
        "cmdline": (DATA / "cat.cmdline").read_bytes(), "meminfo": (DATA / "meminfo").read_bytes(),
        "version": b"Linux version 6.18.0 (x@y) #1 SMP\n"}
# what a member's name can be: the real layout, its proc/ and ./ variants, and names smem never writes
PIDS = st.sampled_from(["42", "1", "0", "007", "99999999999999999999", "\u00b2", "\u0663", "-3", "4x", ""])
NAMES = st.one_of(
    st.sampled_from(["meminfo", "version", "proc/meminfo", "./meminfo", "/meminfo", "meminfo/x", "junk"]),
    st.builds(lambda pre, pid, f: pre + pid + f, st.sampled_from(["", "proc/", "./", "./proc/", "/"]), PIDS,
              st.sampled_from(["", "/", "/smaps", "/stat", "/cmdline", "/smaps/x", "/other"])))


class Blob(bytes):
    """File content with a short repr (hypothesis prints failing examples)."""

    def __repr__(self):
        return f"Blob({len(self)} bytes: {bytes(self[:24])!r}...{bytes(self[-24:])!r})"


@st.composite
def contents(draw, name: str) -> bytes:
    """The real file for that name (possibly cut or spliced), or junk."""
    base = next((v for k, v in REAL.items() if name.endswith(k)), b"")
    kind = draw(st.sampled_from(["real", "real", "cut", "splice", "junk", "empty"]))
    if kind == "real":
        return Blob(base)
    if kind == "cut":
        return Blob(base[:draw(st.integers(0, len(base)))])
    if kind == "splice":
        i = draw(st.integers(0, len(base)))
        return Blob(base[:i] + draw(st.sampled_from([b"\n", b":", b"9" * 40, b"\xff\xfe", b"\0", b"kB", b" -1",
                                                     b"Rss: x kB\n", b"\n00400000-00401000 r-xp 0 0:0 0\n"]))
                    + base[i:])
    if kind == "junk":
        return Blob(draw(st.binary(max_size=200)))
    return Blob(b"")


@st.composite
def members(draw):
    out = []
    if draw(st.booleans()):  # most captures should get past load(): a real skeleton, then noise
        out += [("meminfo", Blob(REAL["meminfo"])), ("42", None), ("42/smaps", Blob(REAL["smaps"]))]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(NAMES)
        out.append((name, None if draw(st.integers(0, 4)) == 0 else draw(contents(name))))
    return out


def _outcome(path: str, store: Path):
    """import_smemcap either imports a readable snapshot or raises memsnap's documented error, and then
    has written nothing."""
    try:
        summary = import_smemcap(path, str(store), host="fuzz")
    except MemsnapError as e:
        assert str(e)
        leftovers = [p for p in store.rglob("*") if p.is_file()] if store.exists() else []
        assert leftovers == [], leftovers
        return "error"
    sid = summary["snapshot_id"]
    procs = pq.read_table(next(store.glob(f"processes/host=*/date=*/{sid}.parquet")))
    maps = pq.read_table(next(store.glob(f"mappings/host=*/date=*/{sid}.parquet")))
    assert procs.num_rows == summary["processes"] and maps.num_rows == summary["mappings"]
    assert next(store.glob(f"snapshots/host=*/date=*/{sid}.parquet"))
    return "ok"


FUZZ = settings(max_examples=int(os.environ.get("MEMSNAP_FUZZ_EXAMPLES", 120)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


@FUZZ
@given(ms=members(), compress=st.sampled_from(["", "gz", "bz2", "xz"]), damage=st.sampled_from(["none", "cut", "flip"]),
       where=st.floats(0, 1))
def test_fuzz_smemcap_archive(ms, compress, damage, where):
    work = Path(tempfile.mkdtemp(prefix="memsnap-fuzz-"))
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:" + compress) as tar:
            for name, body in ms:
                ti = tarfile.TarInfo(name or "x")
                if body is None:
                    ti.type, ti.uid, ti.gid, ti.uname = tarfile.DIRTYPE, 1000, 1000, "fuzz"
                    tar.addfile(ti)
                else:
                    ti.size = len(body)
                    tar.addfile(ti, io.BytesIO(body))
        blob = bytearray(buf.getvalue())
        i = int(where * (len(blob) - 1))
        if damage == "cut":
            blob = blob[:i]
        elif damage == "flip" and blob:
            blob[i] ^= 0xFF
        (work / "c.tar").write_bytes(bytes(blob))
        _outcome(str(work / "c.tar"), work / "store")
    finally:
        shutil.rmtree(work)


@FUZZ
@given(ms=members(), with_proc=st.booleans())
def test_fuzz_smemcap_directory(ms, with_proc):
    work = Path(tempfile.mkdtemp(prefix="memsnap-fuzz-"))
    try:
        base = work / "cap" / "proc" if with_proc else work / "cap"
        base.mkdir(parents=True)
        for name, body in ms:
            rel = name.lstrip("/").removeprefix("./").removeprefix("proc/").removeprefix("./")
            if not rel or ".." in rel.split("/"):
                continue
            p = base / rel
            try:
                if body is None:
                    p.mkdir(parents=True, exist_ok=True)
                else:
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_bytes(body)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                continue  # a file where the layout wants a directory, or the reverse: keep what was made
        _outcome(str(work / "cap"), work / "store")
    finally:
        shutil.rmtree(work)


SMAPS_MAPPINGS = sum(1 for ln in REAL["smaps"].decode("utf-8", "replace").splitlines()
                     if __import__("re").match(r"^[0-9a-f]+-[0-9a-f]+ ", ln))


@FUZZ
@given(pids=st.lists(st.integers(1, 4_000_000), min_size=1, max_size=5, unique=True),
       compress=st.sampled_from([None, "", "gz", "bz2", "xz"]), prefix=st.sampled_from(["", "proc/", "./"]),
       version=st.booleans())
def test_intact_captures_import_with_their_counts(pids, compress, prefix, version):
    """The fuzz tests above accept "error" as an outcome, so an importer that rejects everything would pass
    them: every intact capture (any number of processes, any compression, with or without proc/ or ./,
    a tarball or a directory) must import, with one process per pid and every mapping of its smaps."""
    work = Path(tempfile.mkdtemp(prefix="memsnap-intact-"))
    try:
        files = [("meminfo", REAL["meminfo"])] + ([("version", REAL["version"])] if version else [])
        for pid in pids:
            files += [(f"{pid}/{n}", REAL[n]) for n in ("smaps", "stat", "cmdline")]
        if compress is None:  # a directory, as `smemcap` output unpacked or a copy of /proc
            for name, body in files:
                p = work / "cap" / prefix / name
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(body)
            path = work / "cap"
        else:
            path = work / "c.tar"
            with tarfile.open(path, mode="w:" + compress) as tar:
                for name, body in files:
                    ti = tarfile.TarInfo(prefix + name)
                    ti.size = len(body)
                    tar.addfile(ti, io.BytesIO(body))
        assert _outcome(str(path), work / "store") == "ok"
        summary = import_smemcap(str(path), str(work / "again"), host="intact")
        assert summary["processes"] == len(pids) and summary["mappings"] == len(pids) * SMAPS_MAPPINGS > 0
    finally:
        shutil.rmtree(work)
