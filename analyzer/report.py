"""A self-contained HTML comparison report: charts inline (SVG), sortable tables, no network fetches.

Every number in a table comes from the same library calls as the CLI (sizes, diff, shared, trend), so
the report and ``memsnap sizes|diff|shared`` agree (tests/test_report.py checks it).
"""
from __future__ import annotations

import html
import os
import re
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime

from common.errors import MemsnapError

from . import plot, queries
from .diff import diff, view_of
from .shared import Table, heatmap_pairs, pair_totals, shared, top_pairs
from .sizes import SizesResult, page_facts_table, sizes, sort_rows
from .snapshots import Snapshot
from .store import Store
from .trend import leak_suspects, trend

_CSS = """
body{font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;margin:0 auto;max-width:1200px;
padding:0 16px 40px;color:#222;line-height:1.45}
h1{font-size:1.6em;margin:18px 0 4px}h2{margin-top:34px;border-bottom:2px solid #2e6da4;padding-bottom:3px}
h3{margin:18px 0 6px}.meta{color:#555;font-size:.92em}.caveat{background:#fff4e0;border-left:4px solid #f0ad4e;
padding:6px 10px;margin:6px 0}.chart svg{max-width:100%;height:auto}
table{border-collapse:collapse;font-size:.85em;margin:8px 0 14px;width:100%;display:block;overflow-x:auto}
th,td{border-bottom:1px solid #ddd;padding:3px 8px;white-space:nowrap}th{background:#f3f6fa;cursor:pointer;
position:sticky;top:0;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
th.n{text-align:right}tr.suspect td{background:#fdecea}.note{color:#666;font-size:.85em}
@media (max-width:700px){body{padding:0 6px}table{font-size:.75em}}
"""

# A tiny sorter: click a header to sort by it (numbers by data-v).  Inline, no external script.
_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows),asc=th.dataset.asc!=='1';
      rows.sort(function(x,y){var a=x.cells[i].dataset.v,c=y.cells[i].dataset.v;
        if(a!==undefined&&c!==undefined&&a!==''&&c!==''){return asc?a-c:c-a;}
        a=x.cells[i].textContent;c=y.cells[i].textContent;return asc?a.localeCompare(c):c.localeCompare(a);});
      rows.forEach(function(r){b.appendChild(r);});th.dataset.asc=asc?'1':'0';});});});
