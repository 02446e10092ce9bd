"""Every named query in queries/*.sql runs on sample_data/store and returns rows; the facts behind
`memsnap sizes` agree with the raw tables they are derived from."""
from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

import analyzer
from analyzer import queries
from analyzer.store import open_store
from conftest import SAMPLE_STORE

STORE = str(SAMPLE_STORE)
ALL = queries.all_queries()


def _rows(cur) -> list[dict]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def st():
    with open_store(STORE) as s:
        yield s


@pytest.fixture(scope="module")
def snaps(st):
    s = st.snapshots()
    assert len(s) == 2
    return s


def params_for(q: queries.NamedQuery, snaps) -> dict:
    """Values for a query's declared parameters, from the sample store."""
    first, last = snaps[0], snaps[-1]
    known = {"snapshot_ids": [s.snapshot_id for s in snaps],
             "from_host": first.host, "from_id": first.snapshot_id,
             "to_host": last.host, "to_id": last.snapshot_id,
             "mapfilter": None, "parts": None, "part": None,
             "host": last.host, "snapshot_id": last.snapshot_id,
             "by": "command", "pattern": None, "pfilter": None, "ufilter": None, "pids": None}
    missing = set(q.params) - set(known)
    assert not missing, f"queries/{q.name}.sql: add sample values for parameter(s) {missing} to this test"
    return {k: known[k] for k in q.params}


def macro_args(q: queries.NamedQuery, snaps) -> list:
    """Arguments for a table macro, by the names in its CREATE MACRO signature (latest sample snapshot)."""
    m = re.search(rf"MACRO\s+\"?{re.escape(q.name)}\"?\s*\(([^)]*)\)", q.sql, re.I)
    assert m, f"queries/{q.name}.sql: no CREATE MACRO {q.name}(...) signature"
    known = {"h": snaps[-1].host, "host": snaps[-1].host, "sid": snaps[-1].snapshot_id,
             "snapshot_id": snaps[-1].snapshot_id,
             "grp_by": "command", "pat": None, "pfilter": None, "ufilter": None}  # shared_members: no filters
    names = [a.strip() for a in m.group(1).split(",") if a.strip()]
    missing = set(names) - set(known)
    assert not missing, f"queries/{q.name}.sql: add sample values for macro argument(s) {missing} to this test"
    return [known[n] for n in names]


def test_every_sql_file_is_a_named_query():
    files = sorted(f.name for f in resources.files("queries").iterdir() if f.name.endswith(".sql"))
    assert files
    assert sorted(f"{q.name}.sql" for q in ALL.values()) == files  # one query per file, named after it
    for q in ALL.values():
        assert q.kind in ("view", "query", "macro")
        assert q.description, q.name


@pytest.mark.parametrize("name", sorted(ALL))
def test_declared_params_are_the_bound_ones(name):
    q = ALL[name]
    body = "\n".join(ln.split("--", 1)[0] for ln in q.sql.splitlines())  # drop comments
    used = set(re.findall(r"\$([A-Za-z_]\w*)", body))
    assert used == set(q.params), (name, used, set(q.params))
    if q.kind == "view":
        assert not used


#: queries of the physmem source run on sample_data/physmem (recorded with --sources +physmem; the main sample
#: store predates it, and its golden outputs stay as they are)
PHYSMEM_STORE = str(Path(STORE).parent / "physmem")


@pytest.fixture(scope="module")
def physmem_st():
    with open_store(PHYSMEM_STORE) as s:
        yield s


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_query_runs_on_sample_data(st, snaps, physmem_st, name):
    q = ALL[name]
    if name.startswith("physmem_"):
        st, snaps = physmem_st, physmem_st.snapshots()
    if q.kind == "view":
        cur = st.execute(f'SELECT * FROM "{name}"')
    elif q.kind == "macro":
        args = macro_args(q, snaps)
        cur = st.execute(f'SELECT * FROM "{name}"({", ".join("?" for _ in args)})', args)
    else:
        cur = queries.run(st.con, name, params_for(q, snaps))
    rows = _rows(cur)
    assert rows, f"{name} returned no rows on sample_data/store"


def test_query_missing_param_is_a_clean_error(st):
    q = next(q for q in ALL.values() if q.params)
    with pytest.raises(queries.MemsnapError, match="needs parameter"):
        queries.run(st.con, q.name, {})


