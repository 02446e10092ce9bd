"""--host on multi-host stores (issue 14, item 4): repeatable, or a ~regex; `sizes --across-hosts`.

The store is sample_data/store copied under three host names (web-1, web-2, db-1), as `memsnap push` or rsync
from three hosts would merge it. Expected rows come from runs naming one host at a time (the old, exact form),
never from hard-coded figures."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import SAMPLE_STORE, memsnap

HOSTS = ("web-1", "web-2", "db-1")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("fleet") / "store"
    shutil.copytree(SAMPLE_STORE, root)
    for table in root.iterdir():
        src = table / "host=sample"
        if src.is_dir():
            for h in HOSTS:
                shutil.copytree(src, table / f"host={h}")
            shutil.rmtree(src)
    return str(root)


def rows(*args) -> list[dict]:
    return json.loads(memsnap(*args, "-f", "json").stdout)


COLS = ("-c", "host snapshot_id command count swap uss pss rss")


def one_host(fleet, host, *args) -> list[dict]:
    return rows("sizes", fleet, "--host", host, *args, *COLS)


@pytest.mark.parametrize("spec,chosen", [(("~web-.*",), ("web-1", "web-2")), (("~.*-1",), ("web-1", "db-1")),
                                         (("web-2", "--host", "db-1"), ("web-2", "db-1")),
                                         (("~web-[0-9]+", "--host", "web-1"), ("web-1", "web-2"))])
def test_host_repeated_or_regex_chooses_those_hosts(fleet, spec, chosen):
    got = rows("sizes", fleet, "--by", "command", "--source", "pages", "--host", *spec, *COLS)
    want = [r for h in chosen for r in one_host(fleet, h, "--by", "command", "--source", "pages")]
    assert {r["host"] for r in got} == set(chosen)
    key = lambda r: (r["host"], r["command"])  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    snaps = rows("snapshots", fleet, "--host", *spec)
    assert {r["host"] for r in snaps} == set(chosen) and len(snaps) == 2 * len(chosen)


def test_across_hosts_adds_each_group_summed_over_the_hosts(fleet):
    got = rows("sizes", fleet, "--by", "command", "--host", "~web-.*", "--across-hosts", *COLS)
    per_host = [r for h in ("web-1", "web-2") for r in one_host(fleet, h, "--by", "command")]
    totals = [r for r in got if r["host"] == "*"]
    assert [r for r in got if r["host"] != "*"] and len(totals) == len({r["command"] for r in per_host})
    for t in totals:
        mine = [r for r in per_host if r["command"] == t["command"]]
        assert t["snapshot_id"] == f"{len(mine)} hosts"
        for c in ("count", "swap", "uss", "pss", "rss"):
            assert t[c] == sum(r[c] for r in mine), c


@pytest.mark.parametrize("args,message", [
    (("--host", "nope"), "no committed snapshots for host 'nope'"),
    (("--host", "~x.*"), "--host '~x.*' matches no host of the stores (db-1, web-1, web-2)"),
    (("--host", "~web"), "--host '~web' matches no host"),  # the regex matches the whole name
    (("--host", "web-1", "--host", "nope"), "--host 'nope' matches no host"),
    (("--host", "~("), "--host '~(' is not a valid regular expression"),
    (("--across-hosts",), "--across-hosts needs --by user, command, cgroup, not --by process"),
])
def test_bad_host_choices_are_one_line_errors(fleet, args, message):
    r = memsnap("sizes", fleet, *args, check=False)
    assert r.returncode != 0 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_diff_and_report_still_need_one_host(fleet):
    r = memsnap("diff", fleet, "--host", "~web-.*", check=False)
    assert r.returncode != 0 and "which two snapshots" in r.stderr
    assert rows("diff", fleet, "--host", "~web-2", "--by", "command")  # a regex that chooses one host is one host