"""


@dataclass
class Report:
    html: str
    sections: list[str] = field(default_factory=list)
    tables: dict = field(default_factory=dict)


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _table(tid: str, rows: list[dict], columns: list[str], numeric=(), row_class=None) -> str:
    head = "".join(f'<th class="{"n" if c in numeric else ""}">{_esc(c)}</th>' for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            if c in numeric and isinstance(v, (int, float)) and not isinstance(v, bool):
                shown = f"{v:,.2f}" if isinstance(v, float) else str(v)
                cells.append(f'<td class="n" data-v="{v}">{_esc(shown)}</td>')
            else:
                cells.append(f"<td>{_esc(v if v is not None else '-')}</td>")
        cls = f' class="{row_class(r)}"' if row_class and row_class(r) else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (f'<table class="sortable" id="{tid}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _svg(draw) -> str:
    """Run a plot function writing an SVG to a temp file; return the SVG markup (glyphs as paths)."""
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "path"  # no font files to fetch
    # the same report for the same data (on either engine): element ids from a fixed salt, not random, and no
    # <metadata> block (matplotlib writes the time of drawing there)
    matplotlib.rcParams["svg.hashsalt"] = "memsnap-report"
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "c.svg")
        draw(p)
        with open(p) as f:
            text = f.read()
    start = text.find("<svg")
    return f'<div class="chart">{re.sub(r"<metadata>.*?</metadata>", "", text[start:], count=1, flags=re.S)}</div>'


def _n(count: int, noun: str, plural: str | None = None) -> str:
    """``1 process``, ``2 processes``: counts in prose agree with their noun."""
    return f"{count:,} {noun if count == 1 else (plural or noun + 's')}"


#: the "what changed" chart leaves out changes smaller than this (kB), as ``diff --min-change`` does: a
#: chart of 15 rows should not give half of them to a few pages of noise
CHART_MIN_CHANGE_KB = 64

#: why a process is denied, said where the report counts them
DENIED_WHY = ("reading a process's smaps and pagemap needs ptrace access to it (the same user, or "
              "CAP_SYS_PTRACE); in a container, pid 1 and processes of other user namespaces are often denied "
              "even to root")


def _fmt_time(t) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(t, datetime) else str(t)


@dataclass
class _Context:
    """What the sections share: the snapshots, the options, the page so far, and sizes computed once."""
    store: Store
    before: Snapshot
    after: Snapshot
    span: list[Snapshot]  # the trend section's snapshots
    single: bool
    by: str
    top: int
    rep: Report = field(default_factory=lambda: Report(""))
    parts: list[str] = field(default_factory=list)
    sized: dict = field(default_factory=dict)
    grouped: dict = field(default_factory=dict)
    facts: str | None = None  # the temp table of both snapshots' page facts, once made (:meth:`sizes`)
    share: bool = True  # compute what sections share once (False: each computes its own, as the CLI does)

    def groups(self, by: str):
        """``shared --groups by`` of the last snapshot, computed once (the costs and sharing sections)."""
        if by not in self.grouped:
            self.grouped[by] = shared(self.store, self.after, "groups", groups=by)
        return self.grouped[by]

    def sizes(self, snap: Snapshot, by: str, source: str) -> SizesResult:
        """One snapshot's sizes (default sort), computed once for every section that needs them."""
        key = (snap.host, snap.snapshot_id, by, source)
        if key not in self.sized:
            if source == "pages" and self.share and self.facts is None and self.store.engine_name == "duckdb":
                # both snapshots' page facts in one statement, once: every view of every section reads them
                self.facts = page_facts_table(self.store.con, [s for s in self.pair if s.has_pages], FACTS_TABLE)
            self.sized[key] = sizes(self.store, [snap], by=by, source=source,
                                    facts=self.facts if source == "pages" else None)
        return self.sized[key]

    @property
    def pair(self) -> list[Snapshot]:
        return [self.after] if self.single else [self.before, self.after]


def _header(ctx: _Context) -> None:
    before, after = ctx.before, ctx.after
    meta = ctx.store.con.execute(
        "SELECT snapshot_id, host, kernel_release, capture_start, sources, pfn_available, processes_recorded, "
        "processes_denied, processes_vanished, processes_partial, json_extract_string(options_json, '$.format') "
        "FROM snapshots "
        "WHERE (host, snapshot_id) IN (SELECT unnest(?), unnest(?))",
        [[before.host, after.host], [before.snapshot_id, after.snapshot_id]]).fetchall()
    ctx.parts.append(f"<h1>memsnap report: {_esc(after.host)}</h1>")
    ctx.parts.append('<p class="meta">' + "<br>".join(
        f"{'snapshot' if ctx.single else ('from' if sid == before.snapshot_id else 'to')}: <b>{_esc(sid)}</b> — "
        f"{_esc(_fmt_time(t))}, host {_esc(h)}, kernel {_esc(kern)}, sources {_esc(srcs)}, "
        f"{_n(rec or 0, 'process', 'processes')} recorded" for sid, h, kern, t, srcs, pfn, rec, *_ in
        sorted(meta, key=lambda m: m[3])) + "</p>")
    denied = _denied(ctx.store, [before, after])
    ctx.parts += [f'<div class="caveat">{_esc(c)}</div>' for m in meta for c in _caveats(*m, denied.get(m[0], []))]


def _denied(store: Store, snaps: list[Snapshot]) -> dict[str, list[str]]:
    """Per snapshot id, the denied processes as ``pid (comm): error``, for the caveat that counts them."""
    rows = store.con.execute(
        "SELECT snapshot_id, pid, comm, error FROM processes WHERE status = 'denied' AND (host, snapshot_id) IN "
        "(SELECT unnest(?), unnest(?)) ORDER BY snapshot_id, pid",
        [[s.host for s in snaps], [s.snapshot_id for s in snaps]]).fetchall()
    out: dict[str, list[str]] = {}
    for sid, pid, comm, error in rows:
        out.setdefault(sid, []).append(f"{pid}{f' ({comm})' if comm else ''}{f': {error}' if error else ''}")
    return out


