"""Pure /proc parsers on real captured text (tests/data/, made by tests/data/capture.py), malformed input,
fuzzing, and a whole capture from a fake procfs tree.

Expected values are derived from the input text itself (an independent, naive reading of it) or from
another kernel file describing the same thing (smaps vs smaps_rollup vs maps, stat vs status).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import read_table
from recorder.capture import Options, Recorder
from common.errors import ParseError
from recorder.procfs import (PF_KTHREAD, merge_ranges, parse_cgroup, parse_cmdline, parse_maps,
                             parse_maps_header, parse_meminfo, parse_smaps, parse_smaps_columns, parse_smaps_rollup,
                             parse_stat, parse_status, parse_sysfs_choice)
from schema import MAPPING_ONLY_FIELDS, ROLLUP_ONLY_KB_FIELDS, SMAPS_KB_FIELDS, STATUS_FIELDS

DATA = Path(__file__).resolve().parent / "data"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


# ------------------------------------------------------------------ naive, independent readings of the text

HEADER = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+) ?\s*(.*)$")


def naive_header(line: str) -> dict:
    m = HEADER.match(line)
    assert m, line
    return {"start_addr": int(m[1], 16), "end_addr": int(m[2], 16), "perms": m[3], "offset_bytes": int(m[4], 16),
            "dev": m[5], "inode": int(m[6]), "path": m[7] or None}


def naive_smaps(text: str) -> list[tuple[dict, dict[str, str]]]:
    out = []
    for line in text.split("\n"):
        if not line:
            continue
        if HEADER.match(line) and not line[0].isupper():
            out.append((naive_header(line), {}))
        else:
            k, v = line.split(":", 1)
            out[-1][1][k] = v.strip()
    return out


def kv(text: str) -> dict[str, str]:
    return {ln.split(":", 1)[0]: ln.split(":", 1)[1].strip() for ln in text.splitlines() if ":" in ln}


HDR_KEYS = ("start_addr", "end_addr", "perms", "offset_bytes", "dev", "inode", "path")


# ------------------------------------------------------------------ maps / smaps / smaps_rollup on real text

def test_parse_maps_matches_text():
    text = data("cat.maps").decode()
    got = parse_maps(text, "/proc/1/maps")
    lines = [ln for ln in text.split("\n") if ln]
    assert len(got) == len(lines) > 10
    for rec, line in zip(got, lines):
        assert rec == naive_header(line)
    assert any(r["path"] is None for r in got) and any(r["path"] == "[stack]" for r in got)
    assert parse_maps(data("cat.maps")) == got  # bytes and str give the same result
    assert parse_maps(data("kthread.maps")) == []  # kernel threads: empty maps


def test_parse_smaps_matches_text_and_maps():
    text = data("cat.smaps").decode()
    got = parse_smaps(text, "/proc/1/smaps")
    naive = naive_smaps(text)
    assert len(got) == len(naive) > 10
    kb_cols = dict(MAPPING_ONLY_FIELDS + SMAPS_KB_FIELDS)
    for rec, (hdr, fields) in zip(got, naive):
        assert {k: rec[k] for k in HDR_KEYS} == hdr
        assert rec["vm_flags"] == fields["VmFlags"]
        assert rec["size_kb"] * 1024 == rec["end_addr"] - rec["start_addr"]
        assert rec["thp_eligible"] == int(fields["THPeligible"])
        for key, col in kb_cols.items():
            assert rec[col] == int(fields[key].split()[0]), (key, rec)
        assert "other_kb" not in rec  # every field of this kernel is known
    # the process was stopped while captured: smaps headers are exactly maps
    assert [{k: r[k] for k in HDR_KEYS} for r in got] == parse_maps(data("cat.maps"))


def test_smaps_entries_add_up_to_smaps_rollup():
    entries = parse_smaps(data("cat.smaps"))
    rollup = parse_smaps_rollup(data("cat.smaps_rollup"), "/proc/1/smaps_rollup")
    for col in ("rss_kb", "shared_clean_kb", "shared_dirty_kb", "private_clean_kb", "private_dirty_kb",
                "anonymous_kb", "swap_kb", "referenced_kb"):
        assert rollup["rollup_" + col] == sum(e[col] for e in entries), col
    # smaps floors PSS per mapping, smaps_rollup once per process
    assert 0 <= rollup["rollup_pss_kb"] - sum(e["pss_kb"] for e in entries) < len(entries)
    assert rollup["rollup_pss_kb"] == (rollup["rollup_pss_anon_kb"] + rollup["rollup_pss_file_kb"]
                                       + rollup["rollup_pss_shmem_kb"])


def test_parse_smaps_rollup_matches_text_and_keeps_unknown_fields():
    text = data("cat.smaps_rollup").decode()
    got = parse_smaps_rollup(text + "NewField_2030:   17 kB\n")
    fields = kv("\n".join(text.split("\n")[1:]))
    for key, col in SMAPS_KB_FIELDS + ROLLUP_ONLY_KB_FIELDS:
        assert got["rollup_" + col] == int(fields[key].split()[0])
    assert got["rollup_other_kb"] == {"NewField_2030": 17}
    smaps = parse_smaps(text.split("\n")[0] + "\nUnknownThing:  3 kB\nVmFlags: rd\n")
    assert smaps[0]["other_kb"] == {"UnknownThing": 3}


def test_paths_with_odd_bytes_and_line_separators():
    # the kernel escapes only '\n' in file names (seq_file_path); \r, \x0b, \x1c, U+2028 and
    # non-UTF-8 bytes appear raw and must neither split the line nor produce unstorable text
    name = b"/tmp/a b\rc\x0bd\x1ce\xe2\x80\xa8f\xe9g (deleted)"
    line = b"7f0000000000-7f0000002000 r--s 00000000 fe:00 1234                       " + name + b"\n"
    smaps = line + b"Size:                  8 kB\nRss:                   4 kB\nVmFlags: rd sh mr mw me ms sd\n"
    for recs in (parse_maps(line + line), parse_smaps(smaps + smaps)):
        assert len(recs) == 2
        path = recs[0]["path"]
        assert path.startswith("/tmp/a b\rc\x0bd\x1ce\u2028f") and path.endswith("g (deleted)")
        path.encode("utf-8")  # valid UTF-8 (no lone surrogates): Arrow can store it
        assert "\\xe9" in path
    assert parse_smaps(smaps)[0]["rss_kb"] == 4


# ------------------------------------------------------------------ stat / status

def test_parse_stat_matches_text():
    text = data("cat.stat").decode()
    f = text.split()
    got = parse_stat(text, "/proc/1/stat")
    assert got == {"pid": int(f[0]), "comm": f[1][1:-1], "state": f[2], "ppid": int(f[3]), "flags": int(f[8]),
                   "threads": int(f[19]), "starttime_ticks": int(f[21])}


@pytest.mark.parametrize("which", ["odd", "zombie", "kthread", "cat"])
def test_parse_stat_agrees_with_status(which):
    """comm may contain spaces, '(' and ')': stat and status (the kernel) must agree."""
    st = parse_stat(data(f"{which}.stat"), f"{which}.stat")
    status = parse_status(data(f"{which}.status"), f"{which}.status")
    raw = kv(data(f"{which}.status").decode())
    assert st["comm"] == status["name"] == raw["Name"]
    assert st["pid"] == int(raw["Pid"]) and st["ppid"] == int(raw["PPid"])
    assert st["state"] == status["state"] == raw["State"][0]
    assert st["threads"] == status["threads"] == int(raw["Threads"])
    assert bool(st["flags"] & PF_KTHREAD) == status["kthread"] == (raw["Kthread"] == "1")
    if which == "odd":
        assert ")" in st["comm"] and " " in st["comm"] and "(" in st["comm"]
    if which == "zombie":
        assert st["state"] == "Z"
    if which == "kthread":
        assert st["flags"] & PF_KTHREAD


def test_parse_status_matches_text():
    text = data("cat.status").decode()
    raw = kv(text)
    got = parse_status(text)
    for key, col in STATUS_FIELDS:
        assert got[col] == int(raw[key].split()[0]), key
    uids, gids = raw["Uid"].split(), raw["Gid"].split()
    assert (got["uid"], got["euid"], got["gid"]) == (int(uids[0]), int(uids[1]), int(gids[0]))
    assert got["threads"] == int(raw["Threads"]) and got["name"] == raw["Name"]
    # kernel threads and zombies have no Vm* lines: missing, not 0
    kt = parse_status(data("kthread.status"))
    assert "vm_rss_kb" not in kt and kt["kthread"] is True


# ------------------------------------------------------------------ meminfo / cgroup / cmdline / misc

def test_parse_meminfo_matches_text():
    text = data("meminfo").decode()
    got = parse_meminfo(text)
    lines = [ln for ln in text.split("\n") if ln]
    assert len(got) == len(lines) > 20
    for (key, kb, v), line in zip(got, lines):
        k, rest = line.split(":")
        parts = rest.split()
        assert key == k and v == int(parts[0])
        assert kb == (int(parts[0]) if parts[1:] == ["kB"] else None)
    assert any(kb is None for _, kb, _ in got)  # HugePages_* counters are pages, not kB


def test_parse_cgroup_v2_and_v1():
    text = data("cat.cgroup").decode()
    v2 = [ln for ln in text.split("\n") if ln.startswith("0::")]
    v1 = [ln for ln in text.split("\n") if ln and not ln.startswith("0::")]
    assert parse_cgroup(text) == v2[0][3:]
    assert parse_cgroup("0::/system.slice/x y.service\n") == "/system.slice/x y.service"
    if v1:
        assert parse_cgroup("\n".join(v1) + "\n") == "\n".join(v1)
    assert parse_cgroup("12:memory:/a\n3:cpu,cpuacct:/b\n") == "12:memory:/a\n3:cpu,cpuacct:/b"
    assert parse_cgroup(b"") is None


def test_parse_cmdline():
    raw = data("cat.cmdline")
    assert parse_cmdline(raw) == " ".join(a.decode() for a in raw.split(b"\0") if a)
    assert parse_cmdline(b"") == ""
    assert parse_cmdline(raw.decode()) == parse_cmdline(raw)
    odd = parse_cmdline(b"prog\0\xff\xfe\0x\0")
    odd.encode("utf-8")
    assert odd == "prog \\xff\\xfe x"


def test_parse_sysfs_choice():
    assert parse_sysfs_choice("always [madvise] never\n") == "madvise"
    assert parse_sysfs_choice("2\n") == "2"


def test_merge_ranges_on_maps():
    recs = parse_maps(data("cat.maps"))
    ranges = [(r["start_addr"], r["end_addr"]) for r in recs]
    merged = merge_ranges(ranges, 4096)
    pages = set()
    for s, e in ranges:
        pages.update(range(s // 4096, e // 4096))
    assert set().union(*(range(s, e) for s, e in merged)) == pages
    assert len(merged) < len(ranges)  # adjacent VMAs (one file's segments) merge


@settings(deadline=None)  # a property, not a timing target: speed is checked by benchmarks (design.md)
@given(st.lists(st.tuples(st.integers(0, 1 << 24), st.integers(0, 5000)), max_size=40),
       st.sampled_from([1, 64, 4096]))
def test_merge_ranges_properties(spans, page_size):
    ranges = [(s, s + n) for s, n in spans]
    merged = merge_ranges(ranges, page_size)
    want = set()
    for s, e in ranges:
        want.update(range(s // page_size, -(-e // page_size)))
    got = set()
    for s, e in merged:
        assert s < e
        got.update(range(s, e))
    assert got == want
    for (s1, e1), (s2, e2) in zip(merged, merged[1:]):
        assert e1 < s2  # sorted, disjoint, not even adjacent


# ------------------------------------------------------------------ malformed input: ParseError with path:line

MALFORMED = [
    # parser, fixture, line number (1-based) to replace, replacement
    (parse_maps, "cat.maps", 3, "563fa690e000-zz r--p 00000000 fe:00 1 /x"),
    (parse_maps, "cat.maps", 5, "563fa690e000-563fa6910000 r--p"),
    (parse_maps, "cat.maps", 2, "563fa690e000-563fa6910000 r-p 00000000 fe:00 1 /x"),
    (parse_maps, "cat.maps", 4, "563fa6910000-563fa690e000 r--p 00000000 fe:00 1 /x"),  # end < start
    (parse_smaps, "cat.smaps", 7, "Pss_Dirty:          x kB"),
    (parse_smaps, "cat.smaps", 12, "Referenced"),
    (parse_smaps, "cat.smaps", 1, "Rss:   4 kB"),  # field before the first header
    (parse_smaps, "cat.smaps", 27, "zz-yy ---p"),
    (parse_smaps_rollup, "cat.smaps_rollup", 1, "rollup"),
    (parse_smaps_rollup, "cat.smaps_rollup", 4, "Pss_Dirty:   many kB"),
    (parse_smaps_rollup, "cat.smaps_rollup", 6, "Pss_File"),
    (parse_stat, "cat.stat", 1, "123 cat R 1 2 3"),
    (parse_stat, "cat.stat", 1, "123 (cat) R 1 2 3"),
    (parse_stat, "cat.stat", 1, "x (cat) R " + " ".join(["1"] * 40)),
    (parse_status, "cat.status", 20, "VmRSS:\t    lots kB"),
    (parse_status, "cat.status", 9, "Uid:"),
    (parse_status, "cat.status", 3, "no colon here"),
    (parse_meminfo, "meminfo", 2, "MemFree:       12 MB"),
    (parse_meminfo, "meminfo", 5, "Cached:"),
    (parse_meminfo, "meminfo", 7, "Active 12 kB"),
    (parse_cgroup, "cat.cgroup", 4, "garbage"),
]


@pytest.mark.parametrize("parser,fixture,line_no,bad", MALFORMED,
                         ids=[f"{p.__name__}-{f}-{n}" for p, f, n, _ in MALFORMED])
def test_malformed_input_raises_parse_error_with_path_and_line(parser, fixture, line_no, bad):
    lines = data(fixture).decode().split("\n")
    assert len(lines) >= line_no
    good_path = f"/fake/{fixture}"
    parser(data(fixture).decode(), good_path)  # the unmodified capture parses
    lines[line_no - 1] = bad
    path = f"/proc/4242/{fixture.split('.')[-1]}"
    with pytest.raises(ParseError) as ei:
        parser("\n".join(lines), path)
    msg = str(ei.value)
    assert msg.startswith(f"{path}:{line_no}:"), msg
    assert ei.value.path == path and ei.value.line_no == line_no


def test_empty_rollup_is_a_parse_error():
    with pytest.raises(ParseError, match=r"^/proc/9/smaps_rollup: empty"):
        parse_smaps_rollup(b"", "/proc/9/smaps_rollup")


# ------------------------------------------------------------------ fuzzing: return or ParseError, nothing else

PARSERS = [parse_maps, parse_smaps, parse_smaps_rollup, parse_stat, parse_status, parse_meminfo, parse_cgroup]
FIXTURE_OF = {parse_maps: "cat.maps", parse_smaps: "cat.smaps", parse_smaps_rollup: "cat.smaps_rollup",
              parse_stat: "odd.stat", parse_status: "cat.status", parse_meminfo: "meminfo",
              parse_cgroup: "cat.cgroup"}


def _call(parser, data_):
    try:
        out = parser(data_, "/proc/77/x")
    except ParseError as e:
        assert "/proc/77/x" in str(e)
        return None
    return out


def _storable(obj):
    """Every string a parser returns must be valid UTF-8 (storable in Arrow)."""
    if isinstance(obj, str):
        obj.encode("utf-8")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _storable(k)
            _storable(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _storable(v)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(blob=st.one_of(st.binary(max_size=400), st.text(max_size=400)))
def test_fuzz_arbitrary_input(parser, blob):
    _storable(_call(parser, blob))


@st.composite
def mutated(draw, fixture):
    """Real captured text with a few lines replaced, duplicated, truncated or spliced with junk."""
    lines = data(fixture).split(b"\n")[:60]
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["junk", "cut", "dup", "splice", "drop"]))
        if op == "junk":
            lines[i] = draw(st.binary(max_size=40))
        elif op == "cut":
            lines[i] = lines[i][:draw(st.integers(0, max(0, len(lines[i]))))]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "splice":
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(st.sampled_from(
                [b" ", b":", b"(", b")", b"-", b"\r", b"\xe2\x80\xa8", b"\xff", b"\0", b"9" * 30, b"-1", b"0x1f",
                 b"\t", b"kB", b"_"])) + lines[i][j:]
        elif len(lines) > 1:
            del lines[i]
    return b"\n".join(lines)


@pytest.mark.parametrize("parser", PARSERS, ids=lambda p: p.__name__)
@FUZZ
@given(st.data())
def test_fuzz_mutated_real_text(parser, data_):
    blob = data_.draw(mutated(FIXTURE_OF[parser]))
    _storable(_call(parser, blob))
    _storable(_call(parser, blob.decode("utf-8", "surrogateescape")))


@FUZZ
@given(st.data())
def test_smaps_fast_path_reads_what_the_general_code_reads(data_):
    """parse_smaps reads the kernel's padded "Key:<spaces>value kB" lines by position; on mutated real
    smaps (values with '+', '_', tabs, junk, cut lines, ...) it must give exactly the general code's
    result or the same ParseError."""
    from recorder import procfs
    blob = data_.draw(mutated("cat.smaps"))

    def outcome():
        try:
            return parse_smaps(blob, "/proc/77/smaps")
        except ParseError as e:
            return ("error", str(e))

    fast = outcome()
    saved = procfs._SMAPS_KB_PREFIX, procfs._SMAPS_INT_PREFIX
    procfs._SMAPS_KB_PREFIX, procfs._SMAPS_INT_PREFIX = {}, {}
    try:
        general = outcome()
    finally:
        procfs._SMAPS_KB_PREFIX, procfs._SMAPS_INT_PREFIX = saved
    assert fast == general


def test_smaps_fast_path_covers_every_field_of_this_kernel():
    """Every kB/int field of the real fixture is read by the fast path (it is not dead code)."""
    from recorder import procfs
    for line in data("cat.smaps").decode().split("\n"):
        if line[:1].isupper() and not line.startswith("VmFlags"):
            assert line[:16] in procfs._SMAPS_KB_PREFIX or line[:16] in procfs._SMAPS_INT_PREFIX, line


def _rows_of_columns(n, cols):
    """parse_smaps_columns' columns as parse_smaps-like rows (None values left out on both sides)."""
    return [{k: v[i] for k, v in cols.items() if v[i] is not None} for i in range(n)]


