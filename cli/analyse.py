"""The analysis commands: snapshots, sizes, diff, trend, shared, report, memory.

Each parses its options, asks the analyzer's API (which resolves snapshots once, at this edge), and formats
the result with :func:`analyzer.output.render`.  Nothing here computes an amount.
"""
from __future__ import annotations

from enum import Enum
from typing import Optional

import typer

from common.errors import MemsnapError

from .app import app
from .options import (Columns, FileMode, Format, FromId, Host, Since, Until, LazyProgress, Limit, MapFilter, OutFmt, Plot, ProcessFilter,
                      Reverse, SkipBad, Snapshot, Sort, Source, SourceOpt, StoreOpt, StoresArg, ToId, UserFilter, err, fail,
                      notes_and_plot, open_store, private_output, split_columns)

SNAPSHOT_COLUMNS = ["snapshot_id", "host", "capture_start", "capture_s", "processes_recorded", "processes_vanished",
                    "processes_denied", "pages", "frames", "bytes", "pfn_available"]
SNAPSHOT_NUMERIC = ("capture_s", "processes_recorded", "processes_vanished", "processes_denied", "pages", "frames",
                    "bytes")


def _run(command: str, stores, store, skip_bad, call, scope=None):
    """Open the store (only what ``scope``, the keywords of :func:`analyzer.api.scope_for`, needs), run
    ``call(st)``, turn memsnap errors into the one-line error."""
    try:
        with open_store(command, stores, store, skip_bad, scope) as st:
            return call(st)
    except MemsnapError as e:
        fail(e)


def _pair_scope(host, from_id, to_id, since, until) -> dict | None:
    """A pair's scope: the range's dates; the two ids; or (neither given) the last two of each host."""
    if since is not None or until is not None:
        return dict(host=host, since=since, until=until)
    if from_id and to_id:
        return dict(host=host, ids=(from_id, to_id))
    return None if (from_id or to_id) else dict(host=host, latest=2)


def _echo(rows, columns, fmt: OutFmt, **kw) -> None:
    from analyzer.output import render

    typer.echo(render(rows, columns, fmt.value, **kw), nl=False)


@app.command(epilog="Examples:\n\n  memsnap snapshots\n\n  memsnap snapshots memsnap-store --format json\n\n"
                    "  memsnap snapshots --since 2026-11-25T19:00+00:00 --until 2026-11-25T20:00+00:00")
def snapshots(stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False, host: Host = None,
              since: Since = None, until: Until = None, fmt: Format = OutFmt.table):
    """List committed snapshots: id, host, time, processes, pages, frames, bytes on disk."""
    def call(st):
        from analyzer.snapshots import host_spec, match_hosts

        lo, hi = st.time_range(since, until)
        one = host_spec(host) if isinstance(host_spec(host), str) else None
        cur = st.execute("SELECT * FROM snapshot_list WHERE (? IS NULL OR host = ?) AND "
                         "(CAST(? AS TIMESTAMPTZ) IS NULL OR capture_start >= CAST(? AS TIMESTAMPTZ)) AND "
                         "(CAST(? AS TIMESTAMPTZ) IS NULL OR capture_start <= CAST(? AS TIMESTAMPTZ))", [one, one, lo, lo, hi, hi])
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        if host and one is None:  # several --host, or a ~regex: the hosts they choose among the store's
            chosen = set(match_hosts([s.host for s in st.snapshots()], host))
            rows = [r for r in rows if r["host"] in chosen]
        return names, rows

    names, rows = _run("snapshots", stores, store, skip_bad, call,
                       dict(host=host, since=since, until=until, tables=("snapshots",)))  # snapshot_list's table
    _echo(rows, names if fmt != OutFmt.table else SNAPSHOT_COLUMNS, fmt, numeric_columns=SNAPSHOT_NUMERIC)


class By(str, Enum):
    process = "process"
    user = "user"
    command = "command"
    cgroup = "cgroup"
    mapping = "mapping"
    system = "system"


