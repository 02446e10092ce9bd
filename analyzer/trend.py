"""Trends over many snapshots, and leak suspects.

``trend()`` takes the snapshots to cover (chosen by :func:`analyzer.snapshots.select_range`) and returns
a long-format series: one row per (snapshot, key) with the snapshot's capture time and
the uss/pss/rss/swap kB of that key.  Each snapshot's figures come from :func:`analyzer.sizes.sizes`, so a
trend point is exactly what ``memsnap sizes --snapshot ID`` shows (same sources, filters and accounting).
It is called once per batch of up to :data:`BATCH` snapshots of one host rather than once per snapshot: every
query over a store pays a fixed cost per Parquet file of the whole store, so per-snapshot calls grow
quadratically (see :data:`BATCH`).  One definition of the numbers is kept, no second copy of the sizes SQL.

Keys:

* ``process`` -- a process is ``(boot_id, pid, starttime)`` (docs/design.md: PIDs are reused, start times are
  not), so a reused PID, or the same PID after a reboot, is a different series;
* ``command`` -- ``(host, comm)``, the processes of one program summed per snapshot (``count`` says how
  many there were).

``leak_suspects()`` fits a least-squares line to each key's metric against capture time and ranks the keys
that grow steadily: positive slope, R² >= :data:`R2_MIN` and growth >= :data:`MIN_GROWTH_KB`, largest slope
(kB/hour) first; the other keys follow, also by slope.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .sizes import sizes
from .snapshots import BadOption, Snapshot
from .store import Store

BY = ("process", "command")
METRICS = ("uss", "pss", "rss", "swap")
#: minimum coefficient of determination for a key to count as growing *steadily* (a leak suspect).
#: 0.8: a linear fit explains 80 % of the variance; allocator noise of a few percent of the growth passes,
#: a one-off jump followed by a plateau (R² ~0.5-0.75 over 6+ points) does not.
R2_MIN = 0.8
#: minimum growth (kB, first to last point) for a key to count as a leak suspect.  A process that does nothing
#: still moves by a few pages between captures (shared pages turn private when another mapper exits, the
#: recorder's own mappings change mapcounts), and a few 4 kB steps can fit a line well.  64 kB is the noise
#: floor the diff charts use (report.CHART_MIN_CHANGE_KB).
MIN_GROWTH_KB = 64

KEY_COLUMNS = {"process": ["host", "boot_id", "pid", "starttime"], "command": ["host", "command"]}
LABEL_COLUMNS = {"process": ["host", "boot_id", "pid", "starttime", "started", "name", "command"],
                 "command": ["host", "command"]}
SERIES_COLUMNS = {
    "process": ["snapshot_id", "capture_start", "host", "boot_id", "pid", "starttime", "started", "name",
                "command", *METRICS],
    "command": ["snapshot_id", "capture_start", "host", "command", "count", *METRICS],
}
LEAK_COLUMNS = ["slope_kb_per_hour", "r2", "points", "first_kb", "last_kb", "growth_kb", "suspect",
                "first_seen", "last_seen"]


@dataclass
class TrendResult:
    by: str
    source: str
    key_columns: list[str]
    label_columns: list[str]
    columns: list[str]
    rows: list[dict]
    snapshots: list[Snapshot] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def key(self, row: dict) -> tuple:
        return tuple(row.get(c) for c in self.key_columns)


@dataclass
class LeakResult:
    by: str
    metric: str
    r2_min: float
    min_points: int
    key_columns: list[str]
    columns: list[str]
    rows: list[dict]
    notes: list[str] = field(default_factory=list)
    min_growth_kb: int = MIN_GROWTH_KB

    @property
    def suspects(self) -> list[dict]:
        return [r for r in self.rows if r["suspect"]]


#: snapshots per sizes() call, at most.  Every query pays a fixed cost (view scans, per Parquet file read), so one
#: call per snapshot grows quadratically: 17 s for 50 loose snapshots of the sample processes, against 0.7 s in
#: batches of 50.  On a compacted store (one file per day) the fixed cost is per query: 200 snapshots of 4
#: processes took 1.09 s in batches of 50, 0.52 s in batches of 200 (bench/compact_bench.py measures trend).
BATCH = 500
#: ... and page rows per call, at most: batches bound the size of sizes()'s per-call work (its fact table has a
#: row per mapping, its page queries a row per page), so big snapshots go fewer at a time (10 at least).
BATCH_PAGE_ROWS = 20_000_000


def batch_size(snaps: list[Snapshot]) -> int:
    """Snapshots per sizes() call for these snapshots: :data:`BATCH`, fewer for big ones."""
    rows = [s.pages_rows for s in snaps if s.pages_rows]
    avg = sum(rows) / len(rows) if rows else 0
    return max(10, min(BATCH, int(BATCH_PAGE_ROWS // avg))) if avg else BATCH


def _batches(snaps: list[Snapshot], size: int):
    """(snapshots done, batch): batches of one host's snapshots (sizes() notes and keys then stay per host),
    in time order."""
    per_host: dict[str, list[Snapshot]] = {}
    for s in snaps:
        per_host.setdefault(s.host, []).append(s)
    done = 0
    for ss in per_host.values():
        for i in range(0, len(ss), size):
            batch = ss[i:i + size]
            done += len(batch)
            yield done, batch


def trend(store: Store, snaps: list[Snapshot], *, by: str = "process", source: str = "smaps",
          processfilter: str | None = None, userfilter: str | None = None, mapfilter: str | None = None,
          progress=None) -> TrendResult:
    """One row per (snapshot of ``snaps``, key) with uss/pss/rss/swap kB.  ``progress(done, total)`` counts
    snapshots done (called at the start and after each batch)."""
    if by not in BY:
        raise BadOption(f"unknown trend --by {by}", hint=f"choose from {', '.join(BY)}")
    rows: list[dict] = []
    notes: list[str] = []
    progress = progress or (lambda done, total: None)
    progress(0, len(snaps))
    want = [c for c in SERIES_COLUMNS[by] if c not in ("capture_start", "boot_id")]
    for done, batch in _batches(snaps, min(BATCH, batch_size(snaps))):
        res = sizes(store, batch, by=by, source=source, processfilter=processfilter, userfilter=userfilter,
                    mapfilter=mapfilter, columns=want)
        rows += _points(res.rows, {(s.host, s.snapshot_id): s for s in batch}, by)
        notes += [n for n in res.notes if n not in notes]
        progress(done, len(snaps))
    keys = KEY_COLUMNS[by]
    rows.sort(key=lambda r: (tuple((r[k] is None, r[k] if r[k] is not None else 0) for k in keys),
                             r["capture_start"], r["snapshot_id"]))
    hosts = sorted({s.host for s in snaps})
    if len(hosts) > 1:
        notes.append(f"{len(hosts)} hosts ({', '.join(hosts)}): each key's series stays within its host")
    return TrendResult(by, source, list(keys), list(LABEL_COLUMNS[by]), list(SERIES_COLUMNS[by]), rows,
                       list(snaps), notes)


def _points(rows: list[dict], info: dict, by: str) -> list[dict]:
    """Series rows from sizes rows: the snapshot's capture time (and boot, which identifies a process)."""
    out = []
    for r in rows:
        s = info[(r["host"], r["snapshot_id"])]
        row = {c: r.get(c) for c in SERIES_COLUMNS[by]}
        row["capture_start"] = s.capture_start
        if by == "process":
            row["boot_id"] = s.boot_id
        out.append(row)
    return out