def _smaps_outcome(parser, blob):
    try:
        out = parser(blob, "/proc/77/smaps")
    except ParseError as e:
        return ("error", str(e))
    if isinstance(out, tuple):
        return _rows_of_columns(*out)
    return [{k: v for k, v in r.items() if v is not None} for r in out]


@st.composite
def mutated_in_place(draw, fixture):
    """Real captured text with values changed but the lines kept where they are (so that every entry
    keeps its shape and the column-wise reading is taken): a line's bytes spliced, cut or replaced by
    junk, the same edit in every entry (a whole column) or in one line."""
    lines = data(fixture).split(b"\n")
    stride = next(i for i in range(1, len(lines)) if lines[i][:1].islower() or lines[i][:1].isdigit())
    for _ in range(draw(st.integers(1, 3))):
        j = draw(st.integers(0, stride - 1))
        rows = range(j, len(lines) - 1, stride) if draw(st.booleans()) else [draw(st.integers(0, len(lines) - 2))]
        op = draw(st.sampled_from(["splice", "cut", "junk", "pad"]))
        pos = draw(st.integers(0, 30))
        ins = draw(st.sampled_from([b" ", b"  ", b":", b"-", b"\t", b"\r", b"\x1c", b"\xe2\x80\xa8", b"\xff", b"0",
                                    b"9" * 21, b"+", b"-1", b"_", b"kB", b" kB", b"A", b"f", b"Rss:", b"VmFlags:"]))
        junk = draw(st.binary(max_size=30))
        for i in rows:
            ln = lines[i]
            if op == "splice":
                lines[i] = ln[:pos] + ins + ln[pos:]
            elif op == "cut":
                lines[i] = ln[:len(ln) - pos % (len(ln) + 1)]
            elif op == "junk":
                lines[i] = junk
            else:
                lines[i] = ln + ins
    return b"\n".join(lines)