def _caveats(sid, host, kernel, t, sources, pfn, recorded, denied, vanished, partial, imported=None,
             denied_list=()) -> list[str]:
    why = (f"imported from {imported}, which has no PFNs" if imported
           else "recorded without CAP_SYS_ADMIN or without pagemap")
    shown = ", ".join(list(denied_list)[:5]) + (", ..." if len(denied_list) > 5 else "")
    return [text for cond, text in (
        (not pfn, f"{sid}: no PFNs ({why}): page-level "
                  "figures, sharing and copy-on-write loss are not available"),
        (denied, f"{sid}: {_n(denied or 0, 'process', 'processes')} could not be read (permission denied"
                 f"{': ' + shown if shown else ''}): {DENIED_WHY}"),
        (vanished, f"{sid}: {_n(vanished or 0, 'process', 'processes')} exited during the capture"),
        (partial, f"{sid}: {_n(partial or 0, 'process', 'processes')} partially captured (impact limits)"))
        if cond]


#: what the report opens with: each grouping's real cost (``shared --groups``), in this order
COST_GROUPS = ("command",)
#: the whole-memory breakdowns (issue 16: the physmem source, by class and by cgroup), as (table, render)
#: entries: ``render(ctx)`` runs only when ``table`` is a table of the store and holds rows of the last
#: snapshot, so a snapshot without that source shows nothing.
WHOLE_MEMORY: list[tuple[str, object]] = []


def _costs(ctx: _Context) -> None:
    """What things really cost, first: per group, the frames only it maps (USS of the whole group: freed if it
    all exited), its PSS, and its RSS (which counts shared pages fully); then the observer's effect."""
    from .sizes import observer_note

    after = ctx.after
    ctx.parts.append("<h2>What things really cost</h2>")
    for by in COST_GROUPS:
        if after.has_pages:
            gr = ctx.groups(by)
            rows = [{by: r["group"], "processes": r["processes"], "uss_kb": r["uss_kb"], "pss_kb": r["pss_kb"],
                     "rss_kb": r["rss_kb"]} for r in gr.rows[:ctx.top]]
            note = ("USS: the frames only the group maps, freed if it all exited; PSS: its share of every frame it "
                    "maps; RSS: every frame it maps, shared ones counted fully (from pages, distinct frames).")
        else:
            res = ctx.sizes(after, by, "smaps")
            rows = [{by: r[by], "processes": r["count"], "uss_kb": r["uss"], "pss_kb": r["pss"], "rss_kb": r["rss"]}
                    for r in sort_rows(res.rows, "pss", True, by)[:ctx.top]]
            note = ("No PFNs in this snapshot: USS is the sum of the members' own USS, not the group's (a frame "
                    "shared only inside the group is not counted); RSS counts shared pages fully.")
        cols = [by, "processes", "uss_kb", "pss_kb", "rss_kb"]
        ctx.rep.tables["costs"] = rows
        ctx.parts.append(f"<h3>By {by}</h3>" + _table("t-costs", rows, cols, numeric=set(cols) - {by}) +
                         f'<p class="note">{_esc(note)}</p>')
    ctx.parts.append(f'<p class="note">Observer: {_esc(observer_note(ctx.store, [after]))}.</p>')


def _whole_memory(ctx: _Context) -> None:
    """The whole-memory breakdown, when the snapshot has the physmem source (:data:`WHOLE_MEMORY`)."""
    from schema import TABLES

    for table, render in WHOLE_MEMORY:
        if table not in TABLES:
            continue
        n = ctx.store.con.execute(f'SELECT count(*) FROM "{table}" WHERE host = ? AND snapshot_id = ?',
                                  [ctx.after.host, ctx.after.snapshot_id]).fetchone()[0]
        if n:
            render(ctx)


