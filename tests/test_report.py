"""The HTML report: same numbers as the CLI, self-contained, and it renders in a real headless browser."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from conftest import ROOT, SAMPLE_STORE, memsnap, require_or_skip

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Tables(HTMLParser):
    """Collects every <table id=...> as a list of rows {header: data-v or text}."""

    def __init__(self):
        super().__init__()
        self.tables, self._t, self._row, self._cell, self._hdr, self._in = {}, None, None, None, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._t = a.get("id")
            self.tables[self._t] = []
            self._hdr = []
        elif tag == "tr" and self._t:
            self._row = []
        elif tag in ("td", "th") and self._t:
            self._in = tag
            self._cell = {"v": a.get("data-v"), "text": ""}

    def handle_data(self, data):
        if self._in:
            self._cell["text"] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._in:
            if self._in == "th":
                self._hdr.append(self._cell["text"])
            else:
                self._row.append(self._cell)
            self._in = None
        elif tag == "tr" and self._row:
            self.tables[self._t].append({h: (int(c["v"]) if c["v"] not in (None, "") and
                                             re.fullmatch(r"-?\d+", c["v"]) else
                                             (float(c["v"]) if c["v"] not in (None, "") else c["text"]))
                                         for h, c in zip(self._hdr, self._row)})
            self._row = None
        elif tag == "table":
            self._t = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r.html"
    memsnap("report", str(SAMPLE_STORE), "-o", str(out), "--top", "15")
    text = out.read_text()
    p = Tables()
    p.feed(text)
    return out, text, p.tables


def test_wiring_report_numbers_equal_the_cli(report):
    """A wiring test: the report and the CLI call the same functions, so this shows the report shows what the
    CLI computes, not that either is right (the live tests and smem are the oracles for the numbers)."""
    _, _, t = report
    cols = "command count uss pss rss swap"
    cli = json.loads(memsnap("sizes", str(SAMPLE_STORE), "--by", "command", "--source", "pages", "-s", "pss", "-r",
                             "-c", cols, "--limit", "15", "-f", "json").stdout)
    assert t["t-consumers"] == [{c: r[c] for c in cols.split()} for r in cli]
    diff = json.loads(memsnap("diff", str(SAMPLE_STORE), "--source", "pages", "-s", "pss_delta", "-r",
                              "-f", "json").stdout)
    growers = [r for r in diff if r["pss_delta"] > 0][:15]
    assert [(r["pid"], r["pss_delta"], r["uss_delta"]) for r in t["t-growers"]] == \
        [(r["pid"], r["pss_delta"], r["uss_delta"]) for r in growers]
    cow = sorted([r for r in diff if r["became_private_kb"]], key=lambda r: -r["became_private_kb"])
    assert [(r["pid"], r["became_private_kb"]) for r in t["t-cow"]] == [(r["pid"], r["became_private_kb"]) for r in cow]
    groups = json.loads(memsnap("shared", str(SAMPLE_STORE), "--groups", "command", "-f", "json").stdout)
    assert t["t-groups"] == groups[:15]
    rec = json.loads(memsnap("shared", str(SAMPLE_STORE), "--reconcile", "-f", "json").stdout)
    assert [(r["area"], r["kb"]) for r in t["t-reconcile"]] == [(r["area"], r["kb"]) for r in rec]
    hist = json.loads(memsnap("shared", str(SAMPLE_STORE), "--histogram", "-f", "json").stdout)
    assert [r["kb"] for r in t["t-histogram"]] == [r["kb"] for r in hist]


def test_report_opens_with_what_things_cost(report):
    """Issue 16 item 6: the first section after the header is each command's real cost from shared --groups
    (the group's USS, freed if it all exited; PSS; RSS counting shared pages fully), then the observer's line;
    the whole-memory section shows nothing for a snapshot without the physmem source."""
    _, text, t = report
    assert re.findall(r"<h2>([^<]*)</h2>", text)[0] == "What things really cost"
    groups = json.loads(memsnap("shared", str(SAMPLE_STORE), "--groups", "command", "-f", "json").stdout)
    assert t["t-costs"] == [{"command": g["group"], "processes": g["processes"], "uss_kb": g["uss_kb"],
                             "pss_kb": g["pss_kb"], "rss_kb": g["rss_kb"]} for g in groups[:15]]
    assert t["t-costs"][0]["uss_kb"] > 0 and "freed if it all exited" in text and "counted fully" in text
    assert len(re.findall(r"Observer: [^<]*recorder", text)) == 1


def test_report_is_self_contained(report):
    _, text, _ = report
    assert "<svg" in text and text.count("<svg") >= 5  # charts inline
    for m in re.finditer(r'\b(?:src|href)\s*=\s*["\']([^"\']+)', text):
        assert not re.match(r"(https?:)?//", m.group(1)), m.group(1)
    assert "<link" not in text and "@import" not in text and "url(http" not in text


def test_report_is_deterministic(report, tmp_path):
    """The same store gives the same report, byte for byte: the charts' SVG ids come from a fixed salt and no
    drawing time is written (what lets tests/test_spark.py compare the two engines' reports whole)."""
    _, text, _ = report
    again = tmp_path / "again.html"
    memsnap("report", str(SAMPLE_STORE), "-o", str(again), "--top", "15")
    assert again.read_text() == text and "<metadata>" not in text


def _needs_chromium():
    if CHROMIUM is None:
        require_or_skip("Debian's chromium is not installed (make test installs it)")


def test_report_renders_in_headless_chromium(report, tmp_path):
    _needs_chromium()
    path, _, _ = report
    shot, netlog = tmp_path / "shot.png", tmp_path / "net.json"
    cp = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}", "--window-size=1280,2400",
         f"--screenshot={shot}", "--virtual-time-budget=3000", f"file://{path}"],
        capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 20_000, cp.stderr[-2000:]
    # the report logs nothing: any console line (console.error, an uncaught exception) is a failure
    console = [ln for ln in cp.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == []
    assert page_requests(netlog) == []
    if os.environ.get("MEMSNAP_UPDATE_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / "report.png")


def page_requests(netlog) -> list[str]:
    """URLs the page itself asked the network for.  Chromium's own background requests have the initiator
    'not an origin'; anything the file:// page loads has initiator 'null'."""
    d = json.loads(netlog.read_text())
    kinds = {v: k for k, v in d["constants"]["logEventTypes"].items()}
    return [e["params"].get("url") for e in d["events"]
            if kinds.get(e["type"]) == "URL_REQUEST_START_JOB" and e.get("params", {}).get("url")
            and e["params"].get("initiator") != "not an origin"]


def test_browser_check_catches_fetches_and_console_errors(report, tmp_path):
    """The browser test can fail: a page with a remote image and a console error is caught."""
    _needs_chromium()
    path, text, _ = report
    bad = tmp_path / "bad.html"
    bad.write_text(text.replace("<body>", '<body><img src="http://127.0.0.1:9/x.png"><script>console.error("x")'
                                "</script>", 1))
    netlog = tmp_path / "net.json"
    cp = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", f"--user-data-dir={tmp_path / 'p'}",
                         "--enable-logging=stderr", "--v=0", f"--log-net-log={netlog}",
                         f"--screenshot={tmp_path / 's.png'}", "--virtual-time-budget=3000", f"file://{bad}"],
                        capture_output=True, text=True, timeout=120)
    assert any(":CONSOLE" in ln for ln in cp.stderr.splitlines())
    assert page_requests(netlog) == ["http://127.0.0.1:9/x.png"]


