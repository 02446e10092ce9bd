"""Trends over many snapshots (`memsnap trend`): series shape, time filters, process identity, leak ranking
on a synthetic store with a known growth rate and on a live leaking process, and charts."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE_STORE, memsnap, record_pids

TABLES = ("processes", "mappings", "meminfo", "pages", "frames", "snapshots")  # snapshots last: the commit
SAMPLE_IDS = sorted(p.stem for p in (SAMPLE_STORE / "snapshots").glob("host=*/date=*/*.parquet"))


def _sample_file(table: str, sid: str) -> Path:
    return next((SAMPLE_STORE / table).glob(f"host=*/date=*/{sid}.parquet"))


def _set(tab: pa.Table, name: str, values) -> pa.Table:
    i = tab.schema.get_field_index(name)
    return tab.set_column(i, tab.schema.field(i), pa.array(values, type=tab.schema.field(i).type))


def _add(tab: pa.Table, name: str, where, delta) -> pa.Table:
    vals = tab.column(name).to_pylist()
    return _set(tab, name, [v + delta if (v is not None and w) else v for v, w in zip(vals, where)])


def make_trend_store(dst, n: int, *, spacing=timedelta(minutes=10), end: datetime | None = None,
                     growth: dict | None = None, noise: dict | None = None, restart: dict | None = None,
                     seed: int = 0, host: str = "sample", template: str = SAMPLE_IDS[0]) -> dict:
    """Write ``n`` snapshots copied from a sample_data snapshot, ``spacing`` apart and ending at ``end``.

    ``growth`` {pid: kB}: the process's [heap] gains that many private dirty kB (USS, PSS, RSS) per snapshot;
    ``noise`` {pid: kB}: it gains a random 0..kB instead (not monotonic); ``restart`` {pid: (i, starttime)}:
    from snapshot ``i`` on, the pid belongs to a new process with that start time.  Files keep the
    recorded schema and metadata and the commit layout ``<table>/host=H/date=D/<sid>.parquet``.
    """
    growth, noise, restart = growth or {}, noise or {}, restart or {}
    end = end or datetime.now(timezone.utc).replace(microsecond=0)
    rng = np.random.default_rng(seed)
    src = {t: pq.read_table(_sample_file(t, template)) for t in TABLES}
    pids = src["processes"].column("pid").to_pylist()
    heap = [p == "[heap]" for p in src["mappings"].column("path").to_pylist()]
    map_pids = src["mappings"].column("pid").to_pylist()
    sids, times, added = [], [], {p: [] for p in pids}
    for i in range(n):
        t = end - (n - 1 - i) * spacing
        sid = f"{t:%Y%m%dT%H%M%S%f}Z-5e7e7e7e-{20000 + i}"
        extra = {p: growth.get(p, 0) * i + (int(rng.integers(0, noise[p] + 1)) if p in noise else 0) for p in pids}
        for p in pids:
            added[p].append(extra[p])
        for table in TABLES:
            tab = _set(src[table], "snapshot_id", [sid] * src[table].num_rows)
            if table == "mappings":
                for p, d in extra.items():
                    if d:
                        sel = [h and mp == p for h, mp in zip(heap, map_pids)]
                        for c in ("rss_kb", "pss_kb", "private_dirty_kb", "anonymous_kb"):
                            tab = _add(tab, c, sel, d)
            elif table == "processes":
                for p, d in extra.items():
                    sel = [x == p for x in pids]
                    if d:
                        for c in ("rollup_rss_kb", "rollup_pss_kb", "rollup_private_dirty_kb",
                                  "rollup_anonymous_kb", "vm_rss_kb", "rss_anon_kb"):
                            tab = _add(tab, c, sel, d)
                    if p in restart and i >= restart[p][0]:
                        st = tab.column("starttime_ticks").to_pylist()
                        tab = _set(tab, "starttime_ticks", [restart[p][1] if s else v for s, v in zip(sel, st)])
                tab = _set(tab, "captured_at", [t] * tab.num_rows)
            elif table == "snapshots":
                tab = _set(tab, "capture_start", [t])
                tab = _set(tab, "capture_end", [t + timedelta(milliseconds=150)])
            d = Path(dst) / table / f"host={host}" / f"date={t:%Y-%m-%d}"
            d.mkdir(parents=True, exist_ok=True)
            pq.write_table(tab, d / f"{sid}.parquet", compression="zstd")
        sids.append(sid)
        times.append(t)
    return {"sids": sids, "times": times, "pids": pids, "added": added, "spacing": spacing}


def _json(*args):
    return json.loads(memsnap("trend", *args, "-f", "json").stdout)


STEP_KB = 2048
SPACING = timedelta(minutes=10)


@pytest.fixture(scope="module")
def leak_store(tmp_path_factory):
    """6 snapshots 10 minutes apart: worker 0 leaks STEP_KB per snapshot, worker 1 is noisy, the rest flat;
    from snapshot 3 on, worker 2's pid belongs to a new process (pid reuse)."""
    pids = pq.read_table(_sample_file("processes", SAMPLE_IDS[0])).column("pid").to_pylist()
    parent, w0, w1, w2 = pids
    st = pq.read_table(_sample_file("processes", SAMPLE_IDS[0])).column("starttime_ticks").to_pylist()
    d = tmp_path_factory.mktemp("trend") / "store"
    info = make_trend_store(d, 6, spacing=SPACING, growth={w0: STEP_KB}, noise={w1: 3000},
                            restart={w2: (3, st[3] + 5000)})
    info.update(dir=str(d), parent=parent, leak=w0, noisy=w1, reused=w2, reused_start=(st[3], st[3] + 5000))
    return info