def _memory_tables(ctx: _Context) -> None:
    """Every frame of the machine by class (adding up to MemTotal), then by memory cgroup: what
    ``memsnap memory --by class`` and ``--by cgroup`` show (analyzer/memory.py)."""
    from .memory import DEFAULT_COLUMNS, memory

    ctx.parts.append("<h2>Where the memory went (every frame)</h2>")
    for by in ("class", "cgroup"):
        res = memory(ctx.store, ctx.after, by=by)
        rows = res.rows if by == "class" else res.rows[:ctx.top]
        cols = list(DEFAULT_COLUMNS[by])
        ctx.rep.tables[f"memory_{by}"] = rows
        numeric = {c for c in cols if c not in ("class", "area", "meminfo_key", "cgroup", "explained")}
        ctx.parts.append(f"<h3>By {by}</h3>" + _table(f"t-memory-{by}", rows, cols, numeric=numeric) +
                         "".join(f'<p class="note">{_esc(n)}</p>' for n in res.notes))


WHOLE_MEMORY.append(("physmem", _memory_tables))


def _consumers(ctx: _Context) -> None:
    by, after = ctx.by, ctx.after
    src = "pages" if after.has_pages else "smaps"
    cols = ["command", "count", "uss", "pss", "rss", "swap"] if by == "command" else \
        ["pid", "name", "user", "uss", "pss", "rss", "swap"]
    top_rows = sort_rows(ctx.sizes(after, by, src).rows, "pss", True, by)[:ctx.top]
    ctx.rep.tables["consumers"] = top_rows
    ctx.parts.append(f"<h2>Top consumers (by {by}, PSS, source {src})</h2>")
    ctx.parts.append(_svg(lambda p: plot.consumers_chart(top_rows, p, f"Top {len(top_rows)} by PSS — {after.host}",
                                                         label_key=by)))
    ctx.parts.append(_table("t-consumers", top_rows, cols, numeric={"pid", "count", "uss", "pss", "rss", "swap"}))


def _changes(ctx: _Context) -> None:
    if ctx.single:
        ctx.parts.append('<h2>What changed</h2><p class="note">Only one snapshot: nothing to compare.</p>')
        return
    before, after, top = ctx.before, ctx.after, ctx.top
    same_boot = before.boot_id == after.boot_id
    by, source = "process" if same_boot else "command", "pages" if before.has_pages and after.has_pages else "smaps"
    view = view_of(by, before, after)
    d = diff(ctx.store, before, after, by=by, source=source, sort="pss_delta", reverse=True,
             sized=(ctx.sizes(before, view, source), ctx.sizes(after, view, source)))
    growers = [r for r in d.rows if (r["pss_delta"] or 0) > 0][:top]
    shrinkers = sorted([r for r in d.rows if (r["pss_delta"] or 0) < 0], key=lambda r: r["pss_delta"])[:top]
    newex = [r for r in d.rows if r["status"] in ("new", "exited")]
    s = d.summary()
    ctx.parts.append("<h2>What changed</h2>")
    ctx.parts.append(f'<p class="meta">{s["new"]:,} new, {s["exited"]:,} exited, {s["changed"]:,} changed, '
                     f'{s["same"]:,} unchanged; PSS {s["pss_delta"]:+,} kB, USS {s["uss_delta"]:+,} kB, '
                     f'RSS {s["rss_delta"]:+,} kB</p>')
    ctx.parts.append(_svg(lambda p: plot.diff_chart(d, p, top=top, min_change=CHART_MIN_CHANGE_KB)))
    dcols = ["status", *[k for k in d.key_columns if k != "command"], "pss_before", "pss_after", "pss_delta",
             "uss_delta", "rss_delta", "swap_delta"]
    num = {c for c in dcols if c.endswith(("_before", "_after", "_delta"))} | {"pid"}
    ctx.parts.append("<h3>Top growers</h3>" + _table("t-growers", growers, dcols, numeric=num))
    ctx.parts.append("<h3>Top shrinkers</h3>" + _table("t-shrinkers", shrinkers, dcols, numeric=num))
    ctx.parts.append("<h3>New and exited</h3>" + (_table("t-newexited", newex, dcols, numeric=num) if newex
                                                  else '<p class="note">none</p>'))
    ctx.rep.tables.update(growers=growers, shrinkers=shrinkers, newexited=newex, diff=d.rows)
    ctx.parts.append(_cow(ctx, d) if d.transitions else
                     '<p class="note">The snapshots are from different boots: matched by command.</p>' if not same_boot
                     else '<p class="note">Copy-on-write loss needs PFNs in both snapshots.</p>')