def _totals(res, by: str, amount_cols) -> dict | None:
    """The totals row of a table: amounts summed, pids and distinct names counted."""
    if not res.rows or by == "system":  # the system rows already end with the total
        return None
    tot = {}
    for c in res.columns:
        vals = [r.get(c) for r in res.rows]
        if c in amount_cols or c in ("maps", "count", "pids"):
            tot[c] = sum(v for v in vals if v is not None)
        elif c == "pid":
            tot[c] = len(vals)  # as smem: the pid column of the totals counts the processes
        else:
            tot[c] = None
    label = res.columns[0]
    if tot[label] is None:  # the group's name column says what the row is (a count there read as a name)
        tot[label] = "TOTAL"
    return tot


def _percent_of(res, amount_cols):
    """-p: the denominator of each amount: its snapshot's MemTotal, or SwapTotal for swap columns."""
    def pct(r, c):
        if r is None or c not in amount_cols:
            return None
        d = res.swaptotal_kb if c in ("swap", "swappss") else res.memtotal_kb
        sid = r.get("snapshot_id")
        if sid in d:
            return d[sid]  # 0 (no swap configured) shows as N/A, never another snapshot's total
        return sum(d.values()) if d else 0  # the totals row: the machines' totals together
    return pct


@app.command(epilog="Examples:\n\n  memsnap sizes -s pss -r | head             # biggest PSS first\n\n"
                    "  memsnap sizes --by user -t -k              # per user, totals, human units\n\n"
                    "  memsnap sizes --by mapping -M 'libc|libssl'  # who pays for these libraries\n\n"
                    "  memsnap sizes --source pages -c 'pid command pss uss pss_anon pss_file pss_shmem'\n\n"
                    "  memsnap sizes --source pages --without-recorder  # as if the recorder were not running\n\n"
                    "  memsnap sizes --by system                  # meminfo breakdown, unaccounted row\n\n"
                    "  memsnap sizes --by command --host '~.*' --across-hosts  # each host (a ~regex), and in total")