def test_smaps_mapping_facts_cover_every_mapping(st, snaps):
    facts = _rows(queries.run(st.con, "smaps_mapping_facts", {"snapshot_ids": [s.snapshot_id for s in snaps]}))
    maps = _rows(st.execute("SELECT host, snapshot_id, pid, idx, pss_kb, rss_kb, private_clean_kb + private_dirty_kb "
                            "AS uss FROM mappings"))
    assert len(facts) == len(maps)
    by_key = {(m["host"], m["snapshot_id"], m["pid"], m["idx"]): m for m in maps}
    for f in facts:
        m = by_key[(f["host"], f["snapshot_id"], f["pid"], f["idx"])]
        assert (f["pss_kb"], f["rss_kb"], f["uss_kb"]) == (m["pss_kb"], m["rss_kb"], m["uss"])


def test_page_mapping_facts_equal_smaps_per_mapping(st, snaps):
    """On the latest sample snapshot the pagemap/kpagecount rules reproduce every smaps entry to the kB."""
    sid = snaps[-1].snapshot_id
    facts = _rows(queries.run(st.con, "page_mapping_facts", {"snapshot_ids": [sid]}))
    maps = _rows(st.execute("SELECT pid, idx, pss_kb, rss_kb, private_clean_kb + private_dirty_kb AS uss, "
                            "swap_kb FROM mappings WHERE snapshot_id = ?", [sid]))
    assert len(facts) == len(maps) > 0
    by_key = {(m["pid"], m["idx"]): m for m in maps}
    ps_kb = snaps[-1].page_size_bytes // 1024
    for f in facts:
        m = by_key[(f["pid"], f["idx"])]
        got = (f["pss_fp"] >> 22, f["rss_pages"] * ps_kb, f["uss_pages"] * ps_kb, f["swap_pages"] * ps_kb)
        assert got == (m["pss_kb"], m["rss_kb"], m["uss"], m["swap_kb"]), (f["pid"], f["idx"], f["map"])
    assert sum(f["unknown_frames"] for f in facts) == 0


def test_pages_decoded_matches_frames(st):
    n_pages = st.execute("SELECT count(*) FROM pages").fetchone()[0]
    d = st.execute("SELECT count(*), count(*) FILTER (WHERE present), count(*) FILTER (WHERE present AND swapped), "
                   "count(*) FILTER (WHERE NOT present AND NOT swapped) FROM pages_decoded").fetchone()
    assert d[0] == n_pages and d[1] > 0
    assert d[2] == 0 and d[3] == 0  # only present or swapped pages are stored, never both
    orphans = st.execute("SELECT count(*) FROM pages_decoded p WHERE present AND NOT EXISTS (SELECT 1 FROM frames f "
                         "WHERE f.host = p.host AND f.snapshot_id = p.snapshot_id AND f.pfn = p.pfn)").fetchone()[0]
    assert orphans == 0  # every present PFN has its kpagecount/kpageflags row


def test_snapshot_list_matches_snapshots(st):
    listed = _rows(st.execute("SELECT * FROM snapshot_list"))
    raw = {r["snapshot_id"]: r for r in _rows(st.execute("SELECT * FROM snapshots"))}
    assert [r["snapshot_id"] for r in listed] == sorted(raw)
    for r in listed:
        s = raw[r["snapshot_id"]]
        assert (r["host"], r["pages"], r["frames"], r["bytes"], r["processes_recorded"]) == \
            (s["host"], s["pages_rows"], s["frames_rows"], s["bytes_written"], s["processes_recorded"])
        assert r["capture_s"] > 0