@FUZZ
@given(st.data())
def test_smaps_columns_read_what_parse_smaps_reads(data_):
    """parse_smaps_columns (each field of every entry at once, the maps headers by one regex) gives exactly
    parse_smaps' values, or its ParseError, on real smaps edited in place (same shape: the column-wise
    code runs) or mutated (other shapes: the line-by-line code decides); also with parse_smaps' own fast
    path off, i.e. against the general code."""
    from recorder import procfs
    blob = data_.draw(st.one_of(mutated_in_place("cat.smaps"), mutated("cat.smaps")))
    if data_.draw(st.booleans()):
        blob = blob.decode("utf-8", "surrogateescape")
    cols = _smaps_outcome(parse_smaps_columns, blob)
    assert cols == _smaps_outcome(parse_smaps, blob)
    saved = procfs._SMAPS_KB_PREFIX, procfs._SMAPS_INT_PREFIX
    procfs._SMAPS_KB_PREFIX, procfs._SMAPS_INT_PREFIX = {}, {}
    try:
        assert cols == _smaps_outcome(parse_smaps, blob)
    finally:
        procfs._SMAPS_KB_PREFIX, procfs._SMAPS_INT_PREFIX = saved


def test_smaps_columns_take_the_column_wise_path_on_real_smaps():
    """The column-wise reading (and its header regex) is what runs on this kernel's smaps (not dead
    code), including unknown fields and fields in another layout, which it reads column by column."""
    from recorder import procfs
    text = data("cat.smaps").decode()
    lines = procfs._lines(text)
    n, cols = procfs._smaps_columns_fast(lines, "/proc/1/smaps")
    assert n > 10 and _rows_of_columns(n, cols) == _smaps_outcome(parse_smaps, text)
    stride = len(lines) // n
    # a new field in every entry (a later kernel), and a known one padded otherwise
    odd = []
    for i, ln in enumerate(lines):
        odd.append(ln.replace("Rss:            ", "Rss:\t") if ln.startswith("Rss:") else ln)
        if i % stride == stride - 1:
            odd.append(f"NewField_2030:  {i} kB")
    got = procfs._smaps_columns_fast(odd, "/proc/1/smaps")
    assert got is not None and "other_kb" in got[1]
    assert _rows_of_columns(*got) == _smaps_outcome(parse_smaps, "\n".join(odd) + "\n")
    # the fast regex reads every header of the real maps file
    maps_lines = procfs._lines(data("cat.maps").decode())
    assert procfs._maps_header_columns(maps_lines) is not None


