"""``memsnap record`` and ``memsnap import``: the commands of the recorder-only install."""
from __future__ import annotations

import json
import signal
import sys
import time
from enum import Enum
from typing import List, Optional

import typer

from common.errors import Interrupted, MemsnapError, NothingRecorded
from common.settings import parse_size

from .app import app
from .options import OneStoreArg, OneStoreOpt, err, fail, one_store, stderr_console

DEFAULT_SOURCES = ("maps", "smaps", "smaps_rollup", "pagemap", "kpage")


def _sources(text: str) -> tuple[str, ...]:
    """--sources: a comma-separated list, or ``+a,b`` for the default sources plus a and b."""
    extra = text.strip().startswith("+")
    named = tuple(s.strip() for s in text.strip().lstrip("+").split(",") if s.strip())
    return tuple(dict.fromkeys(DEFAULT_SOURCES + named)) if extra else named


class ImpactMode(str, Enum):
    auto = "auto"
    low = "low"
    full = "full"


DEFAULT_IMPACT_THRESHOLD_MB = 1024  # recorder.capture.DEFAULT_IMPACT_THRESHOLD_KB (not imported: startup time)


class RecordFmt(str, Enum):
    table = "table"
    json = "json"


def summary(res, fmt: RecordFmt, quiet: bool) -> str:
    """One line per snapshot: the id (--quiet), a JSON object (--format json) or a sentence."""
    c = res.counts
    if quiet:
        return res.snapshot_id
    if fmt == RecordFmt.json:
        return json.dumps({"snapshot_id": res.snapshot_id, "host": res.host, "store": res.store,
                           "processes": dict(c), "pages": res.pages, "frames": res.frames,
                           "bytes_written": res.bytes_written, "seconds": round(res.seconds, 3),
                           "warnings": list(res.warnings)}, sort_keys=False)
    return (f"{res.snapshot_id}  host={res.host}  processes: {c['ok']} recorded, {c['partial']} partial, "
            f"{c['vanished']} vanished, {c['denied']} denied, {c['zombie']} zombie, "
            f"{c['kernel_thread']} kernel threads; {res.pages} pages, {res.frames} frames; "
            f"{res.bytes_written / 1e6:.2f} MB written in {res.seconds:.2f}s -> {res.store}")


@app.command(epilog="Examples:\n\n  memsnap record                          # one snapshot of every process\n\n"
                    "  memsnap record --interval 60 --count 0  # every minute until stopped (SIGTERM, Ctrl-C)\n\n"
                    "  memsnap record --match 'python|gunicorn' --sources smaps_rollup,smaps\n\n"
                    "  memsnap record --impact low --nice 19 --ionice idle   # no smaps walks at all\n\n"
                    "  memsnap record --sources +physmem   # and every frame of the machine, for memsnap memory\n\n"
                    "  memsnap record --impact-threshold-mb 512 --budget-ms 200   # low impact above 512 MiB\n\n"
                    "  memsnap record memsnap-store --format json | python3 -m json.tool")