def _cow(ctx: _Context, d) -> str:
    cow = sorted([r for r in d.rows if r.get("became_private_kb")], key=lambda r: -r["became_private_kb"])
    tcols = ["pid", "name", "became_private_kb", "became_shared_kb", "new_pages_kb", "gone_pages_kb",
             "swapped_out_kb", "swapped_in_kb"]
    ctx.rep.tables["cow"] = cow[:ctx.top]
    return ("<h3>Copy-on-write loss (pages that became private: PFN changed, shared before)</h3>" +
            (_table("t-cow", cow[:ctx.top], tcols, numeric=set(tcols) - {"name"}) if cow else
             '<p class="note">none</p>'))


def _trend(ctx: _Context) -> None:
    ctx.parts.append("<h2>Trend</h2>")
    if len(ctx.span) < 2:
        ctx.parts.append('<p class="note">Fewer than two snapshots in range: no trend.</p>')
        return
    top = ctx.top
    ser = trend(ctx.store, ctx.span, by="command" if ctx.by == "command" else "process")
    leaks = leak_suspects(ser, metric="uss", min_points=3)  # two points always fit a line: no verdict
    ctx.parts.append(_svg(lambda p: plot.trend_chart(ser, p, metric="pss", top=min(top, 10), suspects=leaks)))
    lcols = [*leaks.key_columns, "slope_kb_per_hour", "r2", "points", "first_kb", "last_kb", "growth_kb"]
    lcols = [c for c in lcols if c in leaks.columns or c in leaks.key_columns]
    ctx.parts.append("<h3>Leak suspects (USS growing steadily)</h3>" +
                     (_table("t-leaks", leaks.rows[:top], lcols,
                             numeric={"pid", "slope_kb_per_hour", "r2", "points", "first_kb", "last_kb", "growth_kb"},
                             row_class=lambda r: "suspect" if r.get("suspect") else "") if leaks.rows[:top] else
                      f'<p class="note">none{"" if len(ctx.span) >= 3 else " (a verdict needs 3 snapshots)"}</p>'))
    ctx.rep.tables["leaks"] = leaks.rows[:top]


def _sharing(ctx: _Context) -> None:
    ctx.parts.append("<h2>Sharing</h2>")
    if not ctx.after.has_pages:
        ctx.parts.append('<p class="note">Needs PFNs (a snapshot recorded as root).</p>')
        return
    after, top = ctx.after, ctx.top
    # the top pairs and the heatmap's pairs only: every pair of a big machine is hundreds of thousands of rows
    every = {"pfilter": None, "ufilter": None}
    totals = pair_totals(ctx.store, after, every)
    pr = Table("pairs", after, *top_pairs(ctx.store, after, top, every, totals))
    heat = heatmap_pairs(ctx.store, after, min(top, 20), every, totals)
    ctx.parts.append(_svg(lambda p: plot.pairs_heatmap(heat, p, after)))
    gr = ctx.groups("command")
    ctx.parts.append(_svg(lambda p: plot.groups_chart(gr.rows[:top], p, after, "command")))
    ctx.parts.append("<h3>Group costs by command (USS of the whole group = freed if it all exited)</h3>" +
                     _table("t-groups", gr.rows[:top], gr.columns, numeric=set(gr.columns) - {"group"}))
    hi = shared(ctx.store, after, "histogram")
    ctx.parts.append(_svg(lambda p: plot.histogram_chart(hi.rows, p, "Frames by number of sharers")))
    ctx.parts.append("<h3>Frames by number of sharers</h3>" +
                     _table("t-histogram", hi.rows, hi.columns, numeric=set(hi.columns) - {"sharers"}))
    ctx.parts.append("<h3>Top sharing pairs</h3>" +
                     _table("t-pairs", pr.rows[:top], pr.columns, numeric={"pid_a", "pid_b", "shared_kb"}))
    ctx.rep.tables.update(groups=gr.rows[:top], histogram=hi.rows, pairs=pr.rows[:top])