def _column_wise(text: str):
    """What parse_smaps_columns read before the whole-file regex: the column-wise code, else the line code."""
    from recorder import procfs
    got = procfs._smaps_columns_fast(procfs._lines(text), "/proc/77/smaps")
    return got if got is not None else procfs.rows_to_columns(parse_smaps(text, "/proc/77/smaps"))


def test_smaps_regex_reads_real_smaps_as_the_column_wise_code():
    """The whole-file regex (recorder.procfs._smaps_columns_regex) is what runs on the kernel's smaps (not
    dead code), and gives the column-wise code's columns, in the same order, with the same values and types."""
    from recorder import procfs
    text = data("cat.smaps").decode()
    got = procfs._smaps_columns_regex(text)
    assert got is not None and got[0] > 10
    want = _column_wise(text)
    assert got[0] == want[0] and list(got[1].items()) == list(want[1].items())
    assert [type(v) for c in got[1].values() for v in c] == [type(v) for c in want[1].values() for v in c]
    # a path starting with Unicode white space (str.split's, which parse_maps_header uses: it is padding)
    first, rest = text.split("\n", 1)
    for ws in ("\u2028", "\x85", "\xa0", "\u3000", "\x1c"):
        odd = first.rsplit(" ", 1)[0] + " " + ws + "x\n" + rest
        got, want = procfs._smaps_columns_regex(odd), _column_wise(odd)
        assert got is None or list(got[1].items()) == list(want[1].items()), repr(ws)