def top_keys(series: TrendResult, metric: str, top: int) -> list[tuple]:
    """The ``top`` keys with the largest last value of ``metric`` (the value at each key's last point)."""
    _check_metric(metric)
    last: dict[tuple, float] = {}
    for r in series.rows:  # rows are in time order within a key
        if r.get(metric) is not None:
            last[series.key(r)] = r[metric]
    return [k for k, _ in sorted(last.items(), key=lambda kv: kv[1], reverse=True)[:top]]


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise BadOption(f"unknown --metric {metric}", hint=f"choose from {', '.join(METRICS)}")


def leak_suspects(series: TrendResult, metric: str = "uss", min_points: int = 3,
                  r2_min: float = R2_MIN, min_growth_kb: int = MIN_GROWTH_KB) -> LeakResult:
    """Rank keys by how steadily ``metric`` grows: least-squares slope (kB/hour) against capture time.

    Suspects (``suspect=True``) have at least ``min_points`` points, a positive slope, R² >= ``r2_min`` and
    grew by at least ``min_growth_kb`` from the first point to the last (below that is capture noise);
    they come first, largest slope first; every other key with ``min_points`` points follows, by slope.
    R² is null for a perfectly flat series (no variance to explain).  Keys with fewer points are left out
    (counted in ``notes``).
    """
    import numpy as np

    _check_metric(metric)
    if min_points < 2:
        raise BadOption(f"min_points {min_points} is too small for a slope", hint="use 2 or more (default 3)")
    groups: dict[tuple, list[dict]] = {}
    for r in series.rows:
        if r.get(metric) is not None:
            groups.setdefault(series.key(r), []).append(r)
    out, short = [], 0
    for k, rs in groups.items():
        rs = sorted(rs, key=lambda r: r["capture_start"])
        t0 = rs[0]["capture_start"]
        x = np.array([(r["capture_start"] - t0).total_seconds() / 3600.0 for r in rs])
        y = np.array([float(r[metric]) for r in rs])
        if len(rs) < min_points or np.ptp(x) == 0:
            short += 1
            continue
        dx, dy = x - x.mean(), y - y.mean()
        sxx, sxy, syy = float(dx @ dx), float(dx @ dy), float(dy @ dy)
        slope = sxy / sxx
        r2 = (sxy * sxy) / (sxx * syy) if syy > 0 else None
        row = {c: rs[-1].get(c) for c in series.label_columns}
        row.update(slope_kb_per_hour=round(slope, 3), r2=round(r2, 6) if r2 is not None else None,
                   points=len(rs), first_kb=rs[0][metric], last_kb=rs[-1][metric],
                   growth_kb=rs[-1][metric] - rs[0][metric],
                   suspect=bool(slope > 0 and r2 is not None and r2 >= r2_min
                                and rs[-1][metric] - rs[0][metric] >= min_growth_kb),
                   first_seen=rs[0]["capture_start"], last_seen=rs[-1]["capture_start"])
        out.append(row)
    out.sort(key=lambda r: (not r["suspect"], -r["slope_kb_per_hour"]))
    notes = []
    if short:
        notes.append(f"{short} key(s) with fewer than {min_points} snapshots (or one capture time) are not ranked")
    return LeakResult(series.by, metric, r2_min, min_points, list(series.key_columns),
                      list(series.label_columns) + LEAK_COLUMNS, out, notes, min_growth_kb)