def sizes(
    stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False,
    by: By = typer.Option(By.process, "--by", "-b", help="Group rows by process, user, command (all processes of "
                                                          "one program, ps_mem style), cgroup, mapping (smem -m) or "
                                                          "system (meminfo breakdown)."),
    source: SourceOpt = Source.smaps, snapshot: Snapshot = "latest", host: Host = None,
    columns: Columns = None, processfilter: ProcessFilter = None, userfilter: UserFilter = None,
    mapfilter: MapFilter = None, sort: Sort = None, reverse: Reverse = False,
    totals: bool = typer.Option(False, "--totals", "-t", help="Add a totals row."),
    across_hosts: bool = typer.Option(
        False, "--across-hosts", help="With --by user, command or cgroup: after the rows of each host, one row per "
        "group summed over every host (host *, snapshot_id 'N hosts')."),
    percent: bool = typer.Option(False, "--percent", "-p", help="Amounts as % of MemTotal (swap: of SwapTotal)."),
    abbreviate: bool = typer.Option(False, "--abbreviate", "-k", help="Amounts with units (K, M, G)."),
    numeric: bool = typer.Option(False, "--numeric", "-n", help="Numeric user ids."),
    no_header: bool = typer.Option(False, "--no-header", "-H", help="No header line."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Show only the top N rows by the sort key."),
    fmt: Format = OutFmt.table,
    list_columns: bool = typer.Option(False, "--list-columns", help="List the columns of the --by view and exit."),
    without_recorder: bool = typer.Option(
        False, "--without-recorder", help="Page figures (--source pages) as if the recorder were not running: "
        "each frame's mapcount less the recorder's own references to it (stores of schema 3 and later)."),
):
    """Set sizes: VSS, RSS, PSS, USS and swap per process, user, command, cgroup, mapping or system.

    Amounts are kB. USS is memory private to the process (mapcount 1); PSS splits each shared page among
    the processes mapping it; RSS counts shared pages fully. Kernel threads are left out, as in smem.
    Default sort: pss, ascending (smem's order); -r for the biggest first.
    """
    if list_columns:
        from analyzer.sizes import VIEW_COLUMNS

        typer.echo(" ".join(VIEW_COLUMNS[by.value]))
        return
    res = _run("sizes", stores, store, skip_bad, lambda st: st.sizes(
        by=by.value, source=source.value, snapshot=snapshot, host=host,
        processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter, sort=sort, reverse=reverse,
        columns=split_columns(columns), numeric=numeric, limit=limit, without_recorder=without_recorder),
        dict(host=host, ids=(snapshot,)))
    from analyzer.sizes import AMOUNTS, across_hosts as _across

    if across_hosts:
        try:
            res.rows = res.rows + _across(res)
        except MemsnapError as e:
            fail(e)

    amount_cols = set(AMOUNTS)
    tot = _totals(res, by.value, amount_cols) if totals else None
    machine = fmt in (OutFmt.json, OutFmt.csv)
    rows = res.rows + [dict(tot, **{res.columns[0]: "TOTAL"})] if machine and tot else res.rows  # pid too
    _echo(rows, res.columns, fmt, amount_columns=amount_cols, header=not no_header, abbreviate=abbreviate,
          percent_totals=_percent_of(res, amount_cols) if percent else None, totals=None if machine else tot,
          numeric_columns=("pid", "maps", "count", "pids", "uid"))
    for n in res.notes:
        err(f"note: {n}")


class MemoryBy(str, Enum):
    class_ = "class"
    cgroup = "cgroup"
    service = "service"


@app.command(epilog="Examples (sample_data/physmem was recorded with `memsnap record --sources +physmem`):\n\n"
                    "  memsnap memory sample_data/physmem                  # every frame by class\n\n"
                    "  memsnap memory sample_data/physmem --by cgroup -k   # charged per cgroup beside PSS\n\n"
                    "  memsnap memory sample_data/physmem --by service --format json   # per unit, container, pod")
def memory(
    stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False,
    by: MemoryBy = typer.Option(MemoryBy.class_, "--by", "-b", help="class: the whole machine by frame class, "
                                "adding up to MemTotal, meminfo beside; cgroup: frames charged to each memory cgroup "
                                "by kind, beside memory.current and its processes' PSS/USS; service: the same per "
                                "systemd unit, container or Kubernetes pod."),
    snapshot: Snapshot = "latest", host: Host = None, columns: Columns = None,
    abbreviate: bool = typer.Option(False, "--abbreviate", "-k", help="Amounts with units (K, M, G)."),
    fmt: Format = OutFmt.table,
):
    """Where the memory went: every physical frame by class, memory cgroup or service.

    Needs a snapshot recorded with the physmem source (`memsnap record --sources +physmem`, as root). Amounts
    are kB. A cgroup's charged_kb counts the frames kpagecgroup charges to it (not its children: subtree_kb
    adds them, to compare with memory.current).
    """
    res = _run("memory", stores, store, skip_bad, lambda st: st.memory(
        by=by.value, snapshot=snapshot, host=host, columns=split_columns(columns)), dict(host=host, ids=(snapshot,)))
    amount_cols = {c for c in res.columns if c.endswith("_kb") or c == "kb"}
    _echo(res.rows, res.columns, fmt, amount_columns=amount_cols, abbreviate=abbreviate,
          numeric_columns=("frames", "pids", "procs", "cgroups", "percent", "memcg_ino"))
    for n in res.notes:
        err(f"note: {n}")


class DiffBy(str, Enum):
    process = "process"
    command = "command"
    user = "user"
    cgroup = "cgroup"
    mapping = "mapping"


def _diff_columns(res, columns: str | None, fmt: OutFmt, by: DiffBy) -> list[str]:
    if columns:
        cols = split_columns(columns)
        bad = [c for c in cols if c not in res.columns]
        if bad:
            fail(MemsnapError(f"unknown column(s) {', '.join(bad)}", hint="choose from: " + " ".join(res.columns)))
        return cols
    if fmt in (OutFmt.json, OutFmt.csv):
        return res.columns
    # the full command line stays in csv/json; in a table the process name is enough
    return [c for c in res.columns if not c.endswith(("_before", "_after"))
            and not (c == "command" and by == DiffBy.process)]


def _diff_line(res) -> str:
    s = res.summary()
    line = (f"{s['from']} -> {s['to']}: {s['new']} new, {s['exited']} exited, {s['changed']} changed, "
            f"{s['same']} same; PSS {s['pss_delta']:+d} kB, USS {s['uss_delta']:+d} kB, RSS {s['rss_delta']:+d} kB")
    if res.transitions:
        line += f"; became private {s['became_private_kb']} kB, became shared {s['became_shared_kb']} kB"
    if s["biggest_movers"]:
        line += "; biggest: " + ", ".join(
            f"{'/'.join(str(m[k]) for k in res.label_columns[:2])} {m['pss_delta']:+d}" for m in s["biggest_movers"]
            if m["pss_delta"])
    return line


@app.command(epilog="Examples:\n\n  memsnap diff                               # last two snapshots of the host\n\n"
                    "  memsnap diff --source pages -r            # with copy-on-write loss per process\n\n"
                    "  memsnap diff --by command --min-change 1024\n\n"
                    "  memsnap diff --by mapping -P gunicorn -M '\\[heap\\]'\n\n"
                    "  memsnap diff --from 20261125T193143 --to 20261125T193144 --by command   # ids or unique prefixes\n\n"
                    "  memsnap diff --since 2026-11-25T19:00+00:00 --until 2026-11-25T20:00+00:00   # first vs last of the hour")
def diff(
    stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False,
    from_id: FromId = None, to_id: ToId = None, host: Host = None, since: Since = None, until: Until = None,
    by: DiffBy = typer.Option(DiffBy.process, "--by", "-b", help="process (matched by boot, pid and start time), "
                              "command, user, cgroup, or mapping (path, perms, offset; anonymous by kind)."),
    source: SourceOpt = Source.smaps, processfilter: ProcessFilter = None, userfilter: UserFilter = None,
    mapfilter: MapFilter = None,
    min_change: int = typer.Option(0, "--min-change", min=0, help="Hide rows whose largest change is below this (kB)."),
    sort: Sort = None, reverse: Reverse = False, columns: Columns = None, fmt: Format = OutFmt.table,
    plot: Plot = None, top: int = typer.Option(20, "--top", min=1, help="Rows in the chart."),
    file_mode: FileMode = "0600",
):
    """What changed between two snapshots: new and exited processes, growth, and lost sharing.

    Default: the last two snapshots of the host, sorted by pss_delta. Amounts are kB: <col>_before,
    <col>_after and <col>_delta for vss, rss, pss, uss and swap. When both snapshots have PFNs, per process
    also became_private_kb (copy-on-write breaks: PFN changed, shared before, private after),
    became_shared_kb, new_pages_kb, gone_pages_kb, swapped_out_kb and swapped_in_kb.
    """
    res = _run("diff", stores, store, skip_bad, lambda st: st.diff(
        from_id=from_id, to_id=to_id, host=host, by=by.value, source=source.value,
        processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter, min_change=min_change, sort=sort,
        reverse=reverse, since=since, until=until), _pair_scope(host, from_id, to_id, since, until))
    cols = _diff_columns(res, columns, fmt, by)
    amount_cols = {c for c in res.columns if c.endswith(("_before", "_after", "_delta", "_kb"))}
    _echo(res.rows, cols, fmt, amount_columns=amount_cols, numeric_columns=("pid", "offset", "count_before",
                                                                              "count_after"))
    line = _diff_line(res)
    err(line) if fmt in (OutFmt.json, OutFmt.csv) else typer.echo(line)

    def draw():
        from analyzer.plot import diff_chart
        diff_chart(res, plot, top=top)
    notes_and_plot(res.notes, plot, draw, file_mode)


class TrendBy(str, Enum):
    process = "process"
    command = "command"


class Metric(str, Enum):
    uss = "uss"
    pss = "pss"
    rss = "rss"
    swap = "swap"


def _leaks_table(ranking, series, by: TrendBy, metric: str, fmt: OutFmt, top, multi_host: bool) -> None:
    rows = ranking.rows[:top] if top else ranking.rows
    if fmt in (OutFmt.json, OutFmt.csv):
        cols = ranking.columns
    else:
        cols = (["host"] if multi_host else []) + (["pid", "started", "starttime", "name"] if by == TrendBy.process
                                                   else ["command"]) + \
            ["slope_kb_per_hour", "r2", "points", "first_kb", "last_kb", "growth_kb", "suspect"]
    _echo(rows, cols, fmt, amount_columns={"first_kb", "last_kb", "growth_kb"},
          numeric_columns=("pid", "starttime", "points", "slope_kb_per_hour", "r2"))
    n = len(ranking.suspects)
    err(f"{n} leak suspect{'s' if n != 1 else ''} ({metric} growing steadily: slope > 0, "
        f"R² >= {ranking.r2_min:g}, growth >= {ranking.min_growth_kb} kB, >= {ranking.min_points} points) among {len(ranking.rows)} "
        f"{by.value}{'es' if by == TrendBy.process else 's'} over {len(series.snapshots)} snapshots")


def _series_table(series, by: TrendBy, metric: str, fmt: OutFmt, top, multi_host: bool) -> None:
    from analyzer import trend as tr

    rows = series.rows
    if top:
        keep = set(tr.top_keys(series, metric, top))
        rows = [r for r in rows if series.key(r) in keep]
    if fmt in (OutFmt.json, OutFmt.csv):
        cols = series.columns
    else:
        cols = ["capture_start"] + (["host"] if multi_host else []) + \
            (["pid", "started", "starttime", "name"] if by == TrendBy.process else ["command", "count"]) + list(tr.METRICS)
    _echo(rows, cols, fmt, amount_columns=set(tr.METRICS), numeric_columns=("pid", "starttime", "count"))


@app.command(epilog="Examples:\n\n  memsnap trend --leaks                      # who grows steadily (USS, kB/hour)\n\n"
                    "  memsnap trend --by command --last 60 --plot trend.png --top 8\n\n"
                    "  memsnap trend -P gunicorn --metric pss --last 20 -f csv > pss.csv\n\n"
                    "  memsnap trend --since 2026-11-25T19:00+00:00 --until 2026-11-25T20:00+00:00 --leaks --plot leaks.svg")
def trend(
    stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False,
    by: TrendBy = typer.Option(TrendBy.process, "--by", "-b", help="process (one series per process identity: "
                               "boot, pid and start time, so a reused pid is a new series) or command (the "
                               "processes of one program name summed)."),
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the last N snapshots (of each host), "
                                       "after --since/--until."),
    since: Since = None, until: Until = None,
    metric: Metric = typer.Option(Metric.uss, "--metric", help="Amount ranked by --leaks, drawn by --plot "
                                  "and used by --top: uss, pss, rss or swap."),
    host: Host = None, source: SourceOpt = Source.smaps, processfilter: ProcessFilter = None,
    userfilter: UserFilter = None, mapfilter: MapFilter = None,
    leaks: bool = typer.Option(False, "--leaks", help="Print the leak ranking instead of the series: slope "
                               "(kB/hour, least squares against capture time), R², points, first/last kB, growth. "
                               "Suspects (positive slope, R² >= 0.8, growth >= --min-growth-kb) first."),
    min_points: int = typer.Option(3, "--min-points", min=2, help="Snapshots a key needs to be ranked by --leaks."),
    min_growth_kb: int = typer.Option(64, "--min-growth-kb", min=0, help="Growth (first to last point) below "
                                      "which a key is not a leak suspect: idle processes move by a few pages."),
    fmt: Format = OutFmt.table,
    file_mode: FileMode = "0600",
    plot: Optional[str] = typer.Option(None, "--plot", help="Write a line chart to FILE.png|svg|pdf: the --top "
                                       "keys over time, leak suspects drawn thick."),
    top: Optional[int] = typer.Option(None, "--top", min=1, help="Only the N keys with the largest last --metric "
                                      "(series and chart; chart default 10), or the first N of --leaks."),
):
    """Memory over many snapshots: one row per snapshot and process (or command), and leak suspects.

    The series is long format: snapshot_id, capture_start, the key (host, boot_id, pid, starttime, name,
    command; or host, command, count) and uss, pss, rss, swap in kB, each point as `memsnap sizes` computes
    it for that snapshot. --leaks ranks keys by a least-squares line of --metric against capture time.
    """
    if plot:
        from analyzer.plot import check_path
        try:
            check_path(plot)  # before the long work
        except MemsnapError as e:
            fail(e)
    from analyzer import trend as tr

    with LazyProgress("trend: snapshots", min_total=100) as progress:
        series = _run("trend", stores, store, skip_bad, lambda st: st.trend(
            by=by.value, host=host, last=last, since=since, until=until, source=source.value,
            processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter, progress=progress),
            dict(host=host, since=since, until=until, latest=last))
    try:
        ranking = tr.leak_suspects(series, metric.value, min_points=min_points,
                                       min_growth_kb=min_growth_kb) if (leaks or plot) else None
    except MemsnapError as e:
        fail(e)
    multi_host = len({s.host for s in series.snapshots}) > 1
    if leaks:
        _leaks_table(ranking, series, by, metric.value, fmt, top, multi_host)
    else:
        _series_table(series, by, metric.value, fmt, top, multi_host)

    def draw():
        from analyzer.plot import trend_chart
        trend_chart(series, plot, metric=metric.value, top=top or 10, suspects=ranking)
    notes_and_plot(series.notes + (ranking.notes if ranking else []), plot, draw, file_mode)


