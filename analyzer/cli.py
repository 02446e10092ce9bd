"""The ``memsnap`` command line.  Thin: parse options, call the library, format in one place.

Analyzer modules (and with them duckdb) are imported inside the analyzer
commands only, so ``memsnap record`` on a production host never loads duckdb.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from enum import Enum
from typing import Annotated, List, Optional

import typer

from common.errors import MemsnapError

app = typer.Typer(
    name="memsnap",
    help="Record process memory on Linux (smaps, pagemap, kpagecount/flags) into a Parquet store, "
         "then analyse it with DuckDB: set sizes (VSS/RSS/PSS/USS/swap), snapshots, SQL.\n\n"
         "Typical use: `memsnap record` on a host (as root for PFNs), copy the store, "
         "`memsnap sizes` on a workstation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DEFAULT_STORE = "./memsnap-store"


_STATE = {"skip_bad": False}


@app.callback()
def _root(skip_bad: bool = typer.Option(False, "--skip-bad", help="Analyzer commands: leave out snapshots with a "
                                        "damaged, foreign or too-new file (each is reported) instead of stopping.")):
    """memsnap: record process memory into Parquet, analyse it with DuckDB."""
    _STATE["skip_bad"] = skip_bad


def _default_store() -> str:
    return os.environ.get("MEMSNAP_STORE") or DEFAULT_STORE


def fail(e: BaseException, code: int = 1):
    """The one place errors are shown: ``Error: <what> — <how to fix>``, no traceback."""
    msg = str(e)
    hint = getattr(e, "hint", "")
    typer.echo(f"Error: {msg}" + (f" — {hint}" if hint else ""), err=True)
    raise typer.Exit(code)


def _err(msg: str) -> None:
    typer.echo(msg, err=True)


def _notes_and_plot(notes, plot: str | None, draw) -> None:
    """The tail of a report command: its notes on stderr, then the chart if --plot was given."""
    for n in notes:
        _err(f"note: {n}")
    if plot:
        try:
            draw()
        except MemsnapError as e:
            fail(e)
        _err(f"wrote {plot}")


def _parse_size(text: str) -> int:
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B").rstrip("I")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in "KMGT" else (t, "")
    try:
        return int(float(num) * units[unit])
    except ValueError:
        fail(MemsnapError(f"--max-store-bytes {text!r} is not a size", hint="e.g. 2000000000, 500M or 2G"))


class Fmt(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


# ---------------------------------------------------------------------------------------------- record

@app.command(epilog="Examples:\n\n  memsnap record                          # one snapshot of every process\n\n"
                    "  memsnap record --interval 60 --count 0  # every minute until stopped\n\n"
                    "  memsnap record --match 'gunicorn|celery' --sources smaps_rollup,smaps\n\n"
                    "  memsnap record --smaps-max-rss-mb 4096 --budget-ms 200 --nice 19 --ionice idle")
def record(
    store: str = typer.Option(None, "--store", "-S", help="Store directory. Default: $MEMSNAP_STORE, else ./memsnap-store."),
    interval: float = typer.Option(0, "--interval", "-i", min=0, help="Seconds between snapshots (with --count)."),
    count: int = typer.Option(1, "--count", "-n", min=0, help="Number of snapshots; 0 = until SIGINT/SIGTERM."),
    pid: List[int] = typer.Option([], "--pid", "-p", help="Record only this PID (repeatable)."),
    match: Optional[str] = typer.Option(None, "--match", "-m", help="Record only processes whose command line matches this regex."),
    sources: str = typer.Option(",".join(("maps", "smaps", "smaps_rollup", "pagemap", "kpage")), "--sources",
                                help="Comma-separated: maps, smaps, smaps_rollup, pagemap, kpage. kpage "
                                     "(kpagecount/kpageflags/kpagecgroup) needs pagemap. "
                                     "Cheapest useful: smaps_rollup."),
    host: Optional[str] = typer.Option(None, "--host", help="Host name for the store partition. Default: hostname."),
    smaps_max_rss_mb: Optional[int] = typer.Option(
        None, "--smaps-max-rss-mb", min=0,
        help="Impact limit: for processes with more RSS than this, read maps instead of full smaps "
             "(the smaps walk holds the target's mmap lock: ~12 ms per GiB of 4 KiB pages per docs/design.md). "
             "smaps_rollup and pagemap are still read; bench/impact_bench.py measures what this bounds."),
    budget_ms: Optional[float] = typer.Option(
        None, "--budget-ms", min=1,
        help="Impact limit: per-process time budget; sources not started in time are skipped and the process "
             "is marked partial."),
    nice: int = typer.Option(10, "--nice", min=0, max=19, help="CPU niceness increment for the recorder. On a "
                             "busy host a high value can lengthen a target's mmap/munmap stall: the kernel holds the "
                             "target's mmap lock while the recorder reads its smaps/pagemap (bench/impact_bench.py)."),
    ionice: str = typer.Option("idle", "--ionice", help="I/O priority class: idle, best-effort or none."),
    redact: List[str] = typer.Option([], "--redact", help="Hide secrets: 'cmdline' (command lines become keyed "
                                     "hashes) and/or 'paths' (non-system file paths become keyed hashes). Repeatable."),
    pseudonymize_pfns: bool = typer.Option(False, "--pseudonymize-pfns", help="Store keyed pseudonyms instead of "
                                           "physical frame numbers (sharing, diffs and attribution still work)."),
    key_file: Optional[str] = typer.Option(None, "--key-file", help="Key for --redact/--pseudonymize-pfns, kept "
                                           "outside the store. Default: $MEMSNAP_KEY, else $MEMSNAP_KEY_FILE, else "
                                           "/var/lib/memsnap/key (created 0600 if missing)."),
    keep: Optional[int] = typer.Option(None, "--keep", min=1, help="Retention: keep only the newest N snapshots "
                                       "of this host (older ones are removed after each commit, atomically)."),
    max_store_bytes: Optional[str] = typer.Option(None, "--max-store-bytes", help="Retention: remove the oldest "
                                                  "snapshots of this host while the store is larger (e.g. 2G, 500M)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print the snapshot id."),
    procfs: str = typer.Option("/proc", "--procfs", hidden=True, help="procfs root (tests)."),
):
    """Capture snapshots of process memory into the store.

    Each snapshot records, per process, identity (pid, start time, user, cgroup, command line), status and
    smaps_rollup, every smaps mapping, and the pagemap entries of present and swapped pages; per physical
    frame seen, kpagecount/kpageflags/kpagecgroup; per snapshot, meminfo and kernel settings.

    Run as root for real PFNs. Without CAP_SYS_ADMIN the snapshot is still useful (smaps, pagemap flags)
    but says pfn_available=false. A snapshot is visible only once complete: SIGKILL never leaves half of
    one behind, and SIGINT/SIGTERM discard the one in progress and exit cleanly.
    """
    from recorder.capture import Options, set_low_priority

    opts = Options(store=store or _default_store(), host=host, pids=tuple(pid), match=match,
                   sources=tuple(s.strip() for s in sources.split(",") if s.strip()),
                   smaps_max_rss_kb=smaps_max_rss_mb * 1024 if smaps_max_rss_mb is not None else None,
                   process_budget_ms=budget_ms, procfs=procfs,
                   redact=tuple(r for item in redact for r in item.split(",") if r),
                   pseudonymize_pfns=pseudonymize_pfns, key_file=key_file, keep=keep,
                   max_store_bytes=_parse_size(max_store_bytes) if max_store_bytes else None)
    if ionice not in ("idle", "best-effort", "none"):
        fail(MemsnapError(f"--ionice {ionice!r} is not a class", hint="use idle, best-effort or none"))
    stop = {"sig": None}

    def on_signal(signum, frame):
        stop["sig"] = signum

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for w in set_low_priority(nice, ionice):
            _err(f"warning: {w}")
        n = 0
        while count == 0 or n < count:
            if n:
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline and stop["sig"] is None:
                    time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            if stop["sig"] is not None:
                break
            try:
                res = _capture_with_progress(opts, lambda: stop["sig"] is not None, quiet)
            except MemsnapError as e:
                if type(e).__name__ == "Interrupted":
                    _err("interrupted: the snapshot in progress was discarded")
                    break
                fail(e)
            n += 1
            for w in res.warnings:
                _err(f"warning: {w}")
            if quiet:
                typer.echo(res.snapshot_id)
            else:
                c = res.counts
                typer.echo(
                    f"{res.snapshot_id}  host={res.host}  processes: {c['ok']} recorded, {c['partial']} partial, "
                    f"{c['vanished']} vanished, {c['denied']} denied, {c['zombie']} zombie, "
                    f"{c['kernel_thread']} kernel threads; {res.pages} pages, {res.frames} frames; "
                    f"{res.bytes_written / 1e6:.2f} MB written in {res.seconds:.2f}s -> {res.store}")
            sys.stdout.flush()
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _capture_with_progress(opts, should_stop, quiet):
    from recorder.capture import Recorder

    if quiet or not sys.stderr.isatty():
        return Recorder(opts, should_stop=should_stop).capture()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("recording"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, console=_stderr_console()) as prog:
        task = prog.add_task("record", total=None)
        return Recorder(opts, progress=lambda d, t: prog.update(task, completed=d, total=t),
                        should_stop=should_stop).capture()


def _stderr_console():
    from rich.console import Console
    return Console(stderr=True)


# ---------------------------------------------------------------------------------------------- analyzer

# The process filters every analyzer command takes (smem's -P and -U), declared once.
ProcessFilter = Annotated[Optional[str], typer.Option("--processfilter", "-P",
                                                      help="Regex on process name or command line.")]
UserFilter = Annotated[Optional[str], typer.Option("--userfilter", "-U", help="Regex on user name.")]

StoresArg = typer.Argument(None, help="Store directories or globs (stores from many hosts merge). "
                                      "Default: $MEMSNAP_STORE, else ./memsnap-store.")


def _open(stores):
    from analyzer.store import open_store

    st = open_store(list(stores) if stores else [_default_store()], skip_bad=_STATE["skip_bad"])
    for f, why in st.skipped:
        _err(f"warning: skipped {f}: {why} (its snapshot is left out)")
    return st


class OutFmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


@app.command()
def snapshots(
    stores: Optional[List[str]] = StoresArg,
    host: Optional[str] = typer.Option(None, "--host", help="Only this host."),
    fmt: OutFmt = typer.Option(OutFmt.table, "--format", "-f", help="Output format."),
):
    """List committed snapshots: id, host, time, processes, pages, frames, bytes on disk."""
    from analyzer.output import render

    try:
        with _open(stores) as st:
            cur = st.execute("SELECT * FROM snapshot_list WHERE ? IS NULL OR host = ?", [host, host])
            names = [d[0] for d in cur.description]
            rows = [dict(zip(names, r)) for r in cur.fetchall()]
    except MemsnapError as e:
        fail(e)
    cols = names if fmt != OutFmt.table else ["snapshot_id", "host", "capture_start", "capture_s",
                                              "processes_recorded", "processes_vanished", "processes_denied",
                                              "pages", "frames", "bytes", "pfn_available"]
    typer.echo(render(rows, cols, fmt.value, numeric_columns=("capture_s", "processes_recorded", "processes_vanished",
                                                               "processes_denied", "pages", "frames", "bytes")),
               nl=False)


class By(str, Enum):
    process = "process"
    user = "user"
    command = "command"
    cgroup = "cgroup"
    mapping = "mapping"
    system = "system"


class Source(str, Enum):
    smaps = "smaps"
    pages = "pages"


@app.command(epilog="Examples:\n\n  memsnap sizes -s pss -r | head             # biggest PSS first\n\n"
                    "  memsnap sizes --by user -t -k              # per user, totals, human units\n\n"
                    "  memsnap sizes --by mapping -M 'libc|libssl'  # who pays for these libraries\n\n"
                    "  memsnap sizes --source pages -c 'pid command pss uss pss_anon pss_file pss_shmem'\n\n"
                    "  memsnap sizes --by system                  # meminfo breakdown, unaccounted row")
def sizes(
    stores: Optional[List[str]] = StoresArg,
    by: By = typer.Option(By.process, "--by", "-b", help="Group rows by process, user, command (all processes of "
                                                          "one program, ps_mem style), cgroup, mapping (smem -m) or "
                                                          "system (meminfo breakdown)."),
    source: Source = typer.Option(Source.smaps, "--source", help="smaps: the kernel's accounting as recorded "
                                  "(smem-compatible). pages: recomputed from pagemap + kpagecount + kpageflags "
                                  "with the kernel's rules (needs a snapshot recorded as root)."),
    snapshot: str = typer.Option("latest", "--snapshot", help="Snapshot id (or unique prefix), or 'latest' "
                                 "(the latest of each host)."),
    host: Optional[str] = typer.Option(None, "--host", help="Only this host."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Space/comma separated columns to show. "
                                          "Use --list-columns to see them."),
    processfilter: ProcessFilter = None,
    userfilter: UserFilter = None,
    mapfilter: Optional[str] = typer.Option(None, "--mapfilter", "-M", help="Regex on mapping name (path); only "
                                            "matching mappings are counted."),
    sort: Optional[str] = typer.Option(None, "--sort", "-s", help="Column to sort by (default pss), ascending like smem."),
    reverse: bool = typer.Option(False, "--reverse", "-r", help="Sort descending."),
    totals: bool = typer.Option(False, "--totals", "-t", help="Add a totals row."),
    percent: bool = typer.Option(False, "--percent", "-p", help="Amounts as % of MemTotal (swap: of SwapTotal)."),
    abbreviate: bool = typer.Option(False, "--abbreviate", "-k", help="Amounts with units (K, M, G)."),
    numeric: bool = typer.Option(False, "--numeric", "-n", help="Numeric user ids."),
    no_header: bool = typer.Option(False, "--no-header", "-H", help="No header line."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Show only the top N rows by the sort key."),
    fmt: OutFmt = typer.Option(OutFmt.table, "--format", "-f", help="table, csv, json (an array of objects; "
                               "amounts are integer kB) or markdown."),
    list_columns: bool = typer.Option(False, "--list-columns", help="List the columns of the --by view and exit."),
):
    """Set sizes: VSS, RSS, PSS, USS and swap per process, user, command, cgroup, mapping or system.

    Amounts are kB. USS is memory private to the process (mapcount 1); PSS splits each shared page among
    the processes mapping it; RSS counts shared pages fully. Kernel threads are left out, as in smem.
    """
    from analyzer import sizes as sz
    from analyzer.output import render

    if list_columns:
        typer.echo(" ".join(sz.VIEW_COLUMNS[by.value]))
        return
    cols = columns.replace(",", " ").split() if columns else None
    try:
        with _open(stores) as st:
            res = sz.sizes(st, by=by.value, source=source.value, snapshot=snapshot, host=host,
                           processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter, sort=sort,
                           reverse=reverse, columns=cols, numeric=numeric, limit=limit)
    except MemsnapError as e:
        fail(e)
    amount_cols = set(sz.AMOUNTS)
    tot = None
    if totals and res.rows:
        tot = {}
        for c in res.columns:
            vals = [r.get(c) for r in res.rows]
            if c in amount_cols or c in ("maps", "count", "pids"):
                tot[c] = sum(v for v in vals if v is not None)
            elif c in ("pid",):
                tot[c] = len(vals)
            elif c in ("user", "map", "command", "cgroup") and by.value not in ("process",):
                tot[c] = len(set(vals))
            else:
                tot[c] = None
        if by.value == "system":
            tot = None  # the rows already end with the total
    def pct(r, c):  # -p: the denominator of each amount (MemTotal, or SwapTotal for swap columns)
        if r is None or c not in amount_cols:
            return None
        d = res.swaptotal_kb if c in ("swap", "swappss") else res.memtotal_kb
        sid = r.get("snapshot_id")
        if sid in d:
            return d[sid]  # 0 (no swap configured) shows as N/A, never another snapshot's total
        return sum(d.values()) if d else 0  # the totals row: the machines' totals together
    if fmt in (OutFmt.json, OutFmt.csv) and totals and tot:
        rows = res.rows + [dict(tot, **{res.columns[0]: "TOTAL"})]
    else:
        rows = res.rows
    typer.echo(render(rows, res.columns, fmt.value, amount_columns=amount_cols, header=not no_header,
                      abbreviate=abbreviate, percent_totals=pct if percent else None,
                      totals=tot if fmt in (OutFmt.table, OutFmt.markdown) else None,
                      numeric_columns=("pid", "maps", "count", "pids", "uid")), nl=False)
    for n in res.notes:
        _err(f"note: {n}")


class DiffBy(str, Enum):
    process = "process"
    command = "command"
    user = "user"
    cgroup = "cgroup"
    mapping = "mapping"


@app.command(epilog="Examples:\n\n  memsnap diff                               # last two snapshots of the host\n\n"
                    "  memsnap diff --source pages -r            # with copy-on-write loss per process\n\n"
                    "  memsnap diff --by command --min-change 1024\n\n"
                    "  memsnap diff --by mapping -P gunicorn -M '\\[heap\\]'\n\n"
                    "  memsnap diff --from ID1 --to ID2 --by command   # across hosts: names normalized")
def diff(
    stores: Optional[List[str]] = StoresArg,
    from_id: Optional[str] = typer.Option(None, "--from", help="Earlier snapshot id (or unique prefix)."),
    to_id: Optional[str] = typer.Option(None, "--to", help="Later snapshot id. Default: the last two snapshots."),
    host: Optional[str] = typer.Option(None, "--host", help="Host whose snapshots to compare."),
    by: DiffBy = typer.Option(DiffBy.process, "--by", "-b", help="process (matched by boot, pid and start time), "
                              "command, user, cgroup, or mapping (path, perms, offset; anonymous by kind)."),
    source: Source = typer.Option(Source.smaps, "--source", help="smaps (kernel accounting) or pages (recomputed "
                                  "from pagemap; needs PFNs)."),
    processfilter: ProcessFilter = None,
    userfilter: UserFilter = None,
    mapfilter: Optional[str] = typer.Option(None, "--mapfilter", "-M", help="Regex on mapping path; also restricts "
                                            "the page-level transitions."),
    min_change: int = typer.Option(0, "--min-change", min=0, help="Hide rows whose largest change is below this (kB)."),
    sort: Optional[str] = typer.Option(None, "--sort", "-s", help="Column to sort by (default pss_delta), ascending."),
    reverse: bool = typer.Option(False, "--reverse", "-r", help="Sort descending."),
    columns: Optional[str] = typer.Option(None, "--columns", "-c", help="Columns to show (default: status, keys, "
                                          "deltas and transitions; all columns in csv/json)."),
    fmt: OutFmt = typer.Option(OutFmt.table, "--format", "-f", help="table, csv, json or markdown."),
    plot: Optional[str] = typer.Option(None, "--plot", help="Write a bar chart of the top changes to FILE.png|svg."),
    top: int = typer.Option(20, "--top", min=1, help="Rows in the chart."),
):
    """What changed between two snapshots: new and exited processes, growth, and lost sharing.

    Amounts are kB: <col>_before, <col>_after and <col>_delta for vss, rss, pss, uss and swap. When both
    snapshots have PFNs, per process also became_private_kb (copy-on-write breaks: PFN changed, shared
    before, private after), became_shared_kb, new_pages_kb, gone_pages_kb, swapped_out_kb and swapped_in_kb.
    """
    from analyzer import diff as df
    from analyzer.output import render

    try:
        with _open(stores) as st:
            res = df.diff(st, from_id=from_id, to_id=to_id, host=host, by=by.value, source=source.value,
                          processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter,
                          min_change=min_change, sort=sort, reverse=reverse)
    except MemsnapError as e:
        fail(e)
    if columns:
        cols = columns.replace(",", " ").split()
        bad = [c for c in cols if c not in res.columns]
        if bad:
            fail(MemsnapError(f"unknown column(s) {', '.join(bad)}", hint="choose from: " + " ".join(res.columns)))
    elif fmt in (OutFmt.json, OutFmt.csv):
        cols = res.columns
    else:
        # the full command line stays in csv/json; in a table the process name is enough
        cols = [c for c in res.columns if not c.endswith(("_before", "_after"))
                and not (c == "command" and by == DiffBy.process)]
    amount_cols = {c for c in res.columns if c.endswith(("_before", "_after", "_delta", "_kb"))}
    typer.echo(render(res.rows, cols, fmt.value, amount_columns=amount_cols,
                      numeric_columns=("pid", "offset", "count_before", "count_after")), nl=False)
    s = res.summary()
    line = (f"{s['from']} -> {s['to']}: {s['new']} new, {s['exited']} exited, {s['changed']} changed, "
            f"{s['same']} same; PSS {s['pss_delta']:+d} kB, USS {s['uss_delta']:+d} kB, RSS {s['rss_delta']:+d} kB")
    if res.transitions:
        line += f"; became private {s['became_private_kb']} kB, became shared {s['became_shared_kb']} kB"
    if s["biggest_movers"]:
        line += "; biggest: " + ", ".join(
            f"{'/'.join(str(m[k]) for k in res.key_columns[:2])} {m['pss_delta']:+d}" for m in s["biggest_movers"]
            if m["pss_delta"])
    _err(line) if fmt in (OutFmt.json, OutFmt.csv) else typer.echo(line)
    def draw():
        from analyzer.plot import diff_chart
        diff_chart(res, plot, top=top)
    _notes_and_plot(res.notes, plot, draw)


class TrendBy(str, Enum):
    process = "process"
    command = "command"


class Metric(str, Enum):
    uss = "uss"
    pss = "pss"
    rss = "rss"
    swap = "swap"


class _LazyProgress:
    """A rich progress bar on stderr, shown only on a TTY and only once there are ``min_total`` steps."""

    def __init__(self, label: str, min_total: int = 10):
        self.label, self.min_total, self.prog, self.task = label, min_total, None, None

    def __call__(self, done: int, total: int) -> None:
        if self.prog is None:
            if total < self.min_total or not sys.stderr.isatty():
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.prog = Progress(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 transient=True, console=_stderr_console())
            self.prog.start()
            self.task = self.prog.add_task(self.label, total=total)
        self.prog.update(self.task, completed=done, total=total)

    def close(self) -> None:
        if self.prog is not None:
            self.prog.stop()


@app.command(epilog="Examples:\n\n  memsnap trend --leaks                      # who grows steadily (USS, kB/hour)\n\n"
                    "  memsnap trend --by command --since 6h --plot trend.png --top 8\n\n"
                    "  memsnap trend -P gunicorn --metric pss --last 20 -f csv > pss.csv\n\n"
                    "  memsnap trend --since 2026-11-25T08:00 --until 2026-11-25T12:00 --leaks --plot leaks.svg")
def trend(
    stores: Optional[List[str]] = StoresArg,
    by: TrendBy = typer.Option(TrendBy.process, "--by", "-b", help="process (one series per process identity: "
                               "boot, pid and start time, so a reused pid is a new series) or command (the "
                               "processes of one program name summed)."),
    last: Optional[int] = typer.Option(None, "--last", min=1, help="Only the last N snapshots (of each host), "
                                       "after --since/--until."),
    since: Optional[str] = typer.Option(None, "--since", help="Only snapshots captured at or after T: an ISO "
                                        "timestamp (2026-11-25T08:00, naive = local time, or with +00:00) or a "
                                        "time ago: 90s, 30m, 2h, 1d, 1w."),
    until: Optional[str] = typer.Option(None, "--until", help="Only snapshots captured at or before T (same forms "
                                        "as --since)."),
    metric: Metric = typer.Option(Metric.uss, "--metric", "-m", help="Amount ranked by --leaks, drawn by --plot "
                                  "and used by --top: uss, pss, rss or swap."),
    host: Optional[str] = typer.Option(None, "--host", help="Only this host."),
    source: Source = typer.Option(Source.smaps, "--source", help="smaps (kernel accounting) or pages "
                                  "(recomputed from pagemap; needs PFNs)."),
    processfilter: ProcessFilter = None,
    userfilter: UserFilter = None,
    mapfilter: Optional[str] = typer.Option(None, "--mapfilter", "-M", help="Regex on mapping path; only "
                                            "matching mappings are counted."),
    leaks: bool = typer.Option(False, "--leaks", help="Print the leak ranking instead of the series: slope "
                               "(kB/hour, least squares against capture time), R², points, first/last kB, growth. "
                               "Suspects (positive slope, R² >= 0.8) first."),
    min_points: int = typer.Option(3, "--min-points", min=2, help="Snapshots a key needs to be ranked by --leaks."),
    fmt: OutFmt = typer.Option(OutFmt.table, "--format", "-f", help="table, csv, json (amounts are integer kB) "
                               "or markdown."),
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
    from analyzer import trend as tr
    from analyzer.output import render

    if plot:
        from analyzer.plot import check_path
        try:
            check_path(plot)  # before the long work
        except MemsnapError as e:
            fail(e)
    progress = _LazyProgress("trend: snapshots", min_total=tr.BATCH + 1)  # more than one step
    try:
        with _open(stores) as st:
            series = tr.trend(st, by=by.value, host=host, last=last, since=since, until=until, source=source.value,
                              processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter,
                              progress=progress)
    except MemsnapError as e:
        progress.close()
        fail(e)
    progress.close()
    try:
        ranking = tr.leak_suspects(series, metric.value, min_points=min_points) if (leaks or plot) else None
    except MemsnapError as e:
        fail(e)
    multi_host = len({s.host for s in series.snapshots}) > 1
    if leaks:
        rows = ranking.rows[:top] if top else ranking.rows
        if fmt in (OutFmt.json, OutFmt.csv):
            cols = ranking.columns
        else:
            cols = (["host"] if multi_host else []) + (["pid", "starttime", "name"] if by == TrendBy.process
                                                       else ["command"]) + \
                ["slope_kb_per_hour", "r2", "points", "first_kb", "last_kb", "growth_kb", "suspect"]
        typer.echo(render(rows, cols, fmt.value, amount_columns={"first_kb", "last_kb", "growth_kb"},
                          numeric_columns=("pid", "starttime", "points", "slope_kb_per_hour", "r2")), nl=False)
        n = len(ranking.suspects)
        _err(f"{n} leak suspect{'s' if n != 1 else ''} ({metric.value} growing steadily: slope > 0, "
             f"R² >= {ranking.r2_min:g}, >= {ranking.min_points} points) among {len(ranking.rows)} "
             f"{by.value}{'es' if by == TrendBy.process else 's'} over {len(series.snapshots)} snapshots")
    else:
        rows = series.rows
        if top:
            keep = set(tr.top_keys(series, metric.value, top))
            rows = [r for r in rows if series.key(r) in keep]
        if fmt in (OutFmt.json, OutFmt.csv):
            cols = series.columns
        else:
            cols = ["capture_start"] + (["host"] if multi_host else []) + \
                (["pid", "starttime", "name"] if by == TrendBy.process else ["command", "count"]) + list(tr.METRICS)
        typer.echo(render(rows, cols, fmt.value, amount_columns=set(tr.METRICS),
                          numeric_columns=("pid", "starttime", "count")), nl=False)
    def draw():
        from analyzer.plot import trend_chart
        trend_chart(series, plot, metric=metric.value, top=top or 10, suspects=ranking)
    _notes_and_plot(series.notes + (ranking.notes if ranking else []), plot, draw)


@app.command(epilog="Examples:\n\n  memsnap shared --groups command           # what each program really costs\n\n"
                    "  memsnap shared --groups 'regex:gunicorn'   # one service: USS = freed if it all exited\n\n"
                    "  memsnap shared --pairs --plot pairs.png    # who shares with whom (heatmap)\n\n"
                    "  memsnap shared --by mapping --detail -M libc\n\n"
                    "  memsnap shared --histogram | --flags | --reconcile")
def shared(
    stores: Optional[List[str]] = StoresArg,
    groups: Optional[str] = typer.Option(None, "--groups", "-g", help="Group costs by user, command, cgroup or "
                                         "regex:PATTERN (on the command line; the rest is '(other)')."),
    pairs: bool = typer.Option(False, "--pairs", help="Process x process shared memory, top pairs first."),
    by: Optional[str] = typer.Option(None, "--by", help="'mapping': per file or library, like librank."),
    detail: bool = typer.Option(False, "--detail", help="With --by mapping: one row per process and mapping."),
    histogram: bool = typer.Option(False, "--histogram", help="Frames by number of sharers (1, 2, 3-4, 5-8, ...)."),
    flags: bool = typer.Option(False, "--flags", help="Memory by page kind (anon, file, shmem, ksm, thp, zero "
                                                      "page, hugetlb, mlocked)."),
    reconcile: bool = typer.Option(False, "--reconcile", help="Distinct frames by kind against meminfo, with an "
                                                              "unaccounted row."),
    snapshot: str = typer.Option("latest", "--snapshot", help="Snapshot id (or unique prefix), or 'latest'."),
    host: Optional[str] = typer.Option(None, "--host", help="Host (needed when the stores hold several)."),
    processfilter: ProcessFilter = None,
    userfilter: UserFilter = None,
    mapfilter: Optional[str] = typer.Option(None, "--mapfilter", "-M", help="Regex on mapping path (--by mapping)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Show only the first N rows (groups, pairs, mapping)."),
    fmt: OutFmt = typer.Option(OutFmt.table, "--format", "-f", help="table, csv, json or markdown."),
    plot: Optional[str] = typer.Option(None, "--plot", help="FILE.png|svg: heatmap for --pairs, stacked bars for --groups."),
    top: int = typer.Option(20, "--top", min=2, help="Processes in the heatmap / groups in the bar chart."),
):
    """Shared-page attribution from physical frames (needs a snapshot recorded as root).

    Choose one view: --groups (default: command), --pairs, --by mapping, --histogram, --flags, --reconcile.
    A group's uss_kb counts frames mapped only by its members: the memory freed if the whole group exited
    (the sum of the members' own USS undercounts it; it is shown as members_uss_kb).
    """
    from analyzer import shared as sh
    from analyzer.output import render

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
    try:
        with _open(stores) as st:
            res = sh.shared(st, view, snapshot=snapshot, host=host, groups=groups or "command",
                            processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter,
                            detail=detail, limit=limit)
    except MemsnapError as e:
        fail(e)
    amount = {c for c in res.columns if c.endswith("_kb") or c in ("kb", "rss", "pss", "uss", "swap", "avgpss",
                                                                    "avguss", "avgrss", "meminfo_kb")}
    typer.echo(render(res.rows, res.columns, fmt.value, amount_columns=amount,
                      numeric_columns=("processes", "pid_a", "pid_b", "pid", "pids", "count", "frames",
                                       "mappings", "offset")), nl=False)
    def draw():
        from analyzer.plot import groups_chart, pairs_heatmap
        if view == "pairs":
            pairs_heatmap(sh.pair_matrix(res.rows, top), plot, res.snapshot)
        else:
            groups_chart(res.rows[:top], plot, res.snapshot, groups or "command")
    _notes_and_plot(res.notes, plot, draw)


class SqlFmt(str, Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"
    parquet = "parquet"


def _emit_sql_result(st, query, params, fmt, out):
    from analyzer.output import render
    from analyzer.sql import run_sql, run_sql_arrow

    if fmt == SqlFmt.parquet:
        if not out:
            fail(MemsnapError("--format parquet needs -o FILE", hint="e.g. -o result.parquet"))
        for p in st.paths:
            if os.path.abspath(out).startswith(p + os.sep):
                fail(MemsnapError(f"{out} is inside the store {p}", hint="write results outside the store"))
        import pyarrow.parquet as pq

        tbl = run_sql_arrow(st, query, params)
        if tbl is not None:
            pq.write_table(tbl, out)
        _err(f"wrote {tbl.num_rows if tbl is not None else 0} rows to {out}")
        return
    cols, rows = run_sql(st, query, params)
    text = render([dict(zip(cols, r)) for r in rows], cols, fmt.value) if cols else ""
    if out:
        with open(out, "w") as f:
            f.write(text)
        _err(f"wrote {len(rows)} rows to {out}")
    else:
        typer.echo(text, nl=False)


@app.command(epilog="Examples:\n\n  memsnap sql \"SELECT * FROM snapshot_list\"\n\n"
                    "  memsnap sql \"SELECT name, sum(pss_kb) FROM process_sizes_smaps GROUP BY ALL ORDER BY 2 DESC\"\n\n"
                    "  memsnap sql \"SELECT * FROM processes WHERE pid = $pid\" --param pid=1234 -f json\n\n"
                    "  memsnap sql -f parquet -o top.parquet \"SELECT * FROM process_sizes_smaps\"\n\n"
                    "  memsnap sql                                  # interactive prompt")
def sql(
    args: Optional[List[str]] = typer.Argument(None, help="[STORE...] QUERY: store directories or globs, then the "
                                                          "SQL (the last argument). No query: interactive prompt."),
    param: List[str] = typer.Option([], "--param", help="Bind $NAME in the query: NAME=VALUE (repeatable; JSON "
                                                        "lists/numbers/null are typed)."),
    fmt: SqlFmt = typer.Option(SqlFmt.table, "--format", "-f", help="table, csv, json, markdown or parquet (with -o)."),
    out: Optional[str] = typer.Option(None, "--output", "-o", help="Write the result to FILE instead of stdout."),
):
    """Run SQL on stores with DuckDB: the raw tables (committed snapshots only) and memsnap's views.

    Tables: snapshots, meminfo, processes, mappings, pages, frames. Views: process_sizes_smaps,
    pages_decoded, mapping_kinds, frame_sharers, snapshot_list; table macros snapshot_pages(host, id) and
    shared_members(...). Column docs: docs/sql.md and docs/schema.md. Queries are read-only: COPY, EXPORT,
    ATTACH, LOAD and SET are refused, and user values are bound with --param, never spliced in.
    """
    from analyzer.sql import parse_params

    args = list(args or [])
    query = None
    if args and not os.path.isdir(args[-1]) and not any(ch in args[-1] for ch in "*?["):
        query = args.pop()
    elif args and len(args) >= 1 and " " in args[-1]:
        query = args.pop()
    try:
        params = parse_params(param)
        with _open(args) as st:
            if query is None:
                if not sys.stdin.isatty():
                    query = sys.stdin.read()
                    if not query.strip():
                        fail(MemsnapError("no query given", hint="pass the SQL as the last argument"))
                else:
                    _interactive(st, params)
                    return
            _emit_sql_result(st, query, params, fmt, out)
    except MemsnapError as e:
        fail(e)


def _interactive(st, params):
    """A small prompt: multi-line statements ending in ';', history, .tables, .schema NAME, .help, .quit."""
    from analyzer.output import render
    from analyzer.sql import run_sql

    try:
        import readline

        hist = os.path.expanduser("~/.memsnap_history")
        try:
            readline.read_history_file(hist)
        except OSError:
            pass
    except ImportError:  # pragma: no cover
        readline = None
    typer.echo(f"memsnap sql on {', '.join(st.paths)} — end statements with ';', .help for help, .quit to leave")
    buf: list[str] = []
    while True:
        try:
            line = input("memsnap> " if not buf else "    ...> ")
        except EOFError:
            typer.echo("")
            break
        except KeyboardInterrupt:
            typer.echo("")
            buf = []
            continue
        if not buf and line.strip().startswith("."):
            cmd, _, arg = line.strip().partition(" ")
            if cmd in (".quit", ".exit"):
                break
            if cmd == ".help":
                typer.echo(".tables            list tables and views\n.schema NAME       columns of a table or view\n"
                           ".quit              leave\nSQL ends with ';'. Parameters given with --param are bound.")
            elif cmd == ".tables":
                rows = st.execute("SELECT table_name, table_type FROM information_schema.tables "
                                  "WHERE table_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY 1").fetchall()
                typer.echo(render([{"name": n, "type": t} for n, t in rows], ["name", "type"], "table"), nl=False)
            elif cmd == ".schema" and arg:
                rows = st.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = ? ORDER BY ordinal_position", [arg.strip()]).fetchall()
                if not rows:
                    typer.echo(f"no table or view {arg.strip()!r}; try .tables")
                typer.echo(render([{"column": c, "type": t} for c, t in rows], ["column", "type"], "table"), nl=False)
            else:
                typer.echo(f"unknown command {line.strip()!r}; try .help")
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            query = "\n".join(buf)
            buf = []
            try:
                cols, rows = run_sql(st, query, {k: v for k, v in params.items() if f"${k}" in query})
                if cols:
                    typer.echo(render([dict(zip(cols, r)) for r in rows], cols, "table"), nl=False)
                    typer.echo(f"({len(rows)} rows)")
            except MemsnapError as e:
                typer.echo(f"Error: {e}" + (f" — {e.hint}" if e.hint else ""))
    if readline is not None:
        try:
            readline.write_history_file(hist)
        except OSError:
            pass


@app.command()
def query(
    name: Optional[str] = typer.Argument(None, help="Named query from queries/ (see --list)."),
    stores: Optional[List[str]] = typer.Argument(None, help="Store directories or globs."),
    param: List[str] = typer.Option([], "--param", help="NAME=VALUE (repeatable). host/snapshot_id default to the "
                                                        "latest snapshot; optional filters to NULL."),
    list_: bool = typer.Option(False, "--list", help="List the named queries and views with their descriptions."),
    fmt: SqlFmt = typer.Option(SqlFmt.table, "--format", "-f", help="table, csv, json, markdown or parquet (with -o)."),
    out: Optional[str] = typer.Option(None, "--output", "-o", help="Write the result to FILE."),
):
    """Run a named query shipped in queries/ (its header says what it does and its parameters)."""
    from analyzer import queries as qs
    from analyzer.output import render
    from analyzer.sql import named_query_params, parse_params

    if list_ or not name:
        rows = [{"name": q.name, "kind": q.kind, "params": ", ".join(q.params), "description": q.description}
                for q in qs.all_queries().values()]
        typer.echo(render(rows, ["name", "kind", "params", "description"], fmt.value if fmt != SqlFmt.parquet
                          else "table", cut=False), nl=False)
        return
    try:
        q = qs.get(name)
        with _open(stores) as st:
            if q.kind == "query":
                params = named_query_params(st, name, parse_params(param))
                _emit_sql_result(st, q.sql, params, fmt, out)
            elif q.kind == "view":
                _emit_sql_result(st, f'SELECT * FROM "{q.name}"', None, fmt, out)
            else:
                fail(MemsnapError(f"{name} is a table macro", hint=f"use it in `memsnap sql`: {q.description}"))
    except MemsnapError as e:
        fail(e)


@app.command("export-db")
def export_db(
    stores: List[str] = typer.Argument(..., help="STORE... OUT.duckdb: the stores, then the database file to write."),
    materialize: bool = typer.Option(False, "--materialize", help="Copy the tables into the database instead of "
                                                                  "views over the Parquet files."),
):
    """Write a DuckDB database file with every table and view, for the duckdb CLI, DBeaver or a notebook.

    By default the tables are views over the store's Parquet files (small; new snapshots appear). With
    --materialize they are copied in (self-contained; can be moved without the store).
    """
    from analyzer.sql import export_db as do_export

    if len(stores) < 2:
        fail(MemsnapError("give the store(s) and then the output file", hint="memsnap export-db STORE OUT.duckdb"))
    out = stores[-1]
    try:
        counts = do_export(stores[:-1], out, materialize)
    except MemsnapError as e:
        fail(e)
    typer.echo(f"wrote {out}: " + ", ".join(f"{t} {n} rows" for t, n in counts.items()) +
               (" (materialized)" if materialize else " (views over Parquet)"))


@app.command(epilog="Examples:\n\n  memsnap report -o report.html                 # last two snapshots of the host\n\n"
                    "  memsnap report --from ID1 --to ID2 --by process -o r.html")
def report(
    stores: Optional[List[str]] = StoresArg,
    output: str = typer.Option("memsnap-report.html", "--output", "-o", help="HTML file to write."),
    from_id: Optional[str] = typer.Option(None, "--from", help="Earlier snapshot (default: the second-to-last)."),
    to_id: Optional[str] = typer.Option(None, "--to", help="Later snapshot (default: the last)."),
    host: Optional[str] = typer.Option(None, "--host", help="Host (needed when the stores hold several)."),
    by: str = typer.Option("command", "--by", help="Consumers and trends by 'command' or 'process'."),
    top: int = typer.Option(15, "--top", min=1, help="Rows per chart and table."),
):
    """Write one self-contained HTML report (charts and sortable tables inline, opens offline).

    Sections: header with caveats, top consumers (USS + share of shared, RSS marked), what changed (growers,
    shrinkers, new/exited, copy-on-write loss), trend lines with leak suspects, sharing (pairs heatmap,
    group costs, sharers histogram), reconciliation with meminfo.
    """
    from analyzer import report as rp

    if by not in ("command", "process"):
        fail(MemsnapError(f"--by {by} is not a report grouping", hint="use command or process"))
    try:
        with _open(stores) as st:
            if sys.stderr.isatty():
                from rich.progress import BarColumn, Progress, TextColumn

                with Progress(TextColumn("report: {task.description}"), BarColumn(), transient=True,
                              console=_stderr_console()) as prog:
                    task = prog.add_task("header", total=len(rp.STEPS))
                    rep = rp.build(st, from_id=from_id, to_id=to_id, host=host, by=by, top=top,
                                   progress=lambda d, t: prog.update(task, completed=d,
                                                                     description=rp.STEPS[min(d, t - 1)]))
            else:
                rep = rp.build(st, from_id=from_id, to_id=to_id, host=host, by=by, top=top)
            rp.write(rep, output)
    except MemsnapError as e:
        fail(e)
    typer.echo(f"wrote {output} ({len(rep.html) / 1024:.0f} kB; sections: {', '.join(rep.sections)})")


import_app = typer.Typer(help="Import captures made by other tools into a store.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("smemcap")
def import_smemcap(
    captures: List[str] = typer.Argument(..., help="smemcap tar/tar.gz files, or directories laid out for "
                                                  "`smem -S DIR` (DIR/proc/<pid>/smaps, DIR/proc/meminfo)."),
    store: Optional[str] = typer.Option(None, "--store", "-S", help="Store directory. Default: $MEMSNAP_STORE, "
                                                                    "else ./memsnap-store."),
    host: Optional[str] = typer.Option(None, "--host", help="Host name for the snapshots. Default: "
                                                            "smemcap-<file name>."),
    fmt: Fmt = typer.Option(Fmt.table, "--format", "-f", help="Output format of the summary."),
):
    """Import smem's offline captures (smemcap) as snapshots without pagemap.

    Each capture becomes one snapshot with processes (uid/gid from the <pid> entry), mappings from smaps,
    and meminfo. A bad or truncated capture is reported and nothing is written for it.
    """
    from analyzer.output import render
    from recorder.smemcap import import_smemcap as do_import

    out = []
    for c in captures:
        try:
            out.append(do_import(c, store or _default_store(), host))
        except MemsnapError as e:
            fail(e)
    typer.echo(render(out, ["snapshot_id", "host", "processes", "mappings"], fmt.value,
                      numeric_columns=("processes", "mappings")), nl=False)


def main():
    try:
        app()
    except MemsnapError as e:  # pragma: no cover - commands call fail() themselves
        typer.echo(f"Error: {e}" + (f" — {e.hint}" if e.hint else ""), err=True)
        sys.exit(1)
    except Exception as e:
        # DuckDB reading a damaged data page (the footer was fine) fails mid-query; its message names the file
        if type(e).__module__.split(".")[0] in ("duckdb", "_duckdb"):
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if "Out of Memory" in first:
                hint = ("raise the analyzer's DuckDB memory limit, e.g. MEMSNAP_MEMORY_LIMIT=4GB (default 1GB; "
                        "what does not fit spills to a temporary directory)")
            else:
                hint = ("a store file may be damaged; `memsnap --skip-bad ...` checks every file and leaves out "
                        "snapshots with a damaged one")
            typer.echo(f"Error: DuckDB: {first} — {hint}", err=True)
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
