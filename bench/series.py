#!/usr/bin/env python3
"""Write a long series of snapshots (one a minute, say) into a store through the real writer.

    python bench/series.py --source sample_data/store --snapshots 1440 --out /tmp/day [--host h] [--step 60]
                           [--start 2026-11-20T00:00:00+00:00]

Each snapshot is a copy of the source store's latest snapshot with its own snapshot id and capture time,
written with ``recorder.store.SnapshotWriter`` (so: staged files, fsync, rename, commit row last), in the
partitions of its UTC day.  Snapshot ``i`` keeps all but ``i % 13`` of the source's page rows, so that
snapshots differ in their counts and sums (the compaction kill test checks each one).

Used by bench/compact_bench.py and the compaction tests.
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from common import catalog, layout  # noqa: E402
from recorder.store import SnapshotWriter  # noqa: E402
from schema import TABLES, arrow_schema  # noqa: E402


def load_latest(source: str) -> dict[str, pa.Table]:
    """The latest snapshot of ``source`` (a store), one Arrow table per stored table, in this schema version's
    columns (an older store's lack the columns added since: nulls)."""
    cat = catalog.scan(source, TABLES)
    host, sid = cat.snapshot_ids()[-1]
    seg = cat.winners[(host, sid)]
    out = {}
    for t in TABLES:
        p = layout.data_path(source, t, host, seg.date, seg.name)
        if not os.path.exists(p):
            continue  # an optional table (physmem, cgroups) the snapshot did not record
        tbl = pq.read_table(p)
        out[t] = _conform(tbl.filter(pa.compute.equal(tbl.column("snapshot_id"), sid)), t)
    return out


def _conform(tbl: pa.Table, name: str) -> pa.Table:
    """``tbl`` (read from a store of an older schema version) with this version's columns: those added since
    as nulls, as readers see them."""
    from schema import arrow_schema

    schema = arrow_schema(name)
    cols = [tbl.column(f.name) if f.name in tbl.column_names else pa.nulls(tbl.num_rows, f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _with_id(tbl: pa.Table, sid: str) -> pa.Table:
    i = tbl.schema.get_field_index("snapshot_id")
    return tbl.set_column(i, tbl.schema.field(i), pa.array([sid] * tbl.num_rows, tbl.schema.field(i).type))


def write_series(tables: dict[str, pa.Table], store: str, n: int, host: str, start: datetime,
                 step_s: float = 60.0, first: int = 0) -> list[str]:
    """Write snapshots ``first .. first+n-1`` of the series; returns their ids."""
    base = tables["snapshots"].to_pylist()[0]
    ids = []
    for i in range(first, first + n):
        t0 = start + timedelta(seconds=i * step_s)
        sid = layout.new_snapshot_id(t0, host, base["boot_id"], pid=1)
        w = SnapshotWriter(store, host, sid, layout.partition_date(t0))
        for name, tbl in tables.items():
            if name == "snapshots":
                continue
            if name == "pages":
                tbl = tbl.slice(0, max(0, tbl.num_rows - i % 13))
            w.table(name).write(_with_id(_conform(tbl, name), sid))
        w.commit(dict(base, snapshot_id=sid, capture_start=t0, capture_end=t0 + timedelta(seconds=1),
                      hostname=host, pages_rows=max(0, tables["pages"].num_rows - i % 13)))
        ids.append(sid)
    return ids


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="sample_data/store")
    ap.add_argument("--snapshots", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--host", default="series")
    ap.add_argument("--step", type=float, default=60.0, help="seconds between snapshots")
    ap.add_argument("--start", default=None, help="first capture time (ISO, with offset); default: N steps ago")
    a = ap.parse_args(argv)
    start = datetime.fromisoformat(a.start) if a.start else \
        datetime.now(timezone.utc) - timedelta(seconds=a.step * a.snapshots)
    ids = write_series(load_latest(a.source), a.out, a.snapshots, a.host, start, a.step)
    print(f"{len(ids)} snapshots written to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