SHARED_AMOUNTS = ("kb", "rss", "pss", "uss", "swap", "avgpss", "avguss", "avgrss", "meminfo_kb")
SHARED_NUMERIC = ("processes", "pid_a", "pid_b", "pid", "pids", "count", "frames", "mappings", "offset")


def _shared_view(groups, pairs, by, histogram, flags, reconcile, plot) -> str:
    chosen = [v for v, on in (("groups", groups is not None), ("pairs", pairs), ("mapping", by is not None),
                              ("histogram", histogram), ("flags", flags), ("reconcile", reconcile)) if on]
    if len(chosen) > 1:
        fail(MemsnapError(f"choose one view, not {' and '.join('--' + c for c in chosen)}",
                          hint="run the command once per view"))
    if by is not None and by != "mapping":
        fail(MemsnapError(f"--by {by} is not a shared view", hint="use --by mapping, or --groups for groups"))
    view = chosen[0] if chosen else "groups"
    if plot and view not in ("pairs", "groups"):
        fail(MemsnapError("--plot draws --pairs (heatmap) or --groups (stacked bars)", hint="add one of them"))
    return view


@app.command(epilog="Examples:\n\n  memsnap shared --groups command           # what each program really costs\n\n"
                    "  memsnap shared --groups 'regex:gunicorn'   # one service: USS = freed if it all exited\n\n"
                    "  memsnap shared --groups 'regex:^postgres'  # anchored: not `psql -d postgres` clients\n\n"
                    "  memsnap shared --groups 'name:^python'     # on the command name only, not its arguments\n\n"
                    "  memsnap shared --pairs --plot pairs.png    # who shares with whom (heatmap)\n\n"
                    "  memsnap shared --by mapping --detail -M libc\n\n"
                    "  memsnap shared --histogram                 # frames by number of sharers\n\n"
                    "  memsnap shared --reconcile                 # frames by kind against meminfo")
