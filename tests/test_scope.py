"""Partition pruning at open (common/catalog.py ``select``, issue 13): a question about the latest snapshot, a
pair, a few ids or a time range opens only the partitions and segments it needs, and answers exactly as an
open of the whole store (``MEMSNAP_SCOPE=all``) does.  That nothing else is read is shown with damaged files
outside the scope: they are never touched, while a command that needs them still names them.
"""
from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

import pytest

from conftest import memsnap
from test_compact import make_store, series  # noqa: F401  (series: the fixture's module)

START = datetime(2026, 11, 20, 21, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def tables():
    from conftest import SAMPLE_STORE

    return series.load_latest(str(SAMPLE_STORE))


@pytest.fixture(scope="module")
def store(tmp_path_factory, tables):
    """Host a: 30 snapshots every 3 h from 2026-11-20 21:00 (four days; 2026-11-22 compacted).  Host b: 5
    snapshots a minute apart on 2026-11-20, then one on 2026-11-21 00:30: its last two span two days."""
    s = str(tmp_path_factory.mktemp("scope") / "s")
    make_store(s, tables, 30, host="a", start=START, step=3 * 3600)
    make_store(s, tables, 5, host="b", start=START + timedelta(minutes=30), step=60)
    series.write_series(tables, s, 1, "b", START + timedelta(hours=3, minutes=30), 60, first=7)
    memsnap("compact", s, "--host", "a", "--date", "2026-11-22")
    return s


def ids(s, host):
    from common import catalog
    from schema import TABLES

    return [sid for h, sid in catalog.scan(s, TABLES, host).snapshot_ids() if h == host]


def same_as_whole_store(*args):
    """The command's output with its scope, and with the whole store opened: byte for byte."""
    scoped = memsnap(*args)
    whole = memsnap(*args, env=dict(os.environ, MEMSNAP_SCOPE="all"))
    assert scoped.stdout == whole.stdout and scoped.stdout, args
    assert scoped.stderr == whole.stderr, args
    return scoped.stdout


def test_scoped_answers_are_the_whole_stores(store):
    a, b = ids(store, "a"), ids(store, "b")
    compacted = [sid for sid in a if sid.startswith("20261122")]
    assert len(a) == 30 and len(b) == 6 and len(compacted) == 8
    for args in (["sizes", "--source", "pages", "--host", "a"],
                 ["sizes", "-f", "json"],  # the latest of each host: on different days
                 ["sizes", "--host", "a", "--snapshot", compacted[3][:15], "--source", "pages"],
                 ["shared", "--host", "b", "--snapshot", b[2]],
                 ["diff", "--host", "a", "--source", "pages", "-f", "json"],
                 ["diff", "--host", "b", "--source", "pages", "-f", "json"],  # its last two span two days
                 ["diff", "--from", compacted[1], "--to", a[-1], "--source", "pages", "-f", "json"],
                 ["diff", "--host", "a", "--since", "2026-11-22T05:00+00:00", "--until", "2026-11-23T07:00+00:00",
                  "--source", "pages", "-f", "json"],
                 ["trend", "--host", "a", "--last", "4", "--source", "pages", "-f", "json"],
                 ["trend", "--host", "b", "--last", "2", "-f", "json"],
                 ["trend", "--since", "2026-11-21T23:00+00:00", "--until", "2026-11-22T10:00+00:00", "-f", "json"],
                 ["snapshots", "--since", "2026-11-22T05:00+00:00", "--until", "2026-11-23T07:00+00:00", "-f", "json"]):
        same_as_whole_store(args[0], store, *args[1:])


def test_what_the_scope_opens(store):
    """The files each scope brings: exactly the segments of the snapshots it names (a compacted segment
    whole), found from directory listings and the compacted commit files."""
    from analyzer.api import scope_for
    from analyzer.store import Store
    from common import layout

    a, b = ids(store, "a"), ids(store, "b")

    def opened(**kw):
        with Store([store], scope=scope_for(**kw)) as st:
            segs = {(layout.host_of(f), layout.segment_of(f)) for fs in st._good.values() for f in fs}
            return segs, [(s.host, s.snapshot_id) for s in st.snapshots()]

    segs, snaps = opened(ids=("latest",))
    assert snaps == sorted([("a", a[-1]), ("b", b[-1])], key=lambda x: x[1])
    assert segs == {("a", a[-1]), ("b", b[-1])}
    segs, snaps = opened(host="b", latest=2)  # the last two of b are on two days
    assert snaps == [("b", sid) for sid in b[-2:]] and segs == {("b", sid) for sid in b[-2:]}
    segs, snaps = opened(host="a", ids=(a[12][:15],))  # in the compacted day: its segment comes whole
    assert len(segs) == 1 and next(iter(segs))[1].startswith(layout.COMPACT_PREFIX)
    assert [sid for _, sid in snaps] == [sid for sid in a if sid.startswith("20261122")]
    lo, hi = "2026-11-23T05:00+00:00", "2026-11-23T13:00+00:00"  # a loose day: 3 of its 8 snapshots
    segs, snaps = opened(since=lo, until=hi)
    want = [sid for sid in a if "20261123T050000" <= sid <= "20261123T130000"]
    assert len(want) == 3 and [sid for _, sid in snaps] == want and segs == {("a", sid) for sid in want}
    segs, snaps = opened()  # no scope: everything
    assert len(snaps) == 36


def _damage(store, host, sid):
    """Cut one data file of a loose snapshot to half: unreadable Parquet."""
    from common import layout

    p = layout.data_path(store, "pages", host, sid[:4] + "-" + sid[4:6] + "-" + sid[6:8], sid)
    with open(p, "r+b") as f:
        f.truncate(os.path.getsize(p) // 2)
    return p


def test_files_outside_the_scope_are_never_read(tmp_path, tables):
    s = make_store(tmp_path / "s", tables, 12, host="a", start=START, step=3600)  # 21:00 .. 08:00 next day
    a = ids(s, "a")
    old = _damage(s, "a", a[0])  # the first day
    early = _damage(s, "a", a[4])  # the second day, 01:00, before the range below
    # the latest, the last two, a range after the damage, an id: none reads the damaged files
    memsnap("sizes", s, "--source", "pages")
    memsnap("diff", s, "--source", "pages")
    out = memsnap("snapshots", s, "--since", "2026-11-21T02:00+00:00", "-f", "json").stdout
    assert a[4] not in out and a[5] in out and a[-1] in out
    memsnap("trend", s, "--since", "2026-11-21T02:00+00:00", "--source", "pages")
    memsnap("sizes", s, "--snapshot", a[6], "--source", "pages")
    # what needs them still names them, in one line, as before
    # `snapshots` reads the commit table only: a damaged pages file is not its business
    assert len(json.loads(memsnap("snapshots", s, "-f", "json").stdout)) == 12
    for args, bad in ((["sql", s, "SELECT count(*) FROM pages"], (old, early)),
                      (["sizes", s, "--snapshot", a[4]], (early,)),
                      (["trend", s, "--since", "2026-11-21T00:30+00:00"], (early,))):
        cp = memsnap(*args, check=False)
        assert cp.returncode != 0 and any(p in cp.stderr for p in bad), (args, cp.stderr)
        assert "Traceback" not in cp.stderr
    cp = memsnap("--skip-bad", "snapshots", s, "-f", "json")
    assert a[0] not in cp.stdout and a[4] not in cp.stdout and a[5] in cp.stdout


def test_ids_of_another_form_bring_every_snapshot_of_their_host(tmp_path):
    """``latest`` trusts id order only for ids that start with the capture time; other ids (not written by
    memsnap) bring every snapshot of their host, and the store's own capture_start ordering decides."""
    from common import catalog, layout

    for d, name in (("2026-11-25", "zz-first"), ("2026-11-26", "aa-second")):
        p = layout.data_path(str(tmp_path), layout.COMMIT_TABLE, "x", d, name)
        os.makedirs(os.path.dirname(p))
        open(p, "wb").close()  # loose segments are known by name: never opened here
    cat = catalog.select(str(tmp_path), [layout.COMMIT_TABLE], catalog.Scope(latest=1))
    assert sorted(cat.winners) == [("x", "aa-second"), ("x", "zz-first")]
    p = layout.data_path(str(tmp_path), layout.COMMIT_TABLE, "y", "2026-11-26", "20261126T000000000000Z-h-1")
    os.makedirs(os.path.dirname(p))
    open(p, "wb").close()
    cat = catalog.select(str(tmp_path), [layout.COMMIT_TABLE], catalog.Scope(latest=1, host="y"))
    assert list(cat.winners) == [("y", "20261126T000000000000Z-h-1")]