def record(
    store_arg: OneStoreArg = None, store: OneStoreOpt = [],
    interval: float = typer.Option(0, "--interval", "-i", min=0, help="Seconds between snapshots (with --count)."),
    count: int = typer.Option(1, "--count", min=0, help="Number of snapshots; 0 = until SIGINT/SIGTERM."),
    pid: List[int] = typer.Option([], "--pid", help="Record only this PID (repeatable)."),
    match: Optional[str] = typer.Option(None, "--match", help="Record only processes whose command line matches "
                                        "this regular expression (Python syntax, searched anywhere in the line). "
                                        "Never matched: the recorder itself, and the commands that started it with "
                                        "this pattern on their command line (time, sudo, bash -c ...)."),
    sources: str = typer.Option(",".join(DEFAULT_SOURCES), "--sources",
                                help="Comma-separated: maps, smaps, smaps_rollup, pagemap, kpage, physmem, cgroups. kpage "
                                     "(kpagecount/kpageflags/kpagecgroup) needs pagemap. "
                                     "Cheapest useful: smaps_rollup. Opt-in: physmem (every frame of the machine "
                                     "classified and counted per memory cgroup, for `memsnap memory`; about 7 s "
                                     "and 100 MiB peak on a 24 GiB host, BENCHMARKS.md) and cgroups (the memory "
                                     "cgroups; physmem records them too). A leading + adds to the default: "
                                     "--sources +physmem."),
    host: Optional[str] = typer.Option(None, "--host", help="Host name for the store partition. Default: hostname."),
    impact: ImpactMode = typer.Option(
        ImpactMode.auto, "--impact",
        help="How much a capture may stall the recorded processes. Reading smaps and smaps_rollup walks a "
             "process's whole page table under its mmap lock, so its mmap/munmap/mprotect wait ~12 ms per GiB of "
             "4 KiB-mapped memory (more on a loaded host). 'low': for every process read maps, pagemap and kpage "
             "only, no smaps or smaps_rollup: the kernel then holds the lock per 2 MiB of address space, a hold that "
             "does not grow with the process; `memsnap sizes` computes the same figures from pages "
             "(needs root for PFNs). 'auto' (default): low for processes above --impact-threshold-mb, full for "
             "the others. 'full': every source for every process."),
    impact_threshold_mb: int = typer.Option(
        DEFAULT_IMPACT_THRESHOLD_MB, "--impact-threshold-mb", min=0,
        help="With --impact auto: processes with more VmRSS + VmSwap than this (MiB) are read in low-impact mode. "
             "The default bounds a smaps walk's lock hold to ~12-15 ms on a quiet host (BENCHMARKS.md, Impact)."),
    smaps_max_rss_mb: Optional[int] = typer.Option(
        None, "--smaps-max-rss-mb", min=0,
        help="Older, weaker limit: for processes with more RSS than this, read maps instead of full smaps but "
             "still smaps_rollup (its walk stalls as long as smaps'). Prefer --impact-threshold-mb."),
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
    fmt: RecordFmt = typer.Option(RecordFmt.table, "--format", "-f", help="Summary per snapshot: table (a "
                                  "sentence) or json (one object per line)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only print the snapshot id."),
    no_compact: bool = typer.Option(False, "--no-compact", help="With --interval: do not compact. By default, "
                                    "once a UTC day is over its snapshots of this host are merged into one file per "
                                    "table, as `memsnap compact` does, and during the day every 60 new snapshots are "
                                    "merged into one file per table."),
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

    if ionice not in ("idle", "best-effort", "none"):
        fail(MemsnapError(f"--ionice {ionice!r} is not a class", hint="use idle, best-effort or none"))
    try:
        limit = parse_size(max_store_bytes, "--max-store-bytes") if max_store_bytes else None
    except MemsnapError as e:
        fail(e)
    opts = Options(store=one_store("record", store_arg, store), host=host, pids=tuple(pid), match=match,
                   sources=_sources(sources),
                   smaps_max_rss_kb=smaps_max_rss_mb * 1024 if smaps_max_rss_mb is not None else None,
                   process_budget_ms=budget_ms, procfs=procfs, impact=impact.value,
                   impact_threshold_kb=impact_threshold_mb * 1024,
                   redact=tuple(r for item in redact for r in item.split(",") if r),
                   pseudonymize_pfns=pseudonymize_pfns, key_file=key_file, keep=keep, max_store_bytes=limit)
    for w in set_low_priority(nice, ionice):
        err(f"warning: {w}")
    if count != 1:
        _one_arrow_thread()
    _record_loop(opts, count, interval, fmt, quiet, compact_days=count != 1 and not no_compact)


def _one_arrow_thread() -> None:
    """A long-running recorder keeps Arrow's CPU and I/O thread pools at one thread each.  Arrow starts pool
    threads on demand (compaction's reads, up to cpu_count + io_thread_count = 2 + 8 here) and never ends them, so
    an --interval recorder's thread count crept up over its first thousand captures (bench/soak_bench.py); with
    one thread each it is constant from the start, and compaction uses at most one core besides the main
    thread.  The capture's own overlap (its writer thread) is not Arrow's pool and is unchanged."""
    import pyarrow as pa

    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


#: exit status after a signal: SIGINT (Ctrl-C) is the shell's 128 + 2; SIGTERM (systemd stopping the unit,
#: `kill`) is a requested, clean stop
SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 0}


def _compact(opts, host: str, date: str, done: set) -> None:
    """After a capture in --interval mode: once per UTC day of capture, compact this host's finished days; and
    whenever the current day holds recorder.compact.LOOSE_MAX loose snapshots, merge them.  A failure is a
    warning (the snapshots are safe; the next capture or `memsnap compact` tries again)."""
    from recorder.compact import CompactResult, compact, compact_today

    from .compact import compact_lines

    try:
        if date not in done:  # the finished days, and today's loose snapshots if there are enough
            done.add(date)
            res = compact(opts.store, host=host)
        else:  # only a listdir unless there are enough
            part = compact_today(opts.store, host, date)
            res = CompactResult(partitions=[part] if part else [])
        for line in compact_lines(res):
            err(line)
    except (MemsnapError, OSError) as e:  # never stop recording over it
        err(f"warning: compaction failed: {e} — {getattr(e, 'hint', '') or 'run `memsnap compact` to retry'}")