def shared(
    stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False,
    groups: Optional[str] = typer.Option(None, "--groups", "-g", help="Group costs by user, command, cgroup, "
                                         "regex:PATTERN or name:PATTERN (RE2; the rest is '(other)'). regex: matches "
                                         "the whole command line, arguments included, so regex:postgres also catches "
                                         "`psql -d postgres`: anchor it (regex:^postgres) or use name:, which "
                                         "matches the command name (comm) only."),
    pairs: bool = typer.Option(False, "--pairs", help="Process x process shared memory, top pairs first."),
    by: Optional[str] = typer.Option(None, "--by", "-b", help="'mapping': per file or library, like librank."),
    detail: bool = typer.Option(False, "--detail", help="With --by mapping: one row per process and mapping."),
    histogram: bool = typer.Option(False, "--histogram", help="Frames by number of sharers (1, 2, 3-4, 5-8, ...)."),
    flags: bool = typer.Option(False, "--flags", help="Memory by page kind (anon, file, shmem, ksm, thp, zero "
                                                      "page, hugetlb, mlocked)."),
    reconcile: bool = typer.Option(False, "--reconcile", help="Distinct frames by kind against meminfo, with an "
                                                              "unaccounted row."),
    snapshot: Snapshot = "latest", host: Host = None, processfilter: ProcessFilter = None,
    userfilter: UserFilter = None, mapfilter: MapFilter = None, limit: Limit = None, fmt: Format = OutFmt.table,
    file_mode: FileMode = "0600",
    plot: Optional[str] = typer.Option(None, "--plot", help="FILE.png|svg: heatmap for --pairs, stacked bars for "
                                                            "--groups."),
    top: int = typer.Option(20, "--top", min=2, help="Processes in the heatmap / groups in the bar chart."),
):
    """Shared-page attribution from physical frames (needs a snapshot recorded as root).

    Choose one view: --groups (default: command), --pairs, --by mapping, --histogram, --flags, --reconcile.
    A group's uss_kb counts frames mapped only by its members: the memory freed if the whole group exited
    (the sum of the members' own USS undercounts it; it is shown as members_uss_kb).
    """
    view = _shared_view(groups, pairs, by, histogram, flags, reconcile, plot)
    res = _run("shared", stores, store, skip_bad, lambda st: st.shared(
        view, snapshot=snapshot, host=host, groups=groups or "command", processfilter=processfilter,
        userfilter=userfilter, mapfilter=mapfilter, detail=detail, limit=limit), dict(host=host, ids=(snapshot,)))
    amount = {c for c in res.columns if c.endswith("_kb") or c in SHARED_AMOUNTS}
    _echo(res.rows, res.columns, fmt, amount_columns=amount, numeric_columns=SHARED_NUMERIC)

    def draw():
        from analyzer.plot import groups_chart, pairs_heatmap
        from analyzer.shared import pair_matrix
        if view == "pairs":
            pairs_heatmap(pair_matrix(res.rows, top), plot, res.snapshot)
        else:
            groups_chart(res.rows[:top], plot, res.snapshot, groups or "command")
    notes_and_plot(res.notes, plot, draw, file_mode)