def test_leak_ranked_first_with_known_slope(leak_store):
    s = leak_store
    ranking = _json(s["dir"], "--leaks")
    top = ranking[0]
    assert top["pid"] == s["leak"] and top["suspect"] is True
    expected = STEP_KB / (SPACING.total_seconds() / 3600)  # kB per hour
    assert top["slope_kb_per_hour"] == pytest.approx(expected, rel=0.01)
    assert top["r2"] == pytest.approx(1.0, abs=1e-6)
    assert top["points"] == 6
    assert top["growth_kb"] == s["added"][s["leak"]][-1] - s["added"][s["leak"]][0]
    assert top["last_kb"] - top["first_kb"] == top["growth_kb"]
    # nobody else is a suspect: flat processes have slope 0, the noisy one no steady growth
    others = {(r["pid"], r["starttime"]): r for r in ranking[1:]}
    assert not any(r["suspect"] for r in others.values())
    flat = [r for r in others.values() if r["pid"] == s["parent"]]
    assert flat and flat[0]["slope_kb_per_hour"] == 0 and flat[0]["r2"] is None
    # the same ranking in csv has the documented columns
    out = memsnap("trend", s["dir"], "--leaks", "-f", "csv").stdout
    header = next(csv.reader(io.StringIO(out)))
    for c in ("pid", "starttime", "name", "slope_kb_per_hour", "r2", "points", "first_kb", "last_kb", "growth_kb"):
        assert c in header


def test_leaks_by_command_sums_processes(leak_store):
    s = leak_store
    ranking = _json(s["dir"], "--leaks", "--by", "command", "--min-points", "3")
    assert [r["command"] for r in ranking] == ["workload.py"]  # every sample process runs python workload.py
    noisy = s["added"][s["noisy"]]
    leak = s["added"][s["leak"]]
    series = _json(s["dir"], "--by", "command")
    assert [r["uss"] - series[0]["uss"] for r in series] == [leak[i] + noisy[i] - leak[0] - noisy[0]
                                                               for i in range(6)]
    assert [r["count"] for r in series] == [4] * 6


def test_library_leak_suspects_threshold():
    """R² threshold and sign, on hand-made series (x in hours: 0, 1, 2, ...)."""
    from analyzer.trend import R2_MIN, TrendResult, leak_suspects

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    ys = {"steady": [100, 200, 300, 400, 500], "jump": [100, 100, 100, 5000, 5000],
          "shrink": [500, 400, 300, 200, 100], "two": [1, 2],
          "pages": [1000, 1004, 1008, 1012, 1016]}  # a perfect line, but only 16 kB: capture noise
    rows = [{"host": "h", "command": k, "capture_start": t0 + timedelta(hours=i), "uss": v}
            for k, vs in ys.items() for i, v in enumerate(vs)]
    res = leak_suspects(TrendResult("command", "smaps", ["host", "command"], ["host", "command"], [], rows))
    by = {r["command"]: r for r in res.rows}
    assert by["steady"]["slope_kb_per_hour"] == pytest.approx(100) and by["steady"]["suspect"]
    assert by["shrink"]["slope_kb_per_hour"] == pytest.approx(-100) and not by["shrink"]["suspect"]
    assert by["jump"]["r2"] < R2_MIN and not by["jump"]["suspect"]
    assert by["pages"]["r2"] == pytest.approx(1) and not by["pages"]["suspect"]
    assert leak_suspects(TrendResult("command", "smaps", ["host", "command"], ["host", "command"], [], rows),
                         min_growth_kb=16).rows[1]["command"] == "pages"  # the floor is the only reason
    assert "two" not in by and res.notes  # fewer than min_points: not ranked, said in a note
    assert res.rows[0]["command"] == "steady"


