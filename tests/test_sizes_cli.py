"""`memsnap sizes` and `memsnap snapshots` on sample_data/store (a real 2-snapshot capture), run as a user would.

Every expected value is derived from the store itself (DuckDB reads of the Parquet files, independent of the
analyzer), never hard-coded.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
from functools import lru_cache
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analyzer.sizes import AMOUNTS, DEFAULT_COLUMNS, VIEW_COLUMNS
from conftest import SAMPLE_STORE, memsnap

STORE = str(SAMPLE_STORE)
VIEWS = ("process", "user", "command", "cgroup", "mapping", "system")


def view_sources(views) -> list[tuple[str, str]]:
    """(view, source) pairs worth testing: --by system reads meminfo only, so it has no pages variant."""
    return [(v, s) for v in views for s in ("smaps", "pages") if not (v == "system" and s == "pages")]
FORMATS = ("table", "csv", "json", "markdown")
ROLLUP = {"rss": "rollup_rss_kb", "pss": "rollup_pss_kb", "pss_anon": "rollup_pss_anon_kb",
          "pss_file": "rollup_pss_file_kb", "pss_shmem": "rollup_pss_shmem_kb"}
HOSTILE_VALID = ("x'; DROP TABLE processes; --", "' OR '1'='1", "root\"; DELETE FROM mappings; --")
HOSTILE_INVALID = ("')) OR 1=1 --",)  # also SQL-ish, but not a valid regex: must be a clean error


# ------------------------------------------------------------------------------------------------ helpers

@lru_cache(maxsize=None)
def _run(*args: str):
    """Run the CLI once per distinct argument list (the sample store is read-only)."""
    cp = memsnap(*args, check=False)
    return cp.returncode, cp.stdout, cp.stderr


def ok(*args: str) -> str:
    rc, out, err = _run(*args)
    assert rc == 0, f"memsnap {' '.join(args)} exited {rc}\n{out}\n{err}"
    assert "Traceback" not in err
    return out


def js(*args: str) -> list[dict]:
    return json.loads(ok(*args, "-f", "json"))


def assert_clean_error(cp_or_tuple, *needles: str) -> str:
    rc, out, err = (cp_or_tuple.returncode, cp_or_tuple.stdout, cp_or_tuple.stderr) \
        if hasattr(cp_or_tuple, "returncode") else cp_or_tuple
    assert rc != 0, (out, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    lines = [ln for ln in err.splitlines() if ln.startswith("Error: ")]
    assert len(lines) == 1, err
    assert " — " in lines[0], f"no hint in {lines[0]!r}"
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def table_lines(out: str) -> list[list[str]]:
    return [ln.split() for ln in out.splitlines() if ln.strip() and not set(ln.strip()) <= {"-"}]


def q(sql: str, params=None, store: str = STORE) -> list[tuple]:
    """Read the store with plain DuckDB (not the analyzer): ``{t}`` is the Parquet glob of table t."""
    con = duckdb.connect()
    for t in ("snapshots", "meminfo", "processes", "mappings"):
        glob = os.path.join(store, t, "host=*", "date=*", "*.parquet")
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{glob}', hive_partitioning=true)")
    return con.execute(sql, params or []).fetchall()


def store_hash(store) -> dict:
    return {str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(store).rglob("*")) if p.is_file()}


def rewrite(store, table: str, fn) -> None:
    """Rewrite every Parquet file of ``table`` with ``fn(pa.Table) -> pa.Table``, keeping schema and metadata."""
    files = sorted(Path(store, table).rglob("*.parquet"))
    assert files
    for f in files:
        t = pq.ParquetFile(f).read()  # no Hive partition columns added
        new = fn(t).replace_schema_metadata(t.schema.metadata)
        assert new.schema == t.schema
        pq.write_table(new, f)
        assert pq.read_schema(f).metadata == t.schema.metadata


def copy_store(dst: Path, host: str | None = None) -> str:
    shutil.copytree(STORE, dst)
    if host:
        for part in dst.glob("*/host=sample"):
            part.rename(part.with_name(f"host={host}"))
    return str(dst)


@pytest.fixture(scope="module")
def snaps() -> list[tuple]:
    """(snapshot_id, host) of the sample store, oldest first."""
    rows = q("SELECT snapshot_id, host FROM snapshots ORDER BY capture_start")
    assert len(rows) == 2
    return rows


@pytest.fixture(scope="module")
def latest(snaps) -> str:
    return snaps[-1][0]


def expected_processes(sid: str) -> dict[int, dict]:
    """Per-process sums of the smaps entries (what --source smaps reports; PSS: the rollup's where recorded,
    docs/smem.md "Per-process figures") plus identity and rollup fields."""
    rows = q("""
        SELECT p.pid, p.user, p.euid, p.comm, p.cgroup, p.kernel_thread,
               sum(m.rss_kb), coalesce(any_value(p.rollup_pss_kb), sum(m.pss_kb)), sum(m.private_clean_kb + m.private_dirty_kb), sum(m.swap_kb),
               sum(m.size_kb), count(m.idx),
               any_value(p.rollup_rss_kb), any_value(p.rollup_pss_kb), any_value(p.rollup_pss_anon_kb),
               any_value(p.rollup_pss_file_kb), any_value(p.rollup_pss_shmem_kb),
               any_value(p.rollup_private_clean_kb + p.rollup_private_dirty_kb)
        FROM processes p JOIN mappings m USING (snapshot_id, pid)
        WHERE snapshot_id = ? GROUP BY ALL""", [sid])
    out = {}
    for r in rows:
        out[r[0]] = dict(pid=r[0], user=r[1], euid=r[2], comm=r[3], cgroup=r[4], kthread=bool(r[5]),
                         rss=r[6], pss=r[7], uss=r[8], swap=r[9], vss=r[10], maps=r[11],
                         rollup_rss_kb=r[12], rollup_pss_kb=r[13], rollup_pss_anon_kb=r[14],
                         rollup_pss_file_kb=r[15], rollup_pss_shmem_kb=r[16], rollup_uss=r[17])
    assert out
    return out


def meminfo(sid: str) -> dict[str, int]:
    return dict(q("SELECT key, value_kb FROM meminfo WHERE snapshot_id = ? AND value_kb IS NOT NULL", [sid]))


# --------------------------------------------------------------------------------------- views x formats

def _header(view: str, fmt: str, out: str) -> list[str]:
    lines = out.splitlines()
    if fmt == "table":
        return [c.lower() for c in lines[0].split()]
    if fmt == "csv":
        return next(csv.reader(io.StringIO(out)))
    if fmt == "markdown":
        return [c.strip() for c in lines[0].strip("|").split("|")]
    data = json.loads(out)
    assert isinstance(data, list) and data and all(isinstance(r, dict) for r in data)
    keys = [list(r) for r in data]
    assert all(k == keys[0] for k in keys)
    return keys[0]


def _data_rows(view: str, fmt: str, out: str) -> int:
    if fmt == "json":
        return len(json.loads(out))
    if fmt == "csv":
        return len(list(csv.reader(io.StringIO(out)))) - 1
    if fmt == "markdown":
        return len(out.splitlines()) - 2
    return len(out.splitlines()) - 1


def expected_row_count(view: str, sid: str) -> int:
    expr = {"process": "p.pid", "user": "p.user", "command": "p.comm", "cgroup": "p.cgroup",
            "mapping": "coalesce(m.path, '<anonymous>')"}
    if view == "system":
        keys = set(meminfo(sid))
        areas = [{"MemFree"}, {"AnonPages"}, {"Cached", "Buffers"}, {"Shmem"}, {"Slab"}, {"KernelStack"},
                 {"PageTables", "SecPageTables"}, {"Percpu"}, {"Hugetlb"}]
        return sum(1 for a in areas if a & keys) + 2  # + unaccounted + total
    return q(f"SELECT count(DISTINCT {expr[view]}) FROM processes p JOIN mappings m USING (snapshot_id, pid) "
             "WHERE snapshot_id = ? AND NOT coalesce(p.kernel_thread, false)", [sid])[0][0]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("view", VIEWS)
def test_every_view_every_format(view, fmt, latest):
    out = ok("sizes", STORE, "--by", view, "-f", fmt)
    assert _header(view, fmt, out) == list(DEFAULT_COLUMNS[view])
    assert _data_rows(view, fmt, out) == expected_row_count(view, latest)
    if fmt == "json":
        for r in json.loads(out):
            for c, v in r.items():
                if c in AMOUNTS:
                    assert type(v) is int, (view, c, v)


@pytest.mark.parametrize("view, source", view_sources(VIEWS))
def test_json_all_columns_keys_and_int_amounts(view, source):
    cols = [c for c in VIEW_COLUMNS[view]]
    rows = js("sizes", STORE, "--by", view, "--source", source, "-c", " ".join(cols))
    assert rows
    for r in rows:
        assert list(r) == cols
        for c in cols:
            if c in AMOUNTS:
                assert type(r[c]) is int, (view, source, c, r[c])
        if view == "system":
            assert type(r["percent"]) in (int, float)


def test_process_values_equal_smaps_sums(latest):
    exp = expected_processes(latest)
    rows = js("sizes", STORE, "-c", "pid user uid name cgroup swap uss pss rss vss maps")
    assert {r["pid"] for r in rows} == set(exp)
    for r in rows:
        e = exp[r["pid"]]
        assert (r["user"], r["uid"], r["name"], r["cgroup"]) == (e["user"], e["euid"], e["comm"], e["cgroup"])
        for c in ("swap", "uss", "pss", "rss", "vss", "maps"):
            assert r[c] == e[c], (r["pid"], c)


# ------------------------------------------------------------------------------------------- --snapshot

def test_snapshot_latest_explicit_prefix(snaps, latest):
    first = snaps[0][0]
    cols = ("-c", "pid uss pss rss")
    by_latest = js("sizes", STORE, *cols)
    assert by_latest == js("sizes", STORE, *cols, "--snapshot", "latest") == js("sizes", STORE, *cols, "--snapshot", latest)
    # the shortest prefix that is unique
    ids = [s for s, _ in snaps]
    n = next(n for n in range(1, len(latest) + 1) if sum(i.startswith(latest[:n]) for i in ids) == 1)
    assert js("sizes", STORE, *cols, "--snapshot", latest[:n]) == by_latest
    first_rows = js("sizes", STORE, *cols, "--snapshot", first)
    exp_first = expected_processes(first)
    assert {r["pid"]: r["pss"] for r in first_rows} == {p: e["pss"] for p, e in exp_first.items()}
    exp_latest = expected_processes(latest)
    assert {r["pid"]: r["pss"] for r in by_latest} == {p: e["pss"] for p, e in exp_latest.items()}
    assert exp_first != exp_latest  # the two snapshots really differ, so the choice is observable


def test_snapshot_nonexistent_and_ambiguous(snaps):
    err = assert_clean_error(_run("sizes", STORE, "--snapshot", "19990101T000000-nope"), "19990101T000000-nope")
    assert "memsnap snapshots" in err
    a, b = snaps[0][0], snaps[1][0]
    common = os.path.commonprefix([a, b])
    assert common
    assert_clean_error(_run("sizes", STORE, "--snapshot", common), "ambiguous")
    assert _run("sizes", STORE, "--snapshot", common)[1] == ""


# ------------------------------------------------------------------------------------------ -c, -s, -r

@pytest.mark.parametrize("view", VIEWS)
def test_columns_selection(view):
    cols = list(reversed(VIEW_COLUMNS[view][2:]))[:4]  # an unusual order
    out = ok("sizes", STORE, "--by", view, "-c", ",".join(cols), "-f", "csv")
    assert next(csv.reader(io.StringIO(out))) == cols
    assert ok("sizes", STORE, "--by", view, "--list-columns").split() == list(VIEW_COLUMNS[view])


@pytest.mark.parametrize("opt", ["-c", "-s"])
def test_bad_column_lists_allowed(opt):
    err = assert_clean_error(_run("sizes", STORE, opt, "pid nosuchcol" if opt == "-c" else "nosuchcol"), "nosuchcol")
    allowed = err.split(" — ", 1)[1]
    for c in VIEW_COLUMNS["process"]:
        assert re.search(rf"(^|\s){c}(\s|$)", allowed), c
    assert _run("sizes", STORE, opt, "nosuchcol")[1] == ""


@pytest.mark.parametrize("view,key", [("process", "pss"), ("process", "rss"), ("process", "uss"), ("process", "pid"),
                                      ("process", "vss"), ("mapping", "pss"), ("mapping", "rss"), ("mapping", "map"),
                                      ("system", "kb"), ("user", "count")])
def test_sort_order(view, key):
    asc = js("sizes", STORE, "--by", view, "-c", " ".join(VIEW_COLUMNS[view][2:]), "-s", key)
    desc = js("sizes", STORE, "--by", view, "-c", " ".join(VIEW_COLUMNS[view][2:]), "-s", key, "-r")
    vals = [r[key] for r in asc]
    assert vals == sorted(vals)
    assert [r[key] for r in desc] == sorted(vals, reverse=True)
    assert len(asc) == len(desc) > 1 or view == "user"


def test_default_sort_is_pss_ascending_and_limit():
    rows = js("sizes", STORE, "-c", "pid pss")
    assert [r["pss"] for r in rows] == sorted(r["pss"] for r in rows)
    top = js("sizes", STORE, "-c", "pid pss", "-s", "pss", "-r", "--limit", "2")
    assert [r["pss"] for r in top] == sorted((r["pss"] for r in rows), reverse=True)[:2]


# --------------------------------------------------------------------------------------- -t, -p, -k, -H, -n

@pytest.mark.parametrize("view", ["process", "mapping", "user", "command", "cgroup"])
def test_totals_row_equals_column_sums(view):
    amounts = [c for c in VIEW_COLUMNS[view] if c in AMOUNTS or c in ("count", "pids", "maps")]
    key = {"process": "pid", "mapping": "map", "user": "user", "command": "command", "cgroup": "cgroup"}[view]
    cols = [key] + amounts
    rows = js("sizes", STORE, "--by", view, "-c", " ".join(cols))
    sums = {c: sum(r[c] for r in rows) for c in amounts}
    # json/csv: an extra TOTAL row
    with_tot = js("sizes", STORE, "--by", view, "-c", " ".join(cols), "-t")
    assert with_tot[:-1] == rows
    assert with_tot[-1][key] == "TOTAL"
    assert {c: with_tot[-1][c] for c in amounts} == sums
    # table: the last line, under a rule
    if view not in ("mapping",):  # map names may contain spaces
        lines = ok("sizes", STORE, "--by", view, "-c", " ".join(cols), "-t").splitlines()
        assert set(lines[-2]) == {"-"}
        last = lines[-1].split()
        assert [int(x) for x in last[-len(amounts):]] == [sums[c] for c in amounts]
        if view == "process":
            assert int(last[0]) == len(rows)  # the pid column counts processes
        else:
            assert last[0] == "TOTAL"  # not a count posing as a user, command or cgroup name


def test_percent_uses_memtotal(latest):
    memtotal = meminfo(latest)["MemTotal"]
    exp = expected_processes(latest)
    lines = table_lines(ok("sizes", STORE, "-c", "pid rss pss uss", "-p"))
    assert lines[0] == ["PID", "RSS", "PSS", "USS"]
    assert len(lines) - 1 == len(exp)
    for pid, rss, pss, uss in lines[1:]:
        e = exp[int(pid)]
        assert rss == f"{100.0 * e['rss'] / memtotal:.2f}%"
        assert pss == f"{100.0 * e['pss'] / memtotal:.2f}%"
        assert uss == f"{100.0 * e['uss'] / memtotal:.2f}%"
    # one value computed by hand: the biggest RSS
    big = max(exp.values(), key=lambda e: e["rss"])
    row = next(r for r in lines[1:] if int(r[0]) == big["pid"])
    assert float(row[1].rstrip("%")) == pytest.approx(100.0 * big["rss"] / memtotal, abs=0.005)


def _human(kb: int) -> str:
    if kb == 0:
        return "0"
    units = ["K", "M", "G", "T"]
    x, i = float(kb), 0
    while abs(x) >= 1024 and i < len(units) - 1:
        x, i = x / 1024, i + 1
    return f"{x:.1f}{units[i]}"


def test_abbreviate(latest):
    exp = expected_processes(latest)
    lines = table_lines(ok("sizes", STORE, "-c", "pid rss pss uss vss swap", "-k"))
    assert len(lines) - 1 == len(exp)
    for pid, *vals in lines[1:]:
        e = exp[int(pid)]
        assert vals == [_human(e[c]) for c in ("rss", "pss", "uss", "vss", "swap")]
    assert any(v.endswith("M") for ln in lines[1:] for v in ln[1:])


@pytest.mark.parametrize("fmt", ["table", "csv", "markdown"])
def test_no_header(fmt, latest):
    with_h = ok("sizes", STORE, "-c", "pid pss rss", "-f", fmt).splitlines()
    without = ok("sizes", STORE, "-c", "pid pss rss", "-f", fmt, "-H").splitlines()
    n = len(expected_processes(latest))
    assert len(without) == n
    assert all(re.search(r"\d", ln.split("|")[1] if fmt == "markdown" else ln) for ln in without)
    assert not any("pid" in ln.lower() for ln in without)
    assert len(with_h) == n + (2 if fmt == "markdown" else 1)


def test_numeric_uid(latest):
    exp = expected_processes(latest)
    rows = js("sizes", STORE, "-c", "pid user uid", "-n")
    assert {r["pid"]: r["user"] for r in rows} == {p: e["euid"] for p, e in exp.items()}
    named = js("sizes", STORE, "-c", "pid user")
    assert {r["pid"]: r["user"] for r in named} == {p: e["user"] for p, e in exp.items()}
    users = js("sizes", STORE, "--by", "user", "-n")
    assert sorted(r["user"] for r in users) == sorted({str(e["euid"]) for e in exp.values()})


# ------------------------------------------------------------------------------------------------ filters

def test_filters_filter(latest):
    exp = expected_processes(latest)
    user = next(iter(exp.values()))["user"]
    assert {r["pid"] for r in js("sizes", STORE, "-U", f"^{re.escape(user)}$")} == \
        {p for p, e in exp.items() if e["user"] == user}
    assert js("sizes", STORE, "-U", "^no-such-user$") == []
    comm = next(iter(exp.values()))["comm"]
    assert {r["pid"] for r in js("sizes", STORE, "-P", f"^{re.escape(comm)}$")} == \
        {p for p, e in exp.items() if e["comm"] == comm}
    assert js("sizes", STORE, "-P", "^no-such-process$") == []


def test_mapfilter(latest):
    maps = q("SELECT coalesce(path, '<anonymous>') AS map, pid, pss_kb FROM mappings WHERE snapshot_id = ?", [latest])
    rx = r"\.so"
    want = {m for m, _, _ in maps if re.search(rx, m)}
    assert want and len(want) < len({m for m, _, _ in maps})
    rows = js("sizes", STORE, "--by", "mapping", "-M", rx, "-c", "map pss")
    assert {r["map"] for r in rows} == want
    per_pid = {}
    for m, pid, pss in maps:
        if re.search(rx, m):
            per_pid[pid] = per_pid.get(pid, 0) + pss
    assert {r["pid"]: r["pss"] for r in js("sizes", STORE, "-M", rx, "-c", "pid pss")} == per_pid


@pytest.mark.parametrize("opt", ["-U", "-P", "-M"])
def test_hostile_filters_are_bound_parameters(opt, tmp_path, latest):
    store = copy_store(tmp_path / "store")
    before = store_hash(store)
    n = len(expected_processes(latest))
    for value in HOSTILE_VALID:
        cp = memsnap("sizes", store, opt, value, "-f", "json", check=False)
        assert cp.returncode == 0 and "Traceback" not in cp.stderr, cp.stderr
        assert json.loads(cp.stdout) == []  # matched nothing: the value was a pattern, not SQL
        # as part of a regex alternative it still filters normally
        cp = memsnap("sizes", store, opt, f"{value}|.", "-f", "json", check=False)
        assert cp.returncode == 0, cp.stderr
        assert len(json.loads(cp.stdout)) == n
    for value in HOSTILE_INVALID:
        cp = memsnap("sizes", store, opt, value, check=False)
        assert_clean_error(cp, "regular expression")
        assert cp.stdout == ""
    assert store_hash(store) == before
    # the store still works
    assert len(json.loads(memsnap("sizes", store, "-f", "json").stdout)) == n


# ------------------------------------------------------------------------------------------- --by system

@pytest.mark.parametrize("which", [0, 1])
def test_system_unaccounted_row_and_sum(snaps, which):
    sid = snaps[which][0]
    m = meminfo(sid)
    rows = js("sizes", STORE, "--by", "system", "--snapshot", sid)
    areas = [r["area"] for r in rows]
    assert any(a.startswith("unaccounted") for a in areas)
    assert areas[-1].startswith("total")
    assert rows[-1]["kb"] == m["MemTotal"]
    assert sum(r["kb"] for r in rows[:-1]) == m["MemTotal"]
    by = {a.split(" ")[0]: r["kb"] for a, r in zip(areas, rows)}
    assert by["free"] == m["MemFree"]
    assert by["userspace"] == m["AnonPages"]
    assert by["slab"] == m["Slab"]
    assert rows_by_area(rows) == system_expected(m)
    for r in rows:
        assert r["percent"] == pytest.approx(round(100.0 * r["kb"] / m["MemTotal"], 2))


# each --by system area from its own meminfo keys, written out here (not read from analyzer.sizes)
SYSTEM_EXPECTED = {
    "free": lambda m: m["MemFree"],
    "userspace": lambda m: m["AnonPages"],
    "page": lambda m: m["Cached"] + m["Buffers"] - m["Shmem"],
    "shmem/tmpfs": lambda m: m["Shmem"],
    "slab": lambda m: m["Slab"],
    "kernel": lambda m: m["KernelStack"],
    "per-cpu": lambda m: m["Percpu"],
    "hugetlb": lambda m: m["Hugetlb"],
    "total": lambda m: m["MemTotal"],
}


def system_expected(m: dict) -> dict:
    want = {k: f(m) for k, f in SYSTEM_EXPECTED.items()}
    want["page tables"] = m["PageTables"] + m["SecPageTables"]
    want["unaccounted"] = m["MemTotal"] - sum(v for k, v in want.items() if k != "total")
    return want


def rows_by_area(rows) -> dict:
    out = {}
    for r in rows:
        a = r["area"]
        key = "page tables" if a.startswith("page tables") else a.split(" ")[0]
        assert key not in out, a
        out[key] = r["kb"]
    return out


def test_system_areas_each_from_their_own_meminfo_keys(tmp_path):
    """The sample has SecPageTables = Hugetlb = 0: give every key a distinct value (powers of two) so that a
    dropped, doubled, misplaced or wrongly signed key shows in the area it belongs to."""
    store = copy_store(tmp_path / "mi")
    keys = ("MemFree", "AnonPages", "Cached", "Buffers", "Shmem", "Slab", "KernelStack", "PageTables",
            "SecPageTables", "Percpu", "Hugetlb")
    fake = {k: 1 << (i + 4) for i, k in enumerate(keys)}
    fake["Cached"] += 1 << 20  # Cached includes Shmem: keep the page cache positive
    fake["MemTotal"] = 1 << 24

    def fix(t):
        vals = [fake.get(k, v) for k, v in zip(t["key"].to_pylist(), t["value_kb"].to_pylist())]
        return t.set_column(t.schema.get_field_index("value_kb"), "value_kb",
                            pa.array(vals, t.schema.field("value_kb").type))
    rewrite(store, "meminfo", fix)
    sid = q("SELECT snapshot_id FROM snapshots ORDER BY capture_start DESC LIMIT 1", store=store)[0][0]
    m = meminfo_of(store, sid)
    assert all(m[k] == v for k, v in fake.items())
    rows = json.loads(ok("sizes", store, "--by", "system", "--snapshot", sid, "-f", "json"))
    assert rows_by_area(rows) == system_expected(m)


def meminfo_of(store: str, sid: str) -> dict[str, int]:
    return dict(q("SELECT key, value_kb FROM meminfo WHERE snapshot_id = ? AND value_kb IS NOT NULL", [sid],
                  store=store))


# -------------------------------------------------------------------------------------- --source pages

@pytest.mark.parametrize("which", [0, 1])
def test_pages_source_equals_smaps_rollup(snaps, which):
    sid = snaps[which][0]
    exp = expected_processes(sid)
    rows = js("sizes", STORE, "--source", "pages", "--snapshot", sid, "-c", "pid rss pss uss pss_anon pss_file pss_shmem")
    assert {r["pid"] for r in rows} == set(exp)
    for r in rows:
        e = exp[r["pid"]]
        assert r["uss"] == e["rollup_uss"], r["pid"]
        for c in ("rss", "pss_anon", "pss_shmem"):
            assert r[c] == e[ROLLUP[c]], (r["pid"], c)
        # the sample was recorded with the workload paused and is kept only if the analyzer agrees with
        # smaps_rollup (sample_data/make_sample.py), so PSS and file PSS agree to the kB as well: any difference
        # is a bug.  (The live tests in test_sizes_live.py are the real oracle for this.)
        assert r["pss"] == e[ROLLUP["pss"]] and r["pss_file"] == e[ROLLUP["pss_file"]], (r["pid"], r, e)


def test_pages_source_without_pfns_fails_clearly(tmp_path):
    store = copy_store(tmp_path / "nopfn")
    rewrite(store, "snapshots", lambda t: t.set_column(
        t.schema.get_field_index("pfn_available"), t.schema.field("pfn_available"),
        pa.array([False] * t.num_rows, pa.bool_())))
    assert all(not r[0] for r in q("SELECT pfn_available FROM snapshots", store=store))
    cp = memsnap("sizes", store, "--source", "pages", check=False)
    assert_clean_error(cp, "pfn_available=false", "--source smaps")
    assert cp.stdout == ""
    for view in ("user", "mapping"):
        cp = memsnap("sizes", store, "--source", "pages", "--by", view, "-f", "json", check=False)
        assert_clean_error(cp, "pfn_available=false")
        assert cp.stdout == ""
    # the smaps source still works on that store
    assert json.loads(memsnap("sizes", store, "-f", "json").stdout)


# -------------------------------------------------------------------------------------- consistency

@pytest.mark.parametrize("source", ["smaps", "pages"])
def test_user_equals_sum_of_processes(source):
    cols = "pid user swap uss pss rss"
    procs = js("sizes", STORE, "--source", source, "-c", cols)
    users = js("sizes", STORE, "--source", source, "--by", "user", "-c", "user count swap uss pss rss")
    assert {u["user"] for u in users} == {p["user"] for p in procs}
    for u in users:
        mine = [p for p in procs if p["user"] == u["user"]]
        assert u["count"] == len(mine)
        for c in ("swap", "uss", "rss"):
            assert u[c] == sum(p[c] for p in mine), (u["user"], c)
        if source == "smaps":  # sums of per-mapping kB figures: exact
            assert u["pss"] == sum(p["pss"] for p in mine)
        else:  # fixed point floored once per group: the group keeps the fractions its processes lost
            assert 0 <= u["pss"] - sum(p["pss"] for p in mine) < len(mine)


@pytest.mark.parametrize("source", ["smaps", "pages"])
def test_mapping_averages(source, latest):
    rows = js("sizes", STORE, "--source", source, "--by", "mapping", "-c", "map count pids pss uss rss avgpss avguss avgrss")
    pids = dict(q("SELECT coalesce(path, '<anonymous>'), count(DISTINCT pid) FROM mappings WHERE snapshot_id = ? "
                  "GROUP BY ALL", [latest]))
    assert {r["map"]: r["pids"] for r in rows} == pids
    for r in rows:
        for a in ("pss", "uss", "rss"):
            assert r[f"avg{a}"] == int(r[a] / r["pids"]), (r["map"], a)
    assert any(r["avgpss"] != r["pss"] for r in rows)


def test_kernel_threads_excluded(tmp_path, latest):
    exp = expected_processes(latest)
    victim = max(exp)
    store = copy_store(tmp_path / "kt")
    rewrite(store, "processes", lambda t: t.set_column(
        t.schema.get_field_index("kernel_thread"), t.schema.field("kernel_thread"),
        pa.array([pid == victim for pid in t.column("pid").to_pylist()], pa.bool_())))
    assert sorted(r[0] for r in q("SELECT pid FROM processes WHERE snapshot_id = ? AND kernel_thread", [latest],
                                  store=store)) == [victim]
    for source in ("smaps", "pages"):
        rows = json.loads(memsnap("sizes", store, "--source", source, "-f", "json").stdout)
        assert {r["pid"] for r in rows} == set(exp) - {victim}
        users = json.loads(memsnap("sizes", store, "--source", source, "--by", "user", "-f", "json").stdout)
        assert sum(u["count"] for u in users) == len(exp) - 1
    # and the unmodified sample shows it
    assert victim in {r["pid"] for r in js("sizes", STORE)}


# ------------------------------------------------------------------------------------------------ stores

@pytest.fixture
def two_hosts(tmp_path):
    return copy_store(tmp_path / "a", "a"), copy_store(tmp_path / "b", "b")


def test_two_stores_merge(two_hosts, latest):
    a, b = two_hosts
    single = {r["pid"]: r for r in js("sizes", STORE, "-c", "pid swap uss pss rss vss")}
    cp = memsnap("sizes", a, b, "-c", "pid swap uss pss rss vss", "-f", "json")
    rows = json.loads(cp.stdout)
    assert all(list(r)[0] == "host" for r in rows)
    assert sorted((r["host"], r["pid"]) for r in rows) == sorted((h, p) for h in "ab" for p in single)
    for r in rows:  # each host's rows are that host's alone, not the two copies added up
        assert {k: v for k, v in r.items() if k != "host"} == single[r["pid"]], r
    assert "2 hosts" in cp.stderr
    table = memsnap("sizes", a, b, "-c", "pid pss").stdout.splitlines()
    assert table[0].split()[0] == "HOST"
    assert {ln.split()[0] for ln in table[1:]} == {"a", "b"}
    # --host restricts to one host (then no host column is needed)
    only_a = json.loads(memsnap("sizes", a, b, "--host", "a", "-c", "pid swap uss pss rss vss", "-f", "json").stdout)
    assert {r["pid"]: r for r in only_a} == single
    only_b = json.loads(memsnap("sizes", a, b, "--host", "b", "-c", "host pid", "-f", "json").stdout)
    assert {r["host"] for r in only_b} == {"b"} and len(only_b) == len(single)
    # an explicit id present under both hosts: one snapshot per host
    both = json.loads(memsnap("sizes", a, b, "--snapshot", latest, "-c", "pid pss", "-f", "json").stdout)
    assert sorted((r["host"], r["pid"], r["pss"]) for r in both) == \
        sorted((h, p, s["pss"]) for h in "ab" for p, s in single.items())


@pytest.mark.parametrize("view, source", view_sources(["user", "mapping", "system"]))
def test_two_stores_merge_views(two_hosts, view, source):
    a, b = two_hosts
    single = js("sizes", STORE, "--by", view, "--source", source)
    rows = json.loads(memsnap("sizes", a, b, "--by", view, "--source", source, "-f", "json").stdout)
    for h in "ab":
        mine = [{k: v for k, v in r.items() if k != "host"} for r in rows if r["host"] == h]
        key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
        assert sorted(mine, key=key) == sorted(single, key=key), h
    only = json.loads(memsnap("sizes", a, b, "--by", view, "--source", source, "--host", "b", "-f", "json").stdout)
    assert only == single


def test_two_stores_snapshots(two_hosts, snaps):
    a, b = two_hosts
    rows = json.loads(memsnap("snapshots", a, b, "-f", "json").stdout)
    assert sorted((r["host"], r["snapshot_id"]) for r in rows) == sorted((h, s) for h in "ab" for s, _ in snaps)
    only = json.loads(memsnap("snapshots", a, b, "--host", "a", "-f", "json").stdout)
    assert {r["host"] for r in only} == {"a"} and len(only) == len(snaps)


def test_bad_store_paths(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    notstore = tmp_path / "notstore"
    (notstore / "something").mkdir(parents=True)
    (notstore / "file.txt").write_text("hello")
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = {str(empty): "not a memsnap store", str(notstore): "not a memsnap store",
             str(tmp_path / "missing"): "no such store", str(afile): str(afile)}
    for path, needle in cases.items():
        for cmd in (("sizes",), ("snapshots",), ("sizes", "--by", "system")):
            cp = memsnap(*cmd, path, check=False)
            assert_clean_error(cp, path, needle)
            assert cp.stdout == ""
        # one bad store among good ones is still an error
        assert_clean_error(memsnap("sizes", STORE, path, check=False), path)
    # a store directory with no committed snapshot
    (empty / "snapshots").mkdir()
    assert_clean_error(memsnap("sizes", str(empty), check=False), "no committed snapshots")


# --------------------------------------------------------------------------------------------- snapshots

def _snapshot_facts():
    return {r[0]: dict(host=r[1], processes_recorded=r[2], pages=r[3], frames=r[4], bytes=r[5], pfn_available=r[6])
            for r in q("SELECT snapshot_id, host, processes_recorded, pages_rows, frames_rows, bytes_written, "
                       "pfn_available FROM snapshots")}


def test_snapshots_json():
    exp = _snapshot_facts()
    rows = js("snapshots", STORE)
    assert [r["snapshot_id"] for r in rows] == sorted(exp)
    for r in rows:
        for k, v in exp[r["snapshot_id"]].items():
            assert r[k] == v, k
        assert r["capture_start"] < r["capture_end"]


def test_snapshots_csv():
    exp = _snapshot_facts()
    rows = list(csv.DictReader(io.StringIO(ok("snapshots", STORE, "-f", "csv"))))
    assert [r["snapshot_id"] for r in rows] == sorted(exp)
    for r in rows:
        e = exp[r["snapshot_id"]]
        assert r["host"] == e["host"]
        for k in ("processes_recorded", "pages", "frames", "bytes"):
            assert int(r[k]) == e[k], k


def test_snapshots_table():
    exp = _snapshot_facts()
    lines = table_lines(ok("snapshots", STORE))
    header = [c.lower() for c in lines[0]]
    for k in ("snapshot_id", "host", "processes_recorded", "pages", "frames", "bytes"):
        assert k in header
    assert len(lines) - 1 == len(exp)
    for ln in lines[1:]:
        # capture_start is "YYYY-MM-DD HH:MM:SS": two tokens for one column
        vals = dict(zip(header[:3], ln[:3]))
        rest = dict(zip(header[3:], ln[4:]))
        e = exp[vals["snapshot_id"]]
        assert vals["host"] == e["host"]
        for k in ("processes_recorded", "pages", "frames", "bytes"):
            assert int(rest[k]) == e[k], k


# ------------------------------------------------------------------------------------------------- help

@pytest.mark.parametrize("args,needles", [
    ((), ["record", "sizes", "snapshots"]),
    (("sizes",), ["--by", "--source", "--snapshot", "--columns", "--sort", "--reverse", "--totals", "--percent",
                  "--abbreviate", "--numeric", "--no-header", "--processfilter", "--userfilter", "--mapfilter",
                  "--format", "--host"]),
    (("snapshots",), ["--format", "--host"]),
    (("record",), ["--store", "--interval", "--count", "--pid", "--match", "--sources", "--budget-ms", "--nice"]),
])
def test_help(args, needles):
    cp = memsnap(*args, "--help", check=False, env=dict(os.environ, COLUMNS="200", TERMINAL_WIDTH="200"))
    assert cp.returncode == 0, cp.stderr
    for n in needles:
        assert n in cp.stdout, n


def _sizes_statements(sz) -> list:
    """(SQL, parameters) of every statement sizes._query builds, for every view, source (and smaps with
    low-impact processes), numeric flag and set of filters, run against a connection that records them."""
    import itertools

    class Cursor:
        description = [("x",)]

        def fetchall(self):
            return []

    class Con:
        def __init__(self):
            self.log = []

        def execute(self, sql, params=None):
            self.log.append((sql, params))
            return Cursor()

    class Snap:
        host, snapshot_id, has_pages, pfn_available, kpage_available = "h", "s1", True, True, True

    out, snaps = [], [Snap()]
    for by, source, numeric, (pf, uf, mf) in itertools.product(
            sz.VIEWS, (*sz.SOURCES, "smaps+low"), (False, True), itertools.product((None, "a|(b)"), repeat=3)):
        src = sz.SOURCES.get(source) or sz._SmapsWithPages([("h", "s1", 5, "x")], snaps)
        con = Con()
        sz._query(con, sz.VIEWS[by], src, snaps, numeric, dict(processfilter=pf, userfilter=uf, mapfilter=mf))
        out.append(((by, source, numeric, pf, uf, mf), con.log))
    return out


def test_sizes_sql_is_what_sqlalchemy_and_duckdb_engine_compile(monkeypatch):
    """sizes builds its statements with analyzer.sqlcore (SQLAlchemy Core's spelling, without its 0.2-0.4 s
    import: issue 15).  The same code run with SQLAlchemy itself, compiled with duckdb_engine's dialect, must
    give the same text and parameters, for every view, source, numeric flag and filter set."""
    import sqlalchemy
    from duckdb_engine import Dialect

    from analyzer import sizes as sz
    from schema import sa as schema_sa

    ours = _sizes_statements(sz)
    monkeypatch.setattr(sz, "sa", sqlalchemy)
    monkeypatch.setattr(sz, "_DIALECT", Dialect(paramstyle="qmark"))
    monkeypatch.setattr(sz, "_processes_table", lambda md: schema_sa.table(schema_sa.TABLES["processes"], md))
    theirs = _sizes_statements(sz)
    assert len(ours) == len(sz.VIEWS) * (len(sz.SOURCES) + 1) * 2 * 8
    assert [k for k, _ in ours] == [k for k, _ in theirs]
    for (key, a), (_, b) in zip(ours, theirs):
        assert a == b, key


def test_sqlcore_quotes_and_groups_like_sqlalchemy():
    """Identifier quoting of every column and label sizes can name, and operator parenthesising, as
    SQLAlchemy's generic dialect does it."""
    import sqlalchemy
    from duckdb_engine import Dialect

    from analyzer import sizes as sz, sqlcore
    from schema import TABLES

    prep = Dialect(paramstyle="qmark").identifier_preparer
    names = {c.name for t in TABLES.values() for c in t.columns} | set(sz.AMOUNTS) | \
        {n for v in sz.VIEWS.values() for n in v.columns} | {"User", "1x", "a b", "_x", "$x"}
    for n in sorted(names):
        assert sqlcore.quote(n) == prep.quote(n), n
    for lib, compile_ in ((sqlcore, lambda s: str(s.compile())),
                          (sqlalchemy, lambda s: str(s.compile(dialect=Dialect(paramstyle="qmark"))))):
        t = lib.Table("t", lib.MetaData(), *[lib.Column(c) for c in "abcd"])
        a, b, c, d = (t.c[x] for x in "abcd")
        exprs = [a + b + c, a - (b - c), (a - b) - c, a * (b / c), (a * b) / c, a / (b * c), (a + b) * c,
                 lib.cast(lib.func.sum(a), lib.BigInteger).op(">>")(lib.literal_column("22")) + b,
                 lib.and_(a == b, lib.or_(c == d, a == d)), lib.or_(lib.and_(a == b, c == d), a == c)]
        got = [compile_(lib.select(e.label("x")).select_from(t)) for e in exprs]
        if lib is sqlcore:
            mine = got
    assert mine == got