def test_smaps_regex_on_every_smaps_of_this_machine():
    """Every readable /proc/<pid>/smaps, read once and parsed three ways: the regex, the column-wise code and
    the line-by-line parser give the same columns (the kernel is the oracle of the form)."""
    from recorder import procfs
    seen = taken = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/smaps", "rb") as f:
                blob = f.read()
        except OSError:
            continue  # gone, or denied to us: nothing to compare
        text = procfs._text(blob)
        seen += 1
        got = procfs._smaps_columns_regex(text)
        want = _column_wise(text)
        if got is not None:
            taken += 1
            assert got[0] == want[0] and list(got[1].items()) == list(want[1].items()), name
        assert _rows_of_columns(*parse_smaps_columns(blob)) == _smaps_outcome(parse_smaps, text), name
    assert seen and taken, (seen, taken)  # at least this process's own smaps


@st.composite
def kernel_form(draw, fixture):
    """Real smaps with values changed the way the kernel could print them: a kB or int field's number (any
    size), a header's addresses, offset, inode or path; the form kept, so the whole-file regex takes it."""
    lines = data(fixture).decode().split("\n")
    for _ in range(draw(st.integers(1, 8))):
        i = draw(st.integers(0, len(lines) - 2))
        ln = lines[i]
        key, sep, rest = ln.partition(":")
        if sep and key[:1].isupper() and key != "VmFlags":
            n = draw(st.integers(0, 1 << 70))
            lines[i] = ln[:16] + str(n).rjust(8) + (" kB" if ln.endswith(" kB") else "")
        elif not key[:1].isupper():
            f = ln.split(None, 5)
            lo = draw(st.integers(0, (1 << 64) - 1))
            hi = draw(st.integers(lo, (1 << 64) - 1))
            path = draw(st.sampled_from(["", "[heap]", "/usr/lib/x y.so", "/a (deleted)", "  x", "\u2028z"]))
            lines[i] = (f"{lo:08x}-{hi:08x} {f[1]} {draw(st.integers(0, (1 << 64) - 1)):08x} {f[3]} "
                        f"{draw(st.integers(0, (1 << 64) - 1))}" + (" " * 10 + path if path else " "))
    return "\n".join(lines)


@FUZZ
@given(st.data())
def test_smaps_regex_reads_what_the_column_wise_code_reads(data_):
    """On real smaps edited in place or mutated: where the regex takes the text, the column-wise code reads
    the same columns in the same order (and the line parser does not fail); where it does not, it says so
    (None) and the column-wise code decides."""
    from recorder import procfs
    blob = data_.draw(st.one_of(kernel_form("cat.smaps"), mutated_in_place("cat.smaps"), mutated("cat.smaps")))
    text = procfs._text(blob)
    got = procfs._smaps_columns_regex(text)
    if got is not None:
        want = _column_wise(text)
        assert got[0] == want[0] and list(got[1].items()) == list(want[1].items())


_MAPS_EDITS = [" ", "  ", "\t", "\x1c", "\u2028", "\x85", "\xa0", "-", ":", "0", "9" * 21, "A", "F", "g", "x", "\xe9",
               "ffffffffffffffff0", "18446744073709551616"]


@FUZZ
@given(st.data())
def test_maps_header_regex_reads_what_parse_maps_header_reads(data_):
    """Where the header regex takes a maps line (real ones, edited: characters inserted, replaced or
    deleted), it reads exactly what parse_maps_header reads (which must then not fail); where it does
    not, parse_maps_header decides."""
    from recorder import procfs
    real = procfs._lines(data("cat.maps").decode())
    line = data_.draw(st.sampled_from(real + ["7f2f95c1a000-7f2f95c26000 rw-p 00000000 00:00 0 ",
                                              "55a09271f000-55a09272a000 rw-p 00000000 00:00 0"]))
    for _ in range(data_.draw(st.integers(0, 3))):
        i = data_.draw(st.integers(0, len(line)))
        op = data_.draw(st.sampled_from(["insert", "replace", "delete"]))
        ins = data_.draw(st.sampled_from(_MAPS_EDITS))
        line = line[:i] + (ins if op != "delete" else "") + line[i + (op != "insert"):]
    got = procfs._maps_header_columns([line, line])
    if got is None:
        return
    want = parse_maps_header(line)
    assert {k: v[0] for k, v in got.items()} == want
    assert {k: v[1] for k, v in got.items()} == want


@FUZZ
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_fuzz_cmdline(blob):
    out = parse_cmdline(blob)
    assert isinstance(out, str)
    out.encode("utf-8")
    assert "\0" not in out