def test_series_shape_json_and_csv(leak_store):
    s = leak_store
    rows = _json(s["dir"])
    keys = {(r["boot_id"], r["pid"], r["starttime"]) for r in rows}
    assert len(keys) == len(s["pids"]) + 1  # the reused pid adds one series
    assert len(rows) == len(s["pids"]) * len(s["sids"])  # one row per snapshot x process present in it
    assert len({(r["snapshot_id"], r["pid"], r["starttime"]) for r in rows}) == len(rows)
    for c in ("snapshot_id", "capture_start", "host", "boot_id", "pid", "starttime", "name", "command",
              "uss", "pss", "rss", "swap"):
        assert c in rows[0]
    assert {r["snapshot_id"] for r in rows} == set(s["sids"])
    # the leak's series is its growth on top of its first value
    lk = [r for r in rows if r["pid"] == s["leak"]]
    assert [r["uss"] - lk[0]["uss"] for r in lk] == [a - s["added"][s["leak"]][0] for a in s["added"][s["leak"]]]
    assert [datetime.fromisoformat(r["capture_start"]) for r in lk] == s["times"]
    out = memsnap("trend", s["dir"], "-f", "csv").stdout
    table = list(csv.DictReader(io.StringIO(out)))
    assert len(table) == len(rows) and list(table[0]) == list(rows[0])
    assert [int(r["uss"]) for r in table] == [r["uss"] for r in rows]
    # the table format prints one line per row plus the header
    assert len(memsnap("trend", s["dir"]).stdout.splitlines()) == len(rows) + 1


def test_identity_pid_reuse_is_a_new_series(leak_store):
    s = leak_store
    rows = [r for r in _json(s["dir"]) if r["pid"] == s["reused"]]
    old, new = s["reused_start"]
    assert [r["starttime"] for r in rows] == [old] * 3 + [new] * 3
    assert [r["snapshot_id"] for r in rows] == s["sids"][:3] + s["sids"][3:]
    ranking = [r for r in _json(s["dir"], "--leaks") if r["pid"] == s["reused"]]
    assert sorted(r["starttime"] for r in ranking) == [old, new]
    assert all(r["points"] == 3 for r in ranking)


def test_last_since_until(tmp_path):
    """Relative times count back from the real clock: the store is made here, ending now (a module fixture
    made minutes earlier under a loaded machine would shift "25m ago" across a snapshot)."""
    from analyzer.snapshots import select_range
    from analyzer.store import open_store

    s = make_trend_store(tmp_path / "store", 6, spacing=SPACING)
    s["dir"] = str(tmp_path / "store")
    made = time.monotonic()
    # through the CLI: the series holds exactly the chosen snapshots
    assert {r["snapshot_id"] for r in _json(s["dir"], "--last", "4")} == set(s["sids"][-4:])
    half = SPACING / 2
    since = f"{int((2 * SPACING + half).total_seconds() // 60)}m"  # 25m ago: the store ends "now", so the last 3
    assert {r["snapshot_id"] for r in _json(s["dir"], "--since", since)} == set(s["sids"][-3:])
    with open_store([s["dir"]]) as st:
        def ids(**kw):
            return [x.snapshot_id for x in select_range(st.snapshots(), **kw)]

        assert ids(last=1) == s["sids"][-1:]
        assert ids(last=100) == s["sids"]
        assert ids(until=f"{int((4 * SPACING - half).total_seconds())}s") == s["sids"][:2]  # 35 minutes ago
        assert ids(since=f"{(2 * SPACING + half).total_seconds() / 3600}h") == s["sids"][-3:]
        assert ids(since=s["times"][1].isoformat(), until=s["times"][3].isoformat()) == s["sids"][1:4]
        assert ids(since=s["times"][1].isoformat(), last=2) == s["sids"][-2:]
        naive_local = s["times"][4].astimezone().replace(tzinfo=None).isoformat()  # naive = local time
        assert ids(since=naive_local) == s["sids"][4:]
    assert time.monotonic() - made < SPACING.total_seconds() / 2, "too slow for the relative checks to be exact"


@pytest.mark.parametrize("args, what", [
    (["--since", "yesterday"], "--since 'yesterday' is neither"),
    (["--until", "5 parsecs"], "--until '5 parsecs' is neither"),
    (["--since", "1h", "--until", "2h"], "is after --until"),
    (["--since", "2000-01-01", "--until", "2000-01-02"], "no snapshot between"),
    (["--plot", "chart.gif"], "cannot tell the chart format"),
    (["-P", "("], "not a valid regular expression"),
])
def test_errors_are_one_line(leak_store, args, what):
    cp = memsnap("trend", leak_store["dir"], *args, check=False)
    assert cp.returncode != 0
    assert cp.stderr.startswith("Error: ") and what in cp.stderr and " — " in cp.stderr
    assert "Traceback" not in cp.stderr and cp.stdout == ""