def test_page_transitions_finds_the_cow_break(st, snaps):
    """Between the two sample snapshots one worker wrote inherited memory: it has the largest USS growth and the
    largest became-private figure."""
    rows = _rows(queries.run(st.con, "page_transitions", params_for(ALL["page_transitions"], snaps)))
    uss = {}
    for s in snaps:
        uss[s.snapshot_id] = dict(st.execute(
            "SELECT pid, rollup_private_clean_kb + rollup_private_dirty_kb FROM processes WHERE snapshot_id = ?",
            [s.snapshot_id]).fetchall())
    growth = {p: uss[snaps[-1].snapshot_id][p] - uss[snaps[0].snapshot_id][p] for p in uss[snaps[-1].snapshot_id]}
    writer = max(growth, key=growth.get)
    assert growth[writer] > 0
    priv = {r["pid"]: r["became_private_kb"] for r in rows}
    assert set(priv) == set(growth)
    assert max(priv, key=priv.get) == writer
    rss = st.execute("SELECT rollup_rss_kb FROM processes WHERE snapshot_id = ? AND pid = ?",
                     [snaps[-1].snapshot_id, writer]).fetchone()[0]
    # the workload wrote 4 MiB of the inherited memsnap-cow region (make_sample.py: "cow 0 4"); counted from the
    # raw Parquet with plain DuckDB: the writer's pages there that were shared before and are private after
    import duckdb
    con = duckdb.connect()
    for t in ("pages", "frames", "mappings"):
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{STORE}/{t}/host=*/date=*/*.parquet')")
    raw = con.execute("""
        WITH p AS (SELECT pg.snapshot_id AS sid, pg.pid, pg.vpn, f.mapcount AS mc FROM pages pg
                   JOIN frames f ON f.snapshot_id = pg.snapshot_id AND f.pfn = pg.entry & 36028797018963967
                   JOIN mappings m ON m.snapshot_id = pg.snapshot_id AND m.pid = pg.pid
                        AND pg.vpn >= m.start_addr // 4096 AND pg.vpn < m.end_addr // 4096
                   WHERE (pg.entry >> 63) & 1 = 1 AND m.path LIKE '%memsnap-cow%')
        SELECT a.pid, count(*) * 4 FROM p a JOIN p b USING (pid, vpn)
        WHERE a.sid = ? AND b.sid = ? AND a.mc > 1 AND b.mc <= 1 GROUP BY a.pid""",
        [snaps[0].snapshot_id, snaps[-1].snapshot_id]).fetchall()
    assert raw == [(writer, 4096)]
    # the whole process also lost sharing elsewhere (interpreter noise): at least the 4 MiB, at most its RSS
    assert 4096 <= priv[writer] <= rss


def test_page_transitions_in_parts_equal_one_run(st, snaps):
    """Split by process (hash of pid), the parts together give exactly the rows of one run: each process
    in one part, with the same figures."""
    params = params_for(ALL["page_transitions"], snaps)
    whole = _rows(queries.run(st.con, "page_transitions", params))
    for parts in (2, 3):
        got, seen = [], set()
        for part in range(parts):
            rows = _rows(queries.run(st.con, "page_transitions", dict(params, parts=parts, part=part)))
            assert not seen & {r["pid"] for r in rows}, "a process in two parts"
            seen |= {r["pid"] for r in rows}
            got += rows
        assert sorted(got, key=lambda r: r["pid"]) == sorted(whole, key=lambda r: r["pid"])
        assert len(whole) > 2


def test_diff_splits_page_transitions_to_fit_the_memory_limit(monkeypatch):
    """diff picks the number of parts from both snapshots' pages rows and DuckDB's memory limit; forced to
    several parts, its rows and transitions are those of one run, and it says so."""
    from analyzer import diff as diff_mod
    from analyzer.diff import transition_parts
    from analyzer.snapshots import Snapshot

    def snap(rows):
        return Snapshot("s", "h", None, "b", True, True, 4096, rows)
    # properties of the heuristic, not a snapshot of its constants: one part when it fits or nothing is known,
    # more parts for more rows or less memory, never fewer
    assert transition_parts(snap(10), snap(10), 10 ** 9) == 1
    assert transition_parts(snap(None), snap(None), None) == 1
    big, limit = snap(53_000_000), 10 ** 9  # the 50M-page benchmark
    assert transition_parts(big, big, limit) >= 2
    assert transition_parts(big, big, limit // 2) >= transition_parts(big, big, limit)
    assert transition_parts(snap(106_000_000), snap(106_000_000), limit) >= transition_parts(big, big, limit)
    per_part = diff_mod.TRANSITION_BYTES_PER_ROW * 2 * 53_000_000 / transition_parts(big, big, limit)
    assert per_part <= limit  # each part's estimate fits the memory limit

    def run():
        with analyzer.open_store(STORE) as s:
            res = s.diff(source="pages")
            return res.rows, res.notes, s.memory_limit_bytes()

    rows1, notes1, limit = run()
    total = sum(s.pages_rows for s in open_store(STORE).snapshots())
    monkeypatch.setattr(diff_mod, "TRANSITION_BYTES_PER_ROW", 3 * limit // total + 1)  # just over 3 parts' worth
    rows4, notes4, _ = run()
    assert rows4 == rows1 and any("became_private_kb" in r for r in rows1)
    assert any("in 4 parts" in n for n in notes4) and not any("parts" in n for n in notes1)


def _copy(dst: Path, host: str) -> str:
    shutil.copytree(STORE, dst)
    for part in dst.glob("*/host=sample"):
        part.rename(part.with_name(f"host={host}"))
    return str(dst)