# ------------------------------------------------------------------ a fake procfs tree, captured end to end

def _stat_line(pid, comm, state, ppid, flags, threads, starttime):
    # fields 1..52 of /proc/<pid>/stat (proc(5)); unset ones 0
    f = [state, ppid, pid, pid, 0, -1, flags] + [0] * 10 + [threads, 0, starttime] + [0] * 30
    return f"{pid} ({comm}) " + " ".join(map(str, f)) + "\n"


def _status(name, state, uid, euid, gid, threads, vm: dict | None, kthread: bool):
    lines = [f"Name:\t{name}", "Umask:\t0022", f"State:\t{state} (x)", f"Uid:\t{uid}\t{euid}\t{euid}\t{euid}",
             f"Gid:\t{gid}\t{gid}\t{gid}\t{gid}", f"Kthread:\t{int(kthread)}"]
    for key, v in (vm or {}).items():
        lines.append(f"{key}:\t{v:8d} kB")
    lines += [f"Threads:\t{threads}", "SigQ:\t0/96364", "CapEff:\t000001fffeffffff"]
    return "\n".join(lines) + "\n"


def _write(path: Path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)


def _first_entries(smaps: bytes, n: int) -> bytes:
    lines = smaps.split(b"\n")
    heads = [i for i, ln in enumerate(lines) if HEADER.match(ln.decode()) and not ln[:1].isupper()]
    return b"\n".join(lines[:heads[n]]) + b"\n"


def _fake_proc(root: Path) -> dict:
    """Returns what was put in the tree, per pid."""
    _write(root / "meminfo", data("meminfo"))
    _write(root / "stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 123\n")
    _write(root / "uptime", "4321.25 8000.00\n")
    _write(root / "sys/kernel/random/boot_id", "0123abcd-fake-boot-id\n")
    me = os.getpid()
    base = 100 if me not in range(100, 120) else 200
    vm = {key: 1000 + i for i, (key, _) in enumerate(STATUS_FIELDS)}
    procs = {
        base: dict(comm="my prog) x (", state="S", ppid=1, flags=0x400100, threads=3, start=555, uid=0, euid=0, gid=0,
                   cmdline=b"/usr/bin/my prog\0--flag\0\xffraw\0", cgroup="0::/system.slice/my.service\n",
                   smaps=data("cat.smaps"), rollup=data("cat.smaps_rollup"), maps=data("cat.maps"), status="ok"),
        base + 1: dict(comm="worker", state="R", ppid=base, flags=0x400040, threads=1, start=777, uid=1000,
                       euid=12345, gid=100, cmdline=b"worker\0", cgroup="12:memory:/a\n1:cpu:/b\n",
                       smaps=_first_entries(data("cat.smaps"), 3),
                       rollup=data("cat.smaps_rollup"), maps=data("cat.maps"), status="ok"),
        base + 2: dict(comm="defunct", state="Z", ppid=base, flags=0x40040C, threads=1, start=888, uid=0, euid=0,
                       gid=0, cmdline=b"", cgroup="0::/z\n", smaps=b"", rollup=None, maps=b"", status="zombie"),
        base + 3: dict(comm="kworker/0:1-events", state="I", ppid=2, flags=0x04208060, threads=1, start=14, uid=0,
                       euid=0, gid=0, cmdline=b"", cgroup="0::/\n", smaps=b"", rollup=None, maps=b"",
                       status="kernel_thread"),
        base + 4: dict(comm="broken", state="S", ppid=1, flags=0, threads=1, start=999, uid=0, euid=0, gid=0,
                       cmdline=b"broken\0", cgroup="0::/\n", smaps=b"55d0-55e0 r--p 0 fe:00 1 /x\nRss: lots kB\n",
                       rollup=data("cat.smaps_rollup"), maps=data("cat.maps"), status="partial"),
    }
    for pid, p in procs.items():
        d = root / str(pid)
        kthread = bool(p["flags"] & PF_KTHREAD)
        _write(d / "stat", _stat_line(pid, p["comm"], p["state"], p["ppid"], p["flags"], p["threads"], p["start"]))
        _write(d / "status", _status(p["comm"], p["state"], p["uid"], p["euid"], p["gid"], p["threads"],
                                     None if kthread or p["state"] == "Z" else vm, kthread))
        _write(d / "cmdline", p["cmdline"])
        _write(d / "comm", p["comm"] + "\n")
        _write(d / "cgroup", p["cgroup"])
        _write(d / "smaps", p["smaps"])
        _write(d / "maps", p["maps"])
        if p["rollup"] is not None:  # zombies and kernel threads: ESRCH on the real one, absent here
            _write(d / "smaps_rollup", p["rollup"])
        if p["status"] == "ok":
            (d / "ns").mkdir()
            os.symlink(f"/usr/bin/prog{pid}", d / "exe")
            os.symlink(f"pid:[{4026531836 + pid}]", d / "ns" / "pid")
    (root / str(base + 5)).mkdir()  # listed, then gone before it was read
    procs[base + 5] = dict(status="vanished")
    return {"vm": vm, "procs": procs}


