"""Rows that the live capture (capture.py) and the smemcap import (smemcap.py) both write, built in one place.

The ``snapshots`` row is the commit record (docs/design.md, "Committing a snapshot"); both writers build it
with :func:`snapshot_row` and pass in only what differs between a live capture and an imported one.
"""
from __future__ import annotations

import json

from schema import SCHEMA_VERSION, arrow_schema

from . import __version__


def meminfo_columns(snapshot_id: str, meminfo: list[tuple]) -> dict:
    """The ``meminfo`` table's columns from parse_meminfo's (key, value_kb, value) triples."""
    return {"snapshot_id": [snapshot_id] * len(meminfo), "key": [k for k, _, _ in meminfo],
            "value_kb": [kb for _, kb, _ in meminfo], "value": [v for _, _, v in meminfo]}


def map_items(row: dict, key: str) -> None:
    """A parsed ``{name: kB}`` dict column becomes the (key, value) pairs of its Arrow map column, in place."""
    if key in row:
        row[key] = list(row[key].items())


def snapshot_row(snapshot_id: str, system: dict, *, start, end, options: dict, sources, seen: int,
                 counts: dict, pfn_available: bool | None, kpage_available: bool = False,
                 kpagecgroup_available: bool = False, pages_rows: int = 0, frames_rows: int = 0,
                 warnings=(), recorder_pid: int | None = None, recorder_uid: int | None = None,
                 pfn_pseudonymized: bool | None = None, redacted=()) -> dict:
    """The ``snapshots`` row.  ``system`` holds the machine's facts (boot_id, kernel_release, page size,
    ... as from capture.system_info); ``counts`` the processes per status (ok, partial, vanished, denied,
    zombie, kernel_thread; a status missing counts 0); ``seen`` the processes looked at.  A column not
    given is NULL (SnapshotWriter.commit writes every schema column)."""
    row = dict(system)
    row.update({
        "snapshot_id": snapshot_id,
        "capture_start": start,
        "capture_end": end,
        "recorder_version": __version__,
        "recorder_pid": recorder_pid,
        "recorder_uid": recorder_uid,
        "schema_version": SCHEMA_VERSION,
        "options_json": json.dumps(options, default=list),
        "sources": ",".join(sources),
        "pfn_available": pfn_available,
        "kpage_available": kpage_available,
        "kpagecgroup_available": kpagecgroup_available,
        "processes_seen": seen,
        "processes_recorded": counts.get("ok", 0),
        "processes_partial": counts.get("partial", 0),
        "processes_vanished": counts.get("vanished", 0),
        "processes_denied": counts.get("denied", 0),
        "processes_zombie": counts.get("zombie", 0),
        "kernel_threads": counts.get("kernel_thread", 0),
        "pages_rows": pages_rows,
        "frames_rows": frames_rows,
        "warnings": "\n".join(warnings) or None,
        "pfn_pseudonymized": pfn_pseudonymized,
        "redacted": ",".join(redacted) or None,
    })
    names = arrow_schema("snapshots").names
    assert set(row) <= set(names), set(row) - set(names)
    return row