def _reconcile(ctx: _Context) -> None:
    ctx.parts.append("<h2>Reconciliation with /proc/meminfo</h2>")
    if ctx.after.has_pages:
        rc = shared(ctx.store, ctx.after, "reconcile")
        ctx.parts.append(_table("t-reconcile", rc.rows, rc.columns, numeric={"kb", "meminfo_kb"}))
    else:
        rc = sizes(ctx.store, [ctx.after], by="system")
        ctx.parts.append(_table("t-reconcile", rc.rows, ["area", "kb", "percent"], numeric={"kb", "percent"}))
    ctx.rep.tables["reconcile"] = rc.rows


#: the temp table of the pair's page facts (``queries/page_mapping_facts.sql``), made once per report
FACTS_TABLE = "_report_page_facts"
#: the table macros every sharing section (costs, sharing, reconcile) reads for the last snapshot, computed once
#: per report (:func:`analyzer.queries.materialised`): (macro, its arguments after host and snapshot id, the
#: columns the shared_* queries read)
MATERIALISED = (("snapshot_pages", (), ("pid", "pfn", "mapcount", "flags", "ps", "counted", "kind")),
                ("member_frames", (None, None), ("pid", "pfn")))


def _shared_work(ctx: _Context, stack: ExitStack) -> None:
    """What the sections share, computed once: the last snapshot's pages with their frames (DuckDB only; a
    Spark store computes them per query)."""
    st, after = ctx.store, ctx.after
    stack.callback(lambda: ctx.facts and st.con.execute(f'DROP TABLE IF EXISTS "{ctx.facts}"'))  # made by sizes()
    if not ctx.share or st.engine_name != "duckdb" or not after.has_pages:
        return
    st.con.install({name for name, _, _ in MATERIALISED})
    for name, args, columns in MATERIALISED:
        stack.enter_context(queries.materialised(st.con, name, (after.host, after.snapshot_id, *args), columns))


#: the report's sections, in order; each appends its HTML to the page
SECTIONS = (("header", _header), ("costs", _costs), ("memory", _whole_memory), ("consumers", _consumers),
            ("changes", _changes), ("trend", _trend), ("sharing", _sharing), ("reconcile", _reconcile))
#: progress steps: the sections, then writing the page
STEPS = (*(name for name, _ in SECTIONS), "write")


def build(store: Store, pair: list[Snapshot], span: list[Snapshot], *, by: str = "command", top: int = 15,
          progress=None, share: bool = True) -> Report:
    """The report on ``pair`` (``[before, after]``, or one snapshot: the sections that need two say so);
    ``span``: the snapshots the trend section covers (:func:`analyzer.snapshots.report_snapshots`).
    ``share``: compute the page facts of the pair and the last snapshot's pages once for every section (False:
    each section's queries compute their own, the same bytes: tests/test_report.py)."""
    progress = progress or (lambda step, total: None)
    ctx = _Context(store, pair[0], pair[-1], list(span), len(pair) == 1, by, top, share=share)
    with ExitStack() as stack:
        for i, (name, section) in enumerate(SECTIONS):
            progress(i, len(STEPS))
            if name == "costs":
                _shared_work(ctx, stack)  # after the header: its time is the costs section's
            section(ctx)
            ctx.rep.sections.append(name)
    progress(len(SECTIONS), len(STEPS))
    title = f"memsnap report {ctx.after.host} {ctx.after.snapshot_id}"
    ctx.rep.html = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                    f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>"
                    + "\n".join(ctx.parts) +
                    f'<p class="note">Amounts in kB unless marked. Generated by memsnap from '
                    f'{_esc(", ".join(store.paths))}.</p><script>{_JS}</script></body></html>\n')
    progress(len(STEPS), len(STEPS))
    return ctx.rep


def write(report: Report, path: str) -> str:
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise MemsnapError(f"{path}: directory {d} does not exist", hint="create it or choose another path")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(report.html)
    os.replace(tmp, path)
    return path


__all__ = ["build", "write", "Report", "STEPS", "SECTIONS"]