def test_fake_procfs_capture(tmp_path):
    root = tmp_path / "proc"
    put = _fake_proc(root)
    store = tmp_path / "store"
    res = Recorder(Options(store=str(store), procfs=str(root), host="fakehost",
                           sources=("maps", "smaps", "smaps_rollup"))).capture()
    procs = put["procs"]
    want_counts = {s: sum(1 for p in procs.values() if p["status"] == s)
                   for s in ("ok", "partial", "vanished", "denied", "zombie", "kernel_thread")}
    assert res.counts == want_counts

    snap = read_table(store, "snapshots").to_pylist()
    assert len(snap) == 1
    snap = snap[0]
    assert snap["snapshot_id"] == res.snapshot_id and snap["host"] == "fakehost"
    assert snap["boot_id"] == "0123abcd-fake-boot-id"
    assert snap["uptime_s"] == 4321.25
    assert snap["boot_time"].timestamp() == 1700000000
    assert snap["processes_seen"] == len(procs)
    assert (snap["processes_recorded"], snap["processes_partial"], snap["processes_vanished"],
            snap["processes_denied"], snap["processes_zombie"], snap["kernel_threads"]) == tuple(want_counts.values())
    assert snap["pfn_available"] is None and snap["kpage_available"] is False
    assert snap["pages_rows"] == 0 and snap["sources"] == "maps,smaps,smaps_rollup"

    meminfo = read_table(store, "meminfo")
    assert [(r["key"], r["value_kb"], r["value"]) for r in meminfo.to_pylist()] == \
        [(k, (int(v.split()[0]) if v.endswith(" kB") else None), int(v.split()[0]))
         for k, v in ((ln.split(":")[0], ln.split(":")[1].strip()) for ln in data("meminfo").decode().splitlines())]

    rows = {r["pid"]: r for r in read_table(store, "processes").to_pylist()}
    assert set(rows) == set(procs)
    vm, rollup_raw = put["vm"], kv("\n".join(data("cat.smaps_rollup").decode().split("\n")[1:]))
    for pid, p in procs.items():
        r = rows[pid]
        assert r["status"] == p["status"], (pid, r)
        assert r["snapshot_id"] == res.snapshot_id
        if p["status"] == "vanished":
            assert r["error"] and str(root / str(pid)) in r["error"]
            assert r["mappings"] == 0 and r["pages"] == 0 and r["starttime_ticks"] is None
            continue
        assert (r["comm"], r["state"], r["ppid"], r["threads"], r["starttime_ticks"]) == \
            (p["comm"], p["state"], p["ppid"], p["threads"], p["start"])
        assert (r["uid"], r["euid"], r["gid"]) == (p["uid"], p["euid"], p["gid"])
        assert r["cmdline"] == (" ".join(a.decode("utf-8", "backslashreplace") for a in p["cmdline"].split(b"\0")
                                         if a) or None)
        cg = p["cgroup"].strip("\n")
        assert r["cgroup"] == (cg[3:] if cg.startswith("0::") else cg)
        assert r["kernel_thread"] == (p["status"] == "kernel_thread")
        if p["status"] == "ok":
            assert r["error"] is None and r["sources"] == "smaps_rollup,smaps"
            assert r["exe"] == f"/usr/bin/prog{pid}" and r["pid_ns"] == 4026531836 + pid
            for key, col in STATUS_FIELDS:
                assert r[col] == vm[key]
            for key, col in SMAPS_KB_FIELDS + ROLLUP_ONLY_KB_FIELDS:
                assert r["rollup_" + col] == int(rollup_raw[key].split()[0])
            assert r["mappings"] == len(naive_smaps(p["smaps"].decode()))
        elif p["status"] == "partial":  # unparsable smaps: the process, not the snapshot, is marked
            assert f"{root / str(pid) / 'smaps'}:2" in r["error"]
            assert r["mappings"] == 0
        else:  # zombie / kernel thread: no memory read, no error, no Vm* zeros posing as data
            assert r["error"] is None and r["sources"] is None and r["mappings"] == 0
            assert r["vm_rss_kb"] is None and r["rollup_rss_kb"] is None

    maps = read_table(store, "mappings")
    for pid, p in procs.items():
        got = maps.filter(pc.equal(maps["pid"], pid)).sort_by("idx").to_pylist()
        if p["status"] != "ok":
            assert got == []
            continue
        naive = naive_smaps(p["smaps"].decode())
        assert len(got) == len(naive)
        for i, (m, (hdr, fields)) in enumerate(zip(got, naive)):
            assert m["idx"] == i and m["source"] == "smaps" and m["snapshot_id"] == res.snapshot_id
            assert {k: m[k] for k in HDR_KEYS} == hdr
            assert m["vm_flags"] == fields["VmFlags"]
            for key, col in MAPPING_ONLY_FIELDS + SMAPS_KB_FIELDS:
                assert m[col] == int(fields[key].split()[0])
    assert read_table(store, "pages").num_rows == 0 and read_table(store, "frames").num_rows == 0


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pfns=st.lists(st.integers(0, 20_000), max_size=400, unique=True), batch=st.sampled_from([1, 7, 300, 1 << 20]),
       gap=st.sampled_from([0, 1, 5, 128]))
def test_kpage_runs_read_each_pfn_like_one_pread_per_pfn(tmp_path, monkeypatch, pfns, batch, gap):
    """The kpage* reader (runs of nearby PFNs, runs batched into one buffer) returns, for every PFN, the
    8-byte value at PFN*8, as a naive pread per PFN would; on a file with known values."""
    import numpy as np

    from recorder import capture
    f = tmp_path / "kpage"
    if not f.exists():
        f.write_bytes((np.arange(20_001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)).tobytes())
    monkeypatch.setattr(capture, "KPAGE_BATCH", batch)
    monkeypatch.setattr(capture, "KPAGE_GAP", gap)
    sorted_pfns = np.array(sorted(pfns), dtype=np.uint64)
    got = capture._KpageRuns(sorted_pfns).read(str(f))
    fd = os.open(f, os.O_RDONLY)
    try:
        want = [int.from_bytes(os.pread(fd, 8, p * 8), "little") for p in sorted(pfns)]
    finally:
        os.close(fd)
    assert got.to_pylist() == want


def test_kpage_runs_short_file_is_an_oserror(tmp_path):
    import numpy as np

    from recorder import capture
    f = tmp_path / "kpage"
    f.write_bytes(bytes(8 * 10))
    with pytest.raises(OSError):
        capture._KpageRuns(np.array([3, 10], dtype=np.uint64)).read(str(f))


# ------------------------------------------------------------------ pagemap: filtered in batches of reads and processes