def _record_loop(opts, count: int, interval: float, fmt: RecordFmt, quiet: bool,
                 compact_days: bool = False) -> None:
    """Capture ``count`` snapshots (0: until a signal), ``interval`` seconds apart.  SIGINT or SIGTERM, at any
    moment, end it the same way: the snapshot in progress (if any) is discarded, one line says so and how many
    were committed, and the exit status is SIGNAL_EXIT's.  ``compact_days``: compact finished days (once per
    day of capture)."""
    compacted_on: set[str] = set()
    stop = {"sig": None}

    def on_signal(signum, frame):
        stop["sig"] = signum

    old = {s: signal.signal(s, on_signal) for s in SIGNAL_EXIT}
    attempts = committed = 0
    try:
        while (count == 0 or attempts < count) and stop["sig"] is None:
            if attempts:
                _sleep(interval, stop)
                if stop["sig"] is not None:
                    break
            attempts += 1
            try:
                res = _capture_with_progress(opts, lambda: stop["sig"] is not None, quiet)
            except Interrupted:
                break
            except NothingRecorded as e:
                if count == 1:
                    fail(e)
                err(f"warning: {e} — {e.hint}")  # in --interval mode a service may come back: go on
                continue
            except MemsnapError as e:
                fail(e)
            committed += 1
            for w in res.warnings:
                err(f"warning: {w}")
            typer.echo(summary(res, fmt, quiet))
            sys.stdout.flush()
            if compact_days:
                _compact(opts, res.host, f"{res.snapshot_id[:4]}-{res.snapshot_id[4:6]}-{res.snapshot_id[6:8]}",
                         compacted_on)  # the id starts with the UTC capture date
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stop["sig"] is not None:
        err(f"interrupted: the snapshot in progress was discarded; {committed} "
            f"snapshot{'s' if committed != 1 else ''} committed")
        raise typer.Exit(SIGNAL_EXIT[stop["sig"]])


def _sleep(seconds: float, stop: dict) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and stop["sig"] is None:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))


def _capture_with_progress(opts, should_stop, quiet):
    from recorder.capture import Recorder

    if quiet or not sys.stderr.isatty():
        return Recorder(opts, should_stop=should_stop).capture()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("recording"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  transient=True, console=stderr_console()) as prog:
        task = prog.add_task("record", total=None)
        return Recorder(opts, progress=lambda d, t: prog.update(task, completed=d, total=t),
                        should_stop=should_stop).capture()


import_app = typer.Typer(help="Import captures made by other tools into a store.", no_args_is_help=True)
app.add_typer(import_app, name="import")


@import_app.command("smemcap", epilog="Examples:\n\n  memsnap import smemcap capture.tar.gz\n\n"
                                      "  memsnap import smemcap -S ./memsnap-store --host db1 capture.tar.gz")
def import_smemcap(
    captures: List[str] = typer.Argument(..., help="smemcap tar/tar.gz files, or directories laid out for "
                                                  "`smem -S DIR` (DIR/proc/<pid>/smaps, DIR/proc/meminfo)."),
    store: List[str] = typer.Option([], "--store", "-S", help="Store directory. Default: $MEMSNAP_STORE, else "
                                                             "./memsnap-store. (The arguments are the captures.)",
                                    show_default=False),
    host: Optional[str] = typer.Option(None, "--host", help="Host name for the snapshots. Default: "
                                                            "smemcap-<file name>."),
    fmt: RecordFmt = typer.Option(RecordFmt.table, "--format", "-f", help="Output format of the summary."),
):
    """Import smem's offline captures (smemcap) as snapshots without pagemap.

    Each capture becomes one snapshot with processes (uid/gid from the <pid> entry), mappings from smaps,
    and meminfo. A bad or truncated capture is reported and nothing is written for it.
    """
    from recorder.smemcap import import_smemcap as do_import

    target = one_store("import", None, store)
    out = []
    for c in captures:
        try:
            out.append(do_import(c, target, host))
        except MemsnapError as e:
            fail(e)
    from analyzer.output import render  # pure formatting: no analyzer libraries needed

    typer.echo(render(out, ["snapshot_id", "host", "processes", "mappings"], fmt.value,
                      numeric_columns=("processes", "mappings")), nl=False)