def test_report_shows_every_frame_when_the_snapshot_has_physmem(tmp_path):
    """Issue 16 item 6: after the costs, a snapshot recorded with the physmem source gets the whole-memory
    breakdown, by class and by cgroup: the tables `memsnap memory` prints (a wiring test; tests/test_physmem.py
    checks the numbers against the kernel). The sample store (no physmem) has no such section (above)."""
    physmem = SAMPLE_STORE.parent / "physmem"
    out = tmp_path / "r.html"
    memsnap("report", str(physmem), "-o", str(out), "--top", "15")
    text = out.read_text()
    p = Tables()
    p.feed(text)
    heads = re.findall(r"<h2>([^<]*)</h2>", text)
    assert heads[:2] == ["What things really cost", "Where the memory went (every frame)"]
    by_class = json.loads(memsnap("memory", str(physmem), "--by", "class", "-f", "json").stdout)
    assert [(r["class"], r["kb"]) for r in p.tables["t-memory-class"]] == [(r["class"], r["kb"]) for r in by_class]
    by_cgroup = json.loads(memsnap("memory", str(physmem), "--by", "cgroup", "-f", "json").stdout)[:15]
    assert [(r["cgroup"], r["charged_kb"], r["pss_kb"]) for r in p.tables["t-memory-cgroup"]] == \
        [(r["cgroup"], r["charged_kb"], r["pss_kb"]) for r in by_cgroup]


