"""Golden outputs: the analyzer's JSON on sample_data, byte for byte, for every command and view.

The files in ``tests/golden/`` were written by the code *before* a refactor and must not change with one
(DESIGN: a change that must not change answers keeps golden outputs).  A change that is meant to change an
answer regenerates them on purpose, and the diff of the golden files shows what changed:

    MEMSNAP_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py

The commands run in-process through the typer app (one process for all cases keeps this test fast); what
is compared is exactly what a user's ``memsnap ... --format json`` prints on stdout.
"""
from __future__ import annotations

import os
import re

import pytest
from typer.testing import CliRunner

from conftest import ROOT, SAMPLE_STORE

GOLDEN = ROOT / "tests" / "golden"
S = str(SAMPLE_STORE)
SIZES_BY = ("process", "user", "command", "cgroup", "mapping")
DIFF_BY = ("process", "command", "user", "cgroup", "mapping")
SOURCES = ("smaps", "pages")

CASES: dict[str, list[str]] = {"snapshots": ["snapshots", S, "--format", "json"]}
for src in SOURCES:
    for by in SIZES_BY:
        CASES[f"sizes-{by}-{src}"] = ["sizes", S, "--by", by, "--source", src, "--format", "json"]
    CASES[f"sizes-process-{src}-all-columns-sorted"] = [
        "sizes", S, "--source", src, "--columns", "pid starttime user uid command name cgroup maps swap uss pss rss "
        "vss swappss pss_anon pss_file pss_shmem anon file shmem hugetlb thp", "--sort", "rss", "--reverse",
        "--format", "json"]
    CASES[f"sizes-user-{src}-numeric-totals"] = ["sizes", S, "--by", "user", "--source", src, "--numeric",
                                                 "--totals", "--format", "json"]
    CASES[f"sizes-process-{src}-filters"] = ["sizes", S, "--source", src, "--processfilter", "python",
                                             "--userfilter", "root", "--mapfilter", "lib|heap", "--limit", "5",
                                             "--format", "csv"]
    CASES[f"sizes-process-{src}-first-snapshot"] = ["sizes", S, "--source", src, "--snapshot", "20261125T193143",
                                                    "--format", "json"]
    for by in DIFF_BY:
        CASES[f"diff-{by}-{src}"] = ["diff", S, "--by", by, "--source", src, "--format", "json"]
    CASES[f"diff-process-{src}-min-change"] = ["diff", S, "--source", src, "--min-change", "8", "--sort", "rss_delta",
                                               "--reverse", "--format", "json"]
    for by in ("process", "command"):
        CASES[f"trend-{by}-{src}"] = ["trend", S, "--by", by, "--source", src, "--format", "json"]
        CASES[f"trend-{by}-{src}-leaks"] = ["trend", S, "--by", by, "--source", src, "--leaks", "--min-points", "2",
                                            "--format", "json"]
CASES["sizes-system"] = ["sizes", S, "--by", "system", "--format", "json"]
for g in ("command", "user", "cgroup", "regex:python"):
    CASES[f"shared-groups-{g.replace(':', '_')}"] = ["shared", S, "--groups", g, "--format", "json"]
for flag in ("--pairs", "--histogram", "--flags", "--reconcile"):
    CASES[f"shared{flag[1:]}"] = ["shared", S, flag, "--format", "json"]
CASES["shared-mapping"] = ["shared", S, "--by", "mapping", "--format", "json"]
CASES["shared-mapping-detail"] = ["shared", S, "--by", "mapping", "--detail", "--mapfilter", "lib", "--format",
                                  "json"]
for name in ("process_sizes_smaps", "snapshot_list", "shared_flags", "shared_histogram", "shared_pairs",
             "shared_reconcile"):
    CASES[f"query-{name}"] = ["query", name, S, "--format", "json"]
for by in ("command", "user", "cgroup"):
    CASES[f"query-shared_groups-{by}"] = ["query", "shared_groups", S, "--param", f"by={by}", "--format", "json"]
# the large views (up to 80k rows here) as a row count and a digest of every row's full text
for name in ("frame_sharers", "mapping_kinds", "pages_decoded", "processes", "mappings", "pages", "frames",
             "meminfo", "snapshots"):
    CASES[f"sql-digest-{name}"] = [
        "sql", S, f"SELECT count(*) AS n, md5(string_agg(CAST(t AS VARCHAR), '|' ORDER BY CAST(t AS VARCHAR))) "
        f"AS digest FROM {name} t", "--format", "json"]
CASES["sql-snapshot-pages-macro"] = [
    "sql", S, "SELECT pid, count(*) AS n, sum(mapcount) AS mapcounts, count(DISTINCT kind) AS kinds FROM snapshot_pages('sample', "
    "(SELECT max(snapshot_id) FROM snapshots)) GROUP BY pid ORDER BY pid", "--format", "json"]


def _app():
    from cli import app
    return app


def run(args: list[str]) -> tuple[int, str]:
    res = CliRunner().invoke(_app(), args)
    return res.exit_code, res.stdout


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output(name):
    code, out = run(CASES[name])
    assert code == 0, out
    path = GOLDEN / f"{name}.out"
    if os.environ.get("MEMSNAP_UPDATE_GOLDEN"):
        path.write_text(out)
    assert path.exists(), f"no golden file {path.name}: run with MEMSNAP_UPDATE_GOLDEN=1 once"
    assert out == path.read_text(), f"{name}: output differs from {path.name}"


def test_golden_files_are_all_used():
    """A golden file without a case would silently stop being checked."""
    names = {p.stem for p in GOLDEN.glob("*.out")}
    assert names == set(CASES)


def test_golden_outputs_are_not_trivial():
    """Each golden holds real rows, not an empty list that any broken command would also print."""
    for p in GOLDEN.glob("*.out"):
        text = p.read_text().strip()
        assert text not in ("", "[]"), p.name
        assert re.search(r"\d", text), p.name


@pytest.fixture(scope="module")
def compacted_stores(tmp_path_factory):
    """Copies of the sample store: compacted, and compacted with the merged files still there (a compaction
    killed after its commit, before removing its inputs: each snapshot then has two commit rows)."""
    import shutil

    from recorder.compact import compact

    out = {}
    for state in ("compacted", "inputs-left"):
        d = tmp_path_factory.mktemp(state) / "store"
        shutil.copytree(SAMPLE_STORE, d)
        res = compact(str(d), include_today=True)
        assert [p.snapshots for p in res.partitions if p.segment] == [2]
        if state == "inputs-left":
            for f in SAMPLE_STORE.rglob("*.parquet"):
                shutil.copy2(f, d / f.relative_to(SAMPLE_STORE))
        n = len(list(d.rglob("*.parquet")))
        assert n == (6 if state == "compacted" else 18), n
        out[state] = str(d)
    return out


@pytest.mark.parametrize("state", ["compacted", "inputs-left"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_output_after_compaction(name, state, compacted_stores):
    """Compaction must not change an answer: every case, on a compacted copy, prints its golden file."""
    code, out = run([compacted_stores[state] if a == S else a for a in CASES[name]])
    assert code == 0, out
    assert out == (GOLDEN / f"{name}.out").read_text(), f"{name} on the {state} store differs from the golden file"
