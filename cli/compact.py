"""``memsnap compact``: merge a store's snapshots into one file per table, host and day (recorder install)."""
from __future__ import annotations

import json
import os
from enum import Enum
from typing import List, Optional

import typer

from common.errors import MemsnapError

from .app import app
from .options import LazyProgress, OneStoreArg, OneStoreOpt, err, fail, one_store


class CompactFmt(str, Enum):
    table = "table"
    json = "json"


def compact_lines(res) -> list[str]:
    """One sentence per partition compacted, for `compact` and for the recorder's --interval mode."""
    return [f"compacted {p.snapshots} snapshot{'s' if p.snapshots != 1 else ''} of host={p.host} date={p.date}: "
            f"{p.files_before} files ({p.bytes_before / 1e6:.2f} MB) -> {p.files_after} "
            f"({p.bytes_after / 1e6:.2f} MB)" for p in res.partitions if p.segment]


@app.command(epilog="Examples:\n\n  memsnap compact                          # every finished day of every host\n\n"
                    "  memsnap compact memsnap-store --include-today --format json\n\n"
                    "  memsnap compact -S memsnap-store --host sample --date 2026-11-25")
def compact(
    store_arg: OneStoreArg = None, store: OneStoreOpt = [],
    host: Optional[str] = typer.Option(None, "--host", help="Only this host's partitions."),
    date: List[str] = typer.Option([], "--date", help="Only this day, YYYY-MM-DD (UTC; repeatable)."),
    include_today: bool = typer.Option(False, "--include-today", help="Merge the current UTC day (and later "
                                       "ones) whole too. Without it, their loose snapshots are merged only once "
                                       "there are 60. Safe while a recorder writes: its new snapshots stay in "
                                       "their own files until the next run."),
    fmt: CompactFmt = typer.Option(CompactFmt.table, "--format", "-f", help="table (one sentence per day "
                                   "compacted) or json (one object per partition, skipped ones included)."),
):
    """Merge the snapshots of each host and day into one file per table.

    A store recorded every minute holds 8,640 small files a day, and every command pays per file. Compaction
    rewrites each finished day into six files (one per table), a snapshot's rows kept together and in order;
    every command gives the same answers before and after. The current day's loose snapshots are merged by
    the 60 (so a timer can run this after every capture). It is safe at any moment: a kill leaves each
    snapshot visible exactly once, and the next run finishes the job. `record --interval` compacts finished
    days by itself (--no-compact turns that off).
    """
    from recorder.compact import compact as run

    path = one_store("compact", store_arg, store)
    for d in date:
        if len(d) != 10 or d[4] != "-" or d[7] != "-" or not (d[:4] + d[5:7] + d[8:]).isdigit():
            fail(MemsnapError(f"--date {d!r} is not YYYY-MM-DD", hint="e.g. --date 2026-11-28"))
    from common import layout

    if not os.path.isdir(path) or not layout.is_store(path):
        fail(MemsnapError(f"{path}: not a memsnap store (no snapshots/ directory)",
                          hint="pass the directory given to `memsnap record --store`"))
    try:
        with LazyProgress("compact: days", min_total=2) as progress:
            res = run(path, host=host, dates=set(date) or None, include_today=include_today, progress=progress)
    except MemsnapError as e:
        fail(e)
    if res.recovered:
        err(f"removed {len(res.recovered)} incomplete snapshot(s) or compaction(s) left by a killed process")
    if res.pruned:
        err(f"finished an interrupted compaction: removed {len(res.pruned)} merged file set(s)")
    if fmt == CompactFmt.json:
        typer.echo(json.dumps([vars(p) for p in res.partitions], indent=1))
        return
    lines = compact_lines(res)
    for line in lines:
        typer.echo(line)
    if not lines:
        busy = [p for p in res.partitions if p.skipped == "another compaction holds it"]
        err(f"nothing to compact in {path}" + (f" ({len(busy)} day(s) held by another compaction)" if busy else
                                               ("" if include_today else " (the current day is left alone "
                                                "unless --include-today)")))