def test_json_output_is_json_dumps_indent_1():
    """`-f json` lays rows out with the C encoder, value by value; the text is exactly json.dumps(indent=1)'s."""
    import datetime as dt
    import json as js

    from hypothesis import given, settings, strategies as st

    from analyzer.output import _json_default, json_rows

    scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(),
                       st.datetimes(), st.dates(), st.decimals(allow_nan=False))
    value = st.one_of(scalar, st.lists(scalar, max_size=3), st.dictionaries(st.text(max_size=3), scalar, max_size=3))
    table = st.lists(st.text(max_size=5), unique=True, max_size=5).flatmap(
        lambda cols: st.tuples(st.just(cols), st.lists(st.fixed_dictionaries({c: value for c in cols}), max_size=4)))

    @settings(max_examples=500, deadline=None)
    @given(table)
    def check(t):
        cols, rows = t
        want = js.dumps([{c: r.get(c) for c in cols} for r in rows], default=_json_default, indent=1) + "\n"
        assert json_rows(rows, cols) == want

    check()
    assert json_rows([{"t": dt.datetime(2026, 1, 2, 3, 4, 5)}], ["t"]) == '[\n {\n  "t": "2026-01-02T03:04:05"\n }\n]\n'


def test_duckdb_draws_no_progress_bar_on_stdout():
    """DuckDB's own progress bar goes to stdout once a query passes 2 s (it was seen in the middle of
    `diff --source pages -f json` at 5M pages): the store's connection has it off."""
    import subprocess
    import sys

    from conftest import ROOT

    # in a child: under pytest DuckDB starts with the bar off anyway; a plain process (the CLI) has it on
    code = ("import sys\nfrom analyzer import open_store\nst = open_store(sys.argv[1])\n"
            "print(st.con.execute(\"SELECT current_setting('enable_progress_bar')\").fetchone()[0])\n")
    cp = subprocess.run([sys.executable, "-c", code, str(SAMPLE_STORE)], capture_output=True, text=True, cwd=ROOT)
    assert cp.returncode == 0 and cp.stdout == "False\n", cp.stdout + cp.stderr