def test_report_without_physmem_has_no_whole_memory_section(report):
    _, text, t = report
    assert "Where the memory went" not in text and "t-memory-class" not in t


def _report_html(share: bool) -> str:
    """The report on the sample store in this process, with its charts' ids and dates fixed (matplotlib's
    svg.hashsalt and SOURCE_DATE_EPOCH), so two reports compare byte for byte."""
    import matplotlib

    from analyzer import open_store
    from analyzer import report as rp
    from analyzer.snapshots import report_snapshots

    matplotlib.rcParams["svg.hashsalt"] = "test_report"
    with open_store([str(SAMPLE_STORE)]) as st:
        pair, span = report_snapshots(st.snapshots(), None, None, None)
        html = rp.build(st, pair, span, share=share).html
        left = st.con.raw.execute(  # what the report made for its sections is gone with it
            "SELECT table_name FROM duckdb_tables() WHERE temporary AND (table_name = ? OR table_name LIKE "
            "'_materialised%') UNION ALL SELECT function_name FROM duckdb_functions() WHERE schema_name = 'temp'",
            [rp.FACTS_TABLE]).fetchall()
        assert left == []
        return html


def test_report_sharing_work_between_sections_changes_no_byte(monkeypatch):
    """Issue 15: the report computes the page facts of both snapshots and the last snapshot's pages (its
    snapshot_pages and member_frames) once for every section; the oracle is the report whose sections each
    compute their own, as the CLI commands do: the same HTML, byte for byte."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    shared, own = _report_html(True), _report_html(False)
    assert "t-cow" in shared and "t-pairs" in shared and "t-reconcile" in shared  # every page-level section ran
    assert shared == own


def test_materialised_macro_reads_its_rows_once_and_nothing_else(tmp_path):
    """queries.materialised: the macro called with its arguments gives the rows it computes (the columns kept),
    called with others it computes as before, and on leaving the block the macro is itself again."""
    from analyzer import open_store, queries

    cols = ("pid", "pfn", "mapcount", "flags", "ps", "counted", "kind")
    sel = ", ".join(cols)
    with open_store([str(SAMPLE_STORE)]) as st:
        a, b = st.snapshots()[-1], st.snapshots()[0]
        q = f"SELECT {sel} FROM snapshot_pages(?, ?) ORDER BY ALL"
        want_a = st.con.execute(q, [a.host, a.snapshot_id]).fetchall()
        want_b = st.con.execute(q, [b.host, b.snapshot_id]).fetchall()
        assert want_a and want_b and want_a != want_b
        with queries.materialised(st.con, "snapshot_pages", (a.host, a.snapshot_id), cols) as table:
            assert st.con.execute(q, [a.host, a.snapshot_id]).fetchall() == want_a
            assert st.con.execute(q, [b.host, b.snapshot_id]).fetchall() == want_b
            st.con.execute(f'DELETE FROM "{table}"')  # the calls with a's arguments read the table, not pages
            assert st.con.execute(q, [a.host, a.snapshot_id]).fetchall() == []
            with pytest.raises(Exception, match="vpn"):  # a column not kept fails, never reads wrong
                st.con.execute("SELECT vpn FROM snapshot_pages(?, ?)", [a.host, a.snapshot_id])
        assert st.con.execute(q, [a.host, a.snapshot_id]).fetchall() == want_a
