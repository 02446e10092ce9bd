#!/usr/bin/env python3
"""Many snapshots: what each command costs on stores of 1, 1,440 (a day a minute) and 10,000 snapshots,
before and after `memsnap compact`.

    python bench/compact_bench.py [--counts 1,1440,10000] [--procs 20] [--pages 5k] [--out bench/out]
                                  [--skip-before 10000]

The source snapshot is a small synthetic machine (bench/synth.py: --procs processes, --pages pages); the
series is written through the real writer (bench/series.py), one snapshot a minute ending now.  Each command
runs as the CLI in a fresh process (wall time, peak RSS).  The baseline is `sizes` on the 1-snapshot store,
measured in the same run; the target (issue 13) is `sizes` of the latest snapshot within 1.5x of it at 10,000
snapshots, and `trend` over the last day under 3 s.  Writes <out>/compact.json and <out>/compact.md.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(1, str(HERE))

from benchutil import ROOT, du, loadavg, log, med, memsnap_cmd, run  # noqa: E402

COMMANDS = [
    ("sizes (latest)", ["sizes", "-f", "json"]),
    ("snapshots", ["snapshots", "-f", "json"]),
    ("trend, last 24h", ["trend", "--since", "24h", "--by", "command", "-f", "json"]),
    ("trend, all", ["trend", "--by", "command", "-f", "json"]),
]


def files(path: Path) -> int:
    return sum(1 for _ in path.rglob("*.parquet"))


def measure(store: Path, repeat: int, skip=()) -> dict:
    out = {"bytes": du(str(store)), "files": files(store)}
    for name, args in COMMANDS:
        if name in skip:
            continue
        walls, peaks = [], []
        for _ in range(repeat):
            r = run([*memsnap_cmd(), args[0], str(store), *args[1:]])
            walls.append(r["wall_s"])
            peaks.append(r["maxrss_kb"])
        out[name] = {"wall_s": med(walls), "maxrss_kb": max(peaks)}
        log(f"  {name}: {med(walls):.2f} s, {max(peaks) // 1024} MiB")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1,1440,10000")
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--pages", default="5k")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--skip-before", default="", help="counts (comma-separated) whose uncompacted store is "
                    "measured only on the commands that do not read every snapshot (sizes of the latest, trend "
                    "of the last day): `snapshots` and `trend` over all of 10,000 loose snapshots take minutes")
    a = ap.parse_args(argv)
    import series

    counts = [int(c) for c in a.counts.split(",")]
    skip_before = {int(c) for c in a.skip_before.split(",") if c}
    tmp = Path(tempfile.mkdtemp(prefix="memsnap-compact-"))
    res = {"procs": a.procs, "pages": a.pages, "repeat": a.repeat, "loadavg_start": loadavg(), "stores": {}}
    try:
        src = tmp / "source"
        subprocess.run([sys.executable, str(HERE / "synth.py"), "--procs", str(a.procs), "--pages", a.pages,
                        "--seed", "3", "--out", str(src), "--quiet"], check=True, cwd=ROOT)
        tables = series.load_latest(str(src))
        res["source_rows"] = {t: tbl.num_rows for t, tbl in tables.items()}
        from datetime import datetime, timedelta, timezone

        for n in counts:
            store = tmp / f"s{n}"
            t0 = time.perf_counter()
            series.write_series(tables, str(store), n, "bench",
                                datetime.now(timezone.utc) - timedelta(minutes=n), 60.0)
            entry = {"write_s": time.perf_counter() - t0}
            log(f"{n} snapshots written in {entry['write_s']:.1f} s")
            log(f"{n} snapshots, before compaction:")
            entry["before"] = measure(store, a.repeat if n < 1000 else 1,  # up to a minute per command at 1,440
                                      skip=("snapshots", "trend, all") if n in skip_before else ())
            r = run([*memsnap_cmd(), "compact", str(store), "--include-today"])
            entry["compact"] = {"wall_s": r["wall_s"], "maxrss_kb": r["maxrss_kb"]}
            log(f"{n} snapshots compacted in {r['wall_s']:.1f} s; after:")
            entry["after"] = measure(store, a.repeat)
            res["stores"][str(n)] = entry
            shutil.rmtree(store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["loadavg_end"] = loadavg()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compact.json").write_text(json.dumps(res, indent=1))
    (out / "compact.md").write_text("\n".join(report(res)) + "\n")
    print("\n".join(report(res)))
    return 0


def report(res: dict) -> list[str]:
    base = res["stores"].get("1", {}).get("after", {}).get("sizes (latest)", {}).get("wall_s")
    lines = [f"Source snapshot: {res['procs']} processes, {res['source_rows'].get('pages', 0):,} page rows, "
             f"{res['source_rows'].get('frames', 0):,} frames (bench/synth.py), one a minute; median of "
             f"{res['repeat']} runs, each a fresh CLI process; load average {res['loadavg_start']} -> "
             f"{res['loadavg_end']}. Baseline: `sizes` on the 1-snapshot store, {base:.2f} s." if base else "",
             "",
             "| snapshots | state | files | MB | sizes (latest) | vs 1 snapshot | snapshots | trend, last 24h | "
             "trend, all | compact |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n, e in res["stores"].items():
        for state in ("before", "after"):
            m = e.get(state)
            if not m:
                continue

            def w(name):
                return f"{m[name]['wall_s']:.2f} s" if name in m else "-"
            ratio = f"{m['sizes (latest)']['wall_s'] / base:.2f}x" if base and "sizes (latest)" in m else "-"
            comp = f"{e['compact']['wall_s']:.1f} s, {e['compact']['maxrss_kb'] // 1024} MiB" if state == "after" else ""
            lines.append(f"| {int(n):,} | {state} compaction | {m['files']:,} | {m['bytes'] / 1e6:.1f} | "
                         f"{w('sizes (latest)')} | {ratio} | {w('snapshots')} | {w('trend, last 24h')} | "
                         f"{w('trend, all')} | {comp} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