def test_facts_on_merged_stores_keep_hosts_apart(tmp_path, st, snaps):
    """The same snapshot ids under two hosts (one store copied): each host's facts are its own, not a cross join."""
    ids = [s.snapshot_id for s in snaps]
    with open_store(STORE) as one:
        single = {name: sorted(map(repr, queries.run(one.con, name, {"snapshot_ids": ids}).fetchall()))
                  for name in ("smaps_mapping_facts", "page_mapping_facts")}
    with open_store([_copy(tmp_path / "a", "a"), _copy(tmp_path / "b", "b")]) as two:
        assert two.execute("SELECT count(*) FROM processes").fetchone()[0] == \
            2 * st.execute("SELECT count(*) FROM processes").fetchone()[0]
        for name, want in single.items():
            cur = queries.run(two.con, name, {"snapshot_ids": ids})
            rows = _rows(cur)
            assert len(rows) == 2 * len(want), name
            for h in ("a", "b"):
                mine = sorted(repr(tuple("sample" if k == "host" else v for k, v in r.items()))
                              for r in rows if r["host"] == h)
                assert mine == want, (name, h)


@pytest.mark.parametrize("first", [1, 2, 32])
def test_top_pairs_are_the_first_rows_of_every_pair(monkeypatch, first):
    """`shared --pairs --limit N` and the report form only the pairs of the processes that share most, growing
    the candidates until no other pair can reach the N-th row; the rows must be exactly the first N of all
    pairs (ties included), and the heatmap the one all pairs give.  ``first`` small makes the candidates grow."""
    from analyzer import shared as sh
    from analyzer.store import open_store

    monkeypatch.setattr(sh, "TOP_PAIRS_FIRST", first)
    with open_store(str(SAMPLE_STORE)) as st:
        for snap in [s for s in st.snapshots() if s.pfn_available and s.kpage_available]:
            filt = {"pfilter": None, "ufilter": None}
            every = sh.shared(st, snap, "pairs").rows
            assert len(every) >= 3
            for k in range(1, len(every) + 2):
                assert sh.shared(st, snap, "pairs", limit=k).rows == every[:k], k
            assert sh.heatmap_pairs(st, snap, 4, filt) == sh.pair_matrix(every, 4)
            # what the growth relies on: a pair shares at most what each of its processes shares, and a
            # process's pair_frames is what its pairs add up to
            _, totals = sh._run(st, snap, "shared_pair_totals", filt)
            tot = {r["pid"]: r for r in totals}
            kb = snap.page_size_bytes // 1024
            for r in every:
                assert r["shared_kb"] <= kb * min(tot[r["pid_a"]]["shared_frames"], tot[r["pid_b"]]["shared_frames"])
            for pid, t in tot.items():
                assert kb * t["pair_frames"] == sum(r["shared_kb"] for r in every if pid in (r["pid_a"], r["pid_b"]))


def _hub_machine(hubs, leaves, alone: dict) -> dict[int, set]:
    """Frames per pid: each hub shares 3 frames with each leaf; each pair in ``alone`` shares its number of
    frames with nobody else."""
    frames: dict[int, set] = {p: set() for p in (*hubs, *leaves)}
    nxt = 0
    for leaf in leaves:
        for hub in hubs:
            fs = set(range(nxt, nxt + 3))
            nxt += 3
            frames[hub] |= fs
            frames[leaf] |= fs
    for (a, b), n in alone.items():
        fs = set(range(10_000 + a * 100, 10_000 + a * 100 + n))
        frames[a], frames[b] = frames.get(a, set()) | fs, frames.get(b, set()) | fs
    return frames