_FLAGGED = st.sampled_from([0, 1 << 63, 1 << 62, (1 << 63) | 5, (1 << 62) | (1 << 55), (1 << 63) | (1 << 61) | 77,
                            1 << 61, (1 << 55) | 3, (1 << 64) - 1])


@st.composite
def raw_pagemaps(draw):
    """Raw pagemaps of a few processes: each some reads (first_vpn, pages), ascending and disjoint, and
    the 8-byte entries read, present/swapped (bit 63/62) or not."""
    out = []
    for _ in range(draw(st.integers(1, 5))):
        reads, v = [], draw(st.integers(0, 50))
        for _ in range(draw(st.integers(1, 4))):
            n = draw(st.integers(1, 9))
            reads.append((v, n))
            v += n + draw(st.integers(0, 1 << 36))
        entries = [draw(_FLAGGED) for _ in range(sum(n for _, n in reads))]
        out.append((reads, entries))
    return out


@FUZZ
@given(raw_pagemaps())
def test_filter_pagemap_keeps_present_and_swapped_entries_at_their_vpn(raws):
    """filter_pagemap (every read of every process filtered at once) gives, per process, the (vpn, entry)
    of the entries with bit 63 or 62 set, as a loop over each read's entries would."""
    import struct

    from recorder import capture
    objs = [capture._RawPagemap(bytearray(struct.pack(f"={len(e)}Q", *e)), reads) for reads, e in raws]
    got = capture.filter_pagemap(objs)
    assert len(got) == len(raws)
    for (reads, entries), (vpn, entry, map_idx) in zip(raws, got):
        want, i = [], 0
        for v, n in reads:
            for k in range(n):
                if entries[i] >> 62:
                    want.append((v + k, entries[i]))
                i += 1
        assert list(zip(vpn.to_pylist(), entry.to_pylist())) == want
        assert vpn.type == entry.type == capture._U64
        assert map_idx.null_count == len(map_idx)  # no mapping runs given: not known


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.integers(0, 300), st.integers(0, (1 << 63) - 1)), max_size=60), max_size=4),
       st.integers(0, 1 << 40))
def test_sorted_unique_is_the_sorted_set(chunks, shift):
    """sorted_unique (the PFN runs of the frames table): the sorted distinct values, whether it takes the
    bitmap path (values dense in their span) or the sort path (spread: PFNs of small processes), for an
    array or a chunked array; the oracle is Python's sorted(set())."""
    import pyarrow as pa

    from recorder import capture
    chunks = [[min(v + shift, (1 << 63) - 1) for v in c] for c in chunks]
    want = sorted(set(v for c in chunks for v in c))
    for a in (pa.chunked_array([pa.array(c, capture._U64) for c in chunks], capture._U64),
              pa.array([v for c in chunks for v in c], capture._U64)):
        got = capture.sorted_unique(a)
        assert got.type == capture._U64 and got.to_pylist() == want


def test_read_pagemap_in_batches_reads_what_one_pread_per_range_reads(monkeypatch):
    """A live process's pages as the recorder reads them, small processes filtered later in a batch of
    processes (_PageSink.add_raw) and big ones batch by batch (forced here with a tiny chunk), against one
    pread per VMA range filtered entry by entry."""
    import subprocess
    import sys
    import time

    from recorder import capture
    from recorder.procfs import ProcFS
    child = subprocess.Popen([sys.executable, "-S", "-c", "import time; x = bytearray(1 << 22); time.sleep(60)"])
    try:
        time.sleep(0.5)
        fs, page = ProcFS(), os.sysconf("SC_PAGE_SIZE")

        def captured():
            p = capture._ProcessCapture(fs, child.pid, Options(sources=("maps", "pagemap")), page)
            p.run()
            assert p.row["status"] == "ok", p.row
            return p

        def reference(p):
            m = p.mappings
            out = []
            fd = os.open(f"/proc/{child.pid}/pagemap", os.O_RDONLY)
            try:
                for first, last in merge_ranges(((s, e) for s, e, q in zip(m["start_addr"], m["end_addr"], m["path"])
                                                 if q != "[vsyscall]"), page):
                    buf = os.pread(fd, (last - first) * 8, first * 8)
                    for k in range(last - first):
                        e = int.from_bytes(buf[k * 8:k * 8 + 8], "little")
                        if e >> 62:
                            out.append((first + k, e))
            finally:
                os.close(fd)
            return out

        def by_address(p, pages):  # mappings.idx of the mapping whose range holds each page, one by one
            m = p.mappings
            return [next(i for i, (s, e) in enumerate(zip(m["start_addr"], m["end_addr"])) if s <= v * page < e)
                    for v, _ in pages]

        small = captured()
        assert small.raw_pagemap is not None and small.vpn is None  # filtered later, with other processes
        want = reference(small)
        assert len(want) > 100
        sink = capture._PageSink(None, "s", None, None, True)
        sink.add_raw(child.pid, small.raw_pagemap, small.row)
        sink.add_raw(child.pid + 1, captured().raw_pagemap, {})
        sink._resolve()
        assert small.row["pages"] == len(want)
        (pid0, vpn0, entry0, midx0), (pid1, vpn1, entry1, _) = sink._buf
        assert (pid0, pid1) == (child.pid, child.pid + 1)
        assert list(zip(vpn0.to_pylist(), entry0.to_pylist())) == want
        assert list(zip(vpn1.to_pylist(), entry1.to_pylist())) == want
        assert midx0.to_pylist() == by_address(small, want)  # map_idx: the mapping holding the page

        monkeypatch.setattr(capture, "PAGEMAP_CHUNK_PAGES", 7)  # every process is big: batch by batch
        big = captured()
        assert big.raw_pagemap is None and big.row["pages"] == len(want)
        assert list(zip(big.vpn.to_pylist(), big.entry.to_pylist())) == want
        assert big.map_idx.to_pylist() == by_address(big, want)
    finally:
        child.kill()
        child.wait()