def test_plot_png_and_svg(leak_store, tmp_path):
    s = leak_store
    png, svg = tmp_path / "t.png", tmp_path / "t.svg"
    cp = memsnap("trend", s["dir"], "--leaks", "--plot", str(png), "--top", "3")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert f"wrote {png}" in cp.stderr
    memsnap("trend", s["dir"], "--by", "command", "--plot", str(svg))
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text
    # the process chart names the leak suspect in its legend
    svg2 = tmp_path / "p.svg"
    memsnap("trend", s["dir"], "--plot", str(svg2))
    assert "leak suspect" in svg2.read_text()


def test_diff_plot_writes_png(tmp_path):
    png = tmp_path / "d.png"
    memsnap("diff", str(SAMPLE_STORE), "--plot", str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


LEAKER = textwrap.dedent("""
    import mmap, sys
    keep = []
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "grow":
            m = mmap.mmap(-1, 4 << 20)
            m.write(b"x" * (4 << 20))   # touch every page: 4 MiB more private memory
            keep.append(m)
            print("ok", flush=True)
""")


@pytest.mark.live
def test_live_leak_ranked_first(tmp_path):
    leaker = subprocess.Popen([sys.executable, "-c", LEAKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    flat = subprocess.Popen([sys.executable, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert leaker.stdout.readline().strip() == "ready" and flat.stdout.readline().strip() == "ready"
        n = 5
        for i in range(n):
            if i:
                leaker.stdin.write("grow\n")
                leaker.stdin.flush()
                assert leaker.stdout.readline().strip() == "ok"
            record_pids(tmp_path, [leaker.pid, flat.pid], "--sources", "maps,smaps,smaps_rollup")
        ranking = _json(str(tmp_path), "--leaks")
        assert ranking[0]["pid"] == leaker.pid and ranking[0]["suspect"] is True
        assert ranking[0]["slope_kb_per_hour"] > 0 and ranking[0]["points"] == n
        assert ranking[0]["growth_kb"] >= (n - 1) * 4096
        other = [r for r in ranking if r["pid"] == flat.pid]
        assert other
        o = other[0]
        from analyzer.trend import MIN_GROWTH_KB, R2_MIN

        flat_uss = [r["uss"] for r in _json(str(tmp_path)) if r["pid"] == flat.pid]
        if o["growth_kb"] < MIN_GROWTH_KB:
            assert not o["suspect"], flat_uss
        else:  # an idle process's USS can move (shared pages turn private when other mappers exit): say so
            print(f"note: the idle process's USS moved by {o['growth_kb']} kB: {flat_uss}")
            assert o["suspect"] == (o["slope_kb_per_hour"] > 0 and (o["r2"] or 0) >= R2_MIN), (o, flat_uss)
        assert ranking.index(o) > 0  # the leaker ranks first either way
    finally:
        for p in (leaker, flat):
            p.stdin.close()
            p.wait(timeout=10)


def test_points_equal_sizes_per_snapshot(leak_store):
    """A trend point is what `memsnap sizes --snapshot ID` computes, also across batch boundaries."""
    import analyzer.trend as tr
    from analyzer import open_store

    calls = []
    with open_store([leak_store["dir"]]) as st:
        old = tr.BATCH
        tr.BATCH = 4  # 6 snapshots: two batches
        try:
            series = st.trend(progress=lambda d, t: calls.append((d, t)))
        finally:
            tr.BATCH = old
        for sid in leak_store["sids"]:
            ref = st.sizes(snapshot=sid, host="sample", columns=["pid", "starttime", *tr.METRICS]).rows
            got = [r for r in series.rows if r["snapshot_id"] == sid]
            assert sorted((r["pid"], r["starttime"], *(r[m] for m in tr.METRICS)) for r in got) == \
                sorted((r["pid"], r["starttime"], *(r[m] for m in tr.METRICS)) for r in ref)
    assert calls[0] == (0, 6) and calls[-1] == (6, 6) and len(calls) == 3


def test_batch_size_follows_snapshot_size():
    """Small snapshots go many per sizes() call (one query per batch is the fixed cost), big ones few."""
    from analyzer.snapshots import Snapshot
    from analyzer.trend import BATCH, batch_size

    def snaps(pages):
        return [Snapshot(f"s{i}", "h", None, "b", True, True, 4096, pages) for i in range(3)]

    assert batch_size(snaps(15_000)) == BATCH
    assert batch_size(snaps(1_000_000)) == 20
    assert batch_size(snaps(50_000_000)) == 10
    assert batch_size(snaps(None)) == BATCH