@pytest.mark.parametrize("frames", [
    # the best pair ranks last by shared frames: stopping before the bound allows misses it
    _hub_machine((1, 2), range(10, 15), {(90, 91): 5}),
    # an unseen pair ties the k-th row and sorts before it (lower pids): only a strict bound waits for it
    _hub_machine((5, 6), range(10, 15), {(3, 4): 3}),
], ids=["best-pair-ranks-last", "tie-at-the-bound"])
def test_top_pairs_grows_until_no_unseen_pair_can_win(monkeypatch, frames):
    """The bound at work on machines built for it (hubs sharing a little with many leaves rank first by shared
    frames); ``shared_pair_totals`` and ``shared_pairs`` are computed here in Python from the frames."""
    from itertools import combinations
    from types import SimpleNamespace

    from analyzer import shared as sh

    def pairs(pids):
        rows = [{"pid_a": a, "name_a": f"p{a}", "pid_b": b, "name_b": f"p{b}", "shared_kb": 4 * len(frames[a] & frames[b])}
                for a, b in combinations(sorted(pids), 2) if frames[a] & frames[b]]
        return sorted(rows, key=lambda r: (-r["shared_kb"], r["pid_a"], r["pid_b"]))

    def fake_run(store, s, name, params):
        if name == "shared_pair_totals":
            rows = [{"pid": p, "shared_frames": sum(1 for f in fs if any(f in o for q, o in frames.items() if q != p)),
                     "pair_frames": sum(len(fs & o) for q, o in frames.items() if q != p)} for p, fs in frames.items()]
            rows = [r for r in rows if r["shared_frames"]]
            return ["pid", "shared_frames", "pair_frames"], sorted(rows, key=lambda r: (-r["shared_frames"], r["pid"]))
        assert name == "shared_pairs"
        return ["pid_a", "name_a", "pid_b", "name_b", "shared_kb"], pairs(params["pids"] or frames)

    monkeypatch.setattr(sh, "_run", fake_run)
    monkeypatch.setattr(sh, "TOP_PAIRS_FIRST", 1)
    every = pairs(frames)
    snap = SimpleNamespace(page_size_bytes=4096)
    for k in range(1, len(every) + 1):
        assert sh.top_pairs(None, snap, k, {})[1] == every[:k], k


@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory):
    """Two snapshots of one synthetic machine (bench/synth.py; the second a little bigger, PFNs renumbered, as
    bench/floor_bench.py makes them): swap entries shared and private, anon, file and shmem pages, THP."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("synth", Path(__file__).resolve().parent.parent / "bench" / "synth.py")
    synth = importlib.util.module_from_spec(spec)
    sys.modules["synth"] = synth  # its dataclasses look their module up
    spec.loader.exec_module(synth)
    out = tmp_path_factory.mktemp("pairs") / "store"
    for pages in (30000, 30600):
        synth.generate(procs=30, pages=pages, seed=2, out=str(out), verbose=False)
    # a few frames without their row, as a failed kpage read leaves them: counted as private, a whole page each
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    for f in out.glob("frames/*/*/*.parquet"):
        t = pq.read_table(f)
        pq.write_table(t.filter(pc.not_equal(pc.bit_wise_and(t["pfn"], 31), 7)), f)  # keeps the schema's metadata
    return str(out)


def test_diff_pages_in_one_pass_equals_facts_and_transitions_apart(synth_pair, monkeypatch):
    """diff --source pages by process pairs both snapshots' pages once (queries/page_pairs.sql) and takes both
    snapshots' page facts from the pairs: the facts are page_mapping_facts' own, every column of every mapping,
    and the diff's rows (sizes and transitions) those of the facts and page_transitions computed apart."""
    from analyzer import diff as diff_mod
    from analyzer.sizes import page_facts_table

    with open_store(synth_pair) as st:
        before, after = st.snapshots()
        assert before.boot_id == after.boot_id
        trans = diff_mod._pairs(st, before, after)
        apart = page_facts_table(st.con, [before, after], "_apart")
        cols = [d[0] for d in st.con.execute("SELECT * FROM _apart LIMIT 0").description]
        got, want = (st.con.execute(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall() for t in (diff_mod._FACTS, apart))
        assert got == want
        assert [d[0] for d in st.con.execute(f'SELECT * FROM "{diff_mod._FACTS}" LIMIT 0').description] == cols
        for c in ("swap_pages", "swap_pss_fp", "anon_pages", "file_pages", "shmem_pages", "unknown_frames"):
            assert st.con.execute(f"SELECT sum({c}) FROM _apart").fetchone()[0] > 0, f"the synthetic store has no {c}: the comparison would not see it"
        params = {"from_host": before.host, "from_id": before.snapshot_id, "to_host": after.host,
                  "to_id": after.snapshot_id, "mapfilter": None, "parts": 1, "part": 0}
        rows = {r["pid"]: r for r in _rows(queries.run(st.con, "page_transitions", params))}
        assert trans == rows and any(r["swapped_out_kb"] or r["swapped_in_kb"] for r in rows.values())
        one = diff_mod.diff(st, before, after, source="pages")
        monkeypatch.setattr(diff_mod, "_pairs", lambda *a: None)  # the facts and transitions apart
        two = diff_mod.diff(st, before, after, source="pages")
        assert one.rows == two.rows and one.columns == two.columns and len(one.rows) > 10