@app.command(epilog="Examples:\n\n  memsnap report -o report.html                 # last two snapshots of the host\n\n"
                    "  memsnap report --from 20261125T193143 --to 20261125T193144 --by process -o r.html\n\n"
                    "  memsnap report --since 2026-11-25T19:00+00:00 -o day.html   # first vs last since then, its trend")
def report(
    stores: StoresArg = None, store: StoreOpt = [], skip_bad: SkipBad = False,
    output: str = typer.Option("memsnap-report.html", "--output", "-o", help="HTML file to write."),
    from_id: Optional[str] = typer.Option(None, "--from", help="Earlier snapshot (default: the second-to-last)."),
    to_id: Optional[str] = typer.Option(None, "--to", help="Later snapshot (default: the last)."),
    host: Host = None, since: Since = None, until: Until = None,
    by: str = typer.Option("command", "--by", "-b", help="Consumers and trends by 'command' or 'process'."),
    top: int = typer.Option(15, "--top", min=1, help="Rows per chart and table."),
    file_mode: FileMode = "0600",
):
    """Write one self-contained HTML report (charts and sortable tables inline, opens offline).

    Sections: header with caveats, top consumers (USS + share of shared, RSS marked), what changed (growers,
    shrinkers, new/exited, copy-on-write loss), trend lines with leak suspects, sharing (pairs heatmap,
    group costs, sharers histogram), reconciliation with meminfo.
    """
    if by not in ("command", "process"):
        fail(MemsnapError(f"--by {by} is not a report grouping", hint="use command or process"))

    def call(st):
        from analyzer import report as rp

        with LazyProgress("report:", min_total=1) as progress:
            rep = st.report(from_id=from_id, to_id=to_id, host=host, by=by, top=top, since=since, until=until,
                            progress=lambda d, t: progress(d, t, rp.STEPS[min(d, t - 1)]))
        with private_output(output, file_mode):
            rp.write(rep, output)
        return rep

    # with both ids the report's trend spans every snapshot between them: the whole store is opened
    rep = _run("report", stores, store, skip_bad, call,
               _pair_scope(host, from_id, to_id, since, until) if not (from_id and to_id) else None)
    typer.echo(f"wrote {output} ({len(rep.html) / 1024:.0f} kB; sections: {', '.join(rep.sections)})")
