#!/usr/bin/env python3
"""Start-up: what a command costs before it does any work, against the interpreter and library floors.

    python bench/startup_bench.py [--repeat 10] [--store sample_data/store] [--procs 1000] [--base DIR] [--out bench/out]

Every row runs in a fresh process, interleaved (one round runs every row once), and reports the median of
``--repeat`` rounds after one warm-up round (which also writes the bytecode caches, as an installed package
has them; PYTHONDONTWRITEBYTECODE is cleared for the children).  Floors, measured in the same run: the bare
interpreter (``python -c pass``), ``import X`` for each library a command may load (typer, duckdb,
sqlalchemy, pyarrow), and what every analysis command pays before it reads a file: duckdb's engine as the
analyzer loads it (``analyzer/duck.py``) with a connection, alone and with typer.  Then the commands: ``memsnap --help`` (target, issue 15: at most 0.15 s), a command's
``--help``, ``snapshots`` and ``sizes`` on a small store, and an error on a store that does not exist; and
``sizes`` against ``smem -S`` on one synthetic capture of ``--procs`` processes (``bench/synth.py``, written as a
store and as the smem tree of the same numbers; issue 15's target: memsnap at least 10x faster, whole process
against whole process).  For each command, the libraries it loaded (from ``-X importtime``, the cumulative
microseconds of each top-level import).  Each row's ratio to ``python -c pass`` and, for the synthetic capture,
smem's time over memsnap's, all from the same run.  ``--base DIR`` (a copy of an earlier tree, e.g. from
``git archive``) adds each memsnap row run from that tree (``[base]``), interleaved in the same rounds.  Results: ``<out>/startup.json`` and ``<out>/startup.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

from benchutil import ROOT, child_env, loadavg, log, med, memsnap_cmd, run

TARGET_HELP_S = 0.15
LIBS = ("typer", "duckdb", "_duckdb", "sqlalchemy", "pyarrow", "numpy", "duckdb_engine", "pydantic", "matplotlib")


def rows(store: str, synth: tuple[str, str] | None = None) -> list[tuple[str, list[str]]]:
    py = [sys.executable, "-c"]
    ms = memsnap_cmd()
    smem = shutil.which("smem")
    extra = [("memsnap sizes SYNTH", ms + ["sizes", synth[0]])] + (
        [("smem -S SYNTH", [smem, "-S", synth[1]])] if smem else []) if synth else []
    return [
        ("python -c pass", py + ["pass"]),
        *[(f"python -c 'import {m}'", py + [f"import {m}"]) for m in ("typer", "duckdb", "sqlalchemy", "pyarrow")],
        # the floors of `sizes`: duckdb's engine as the analyzer loads it (analyzer/duck.py), with a connection,
        # and with typer too: what any analysis command pays before it reads a file
        ("python -c 'duckdb engine + connect'", py + ["from analyzer.duck import engine; engine.connect(':memory:')"]),
        ("python -c 'typer + duckdb engine + connect'",
         py + ["import typer; from analyzer.duck import engine; engine.connect(':memory:')"]),
        ("memsnap --help", ms + ["--help"]),
        ("memsnap sizes --help", ms + ["sizes", "--help"]),
        ("memsnap snapshots (missing store)", ms + ["snapshots", "/nonexistent-memsnap-store"]),
        ("memsnap snapshots STORE", ms + ["snapshots", store]),
        ("memsnap sizes STORE", ms + ["sizes", store]),
        *extra,
    ]


def imports(argv: list[str], env: dict) -> dict[str, float]:
    """Cumulative seconds of each library of LIBS the command imported (top-level entries of -X importtime)."""
    res = run(argv[:1] + ["-X", "importtime"] + argv[1:] if argv[0] == sys.executable else
              [sys.executable, "-X", "importtime", "-c", "import sys; from cli import main; sys.argv[0] = 'memsnap'; "
               "main()"] + argv[1:], env=env, check=False, cwd="/")  # not the cwd: `-c` puts it before PYTHONPATH
    out: dict[str, float] = {}
    for line in res["stderr"].splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\s*)(\S+)$", line)
        if m and m.group(3) in LIBS:
            out[m.group(3)] = max(out.get(m.group(3), 0.0), int(m.group(1)) / 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--store", default=str(ROOT / "sample_data" / "store"))
    ap.add_argument("--out", default=str(ROOT / "bench" / "out"))
    ap.add_argument("--procs", type=int, default=1000, help="processes of the synthetic capture for the smem row "
                    "(0: none)")
    ap.add_argument("--base", default=None, help="an earlier tree whose memsnap rows run beside this one's")
    ap.add_argument("--pages", default="1M", help="pages of the synthetic capture (bench/synth.py --pages)")
    a = ap.parse_args()
    env = child_env()
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    tmp = tempfile.mkdtemp(prefix="memsnap-startup-")
    try:
        synth = None
        if a.procs:
            synth = (os.path.join(tmp, "store"), os.path.join(tmp, "smem"))
            run([sys.executable, str(ROOT / "bench" / "synth.py"), "--procs", str(a.procs), "--pages", a.pages,
                 "--seed", "7", "--out", synth[0], "--smem-dir", synth[1], "--quiet"], env=env)
        table = [(n, argv, env) for n, argv in rows(a.store, synth)]
        if a.base:  # the same memsnap rows from an earlier tree, in the same rounds
            benv = dict(env, PYTHONPATH=os.path.abspath(a.base))
            table += [(n + " [base]", argv, benv) for n, argv, _ in table if n.startswith("memsnap")]
        measure(a, table)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(a, table: list) -> None:
    load0 = loadavg()
    times: dict[str, list[float]] = {name: [] for name, _, _ in table}
    for rnd in range(a.repeat + 1):
        for name, argv, env in table:
            r = run(argv, env=env, check="(missing store)" not in name)
            if rnd:
                times[name].append(r["wall_s"])
        log(f"round {rnd}/{a.repeat} done")
    libs = {name: imports(argv, env) for name, argv, env in table if name.startswith("memsnap")}
    res = {"repeat": a.repeat, "loadavg_start": load0, "loadavg_end": loadavg(), "store": a.store,
           "median_s": {n: med(t) for n, t in times.items()}, "min_s": {n: min(t) for n, t in times.items()},
           "imports_s": libs, "target_help_s": TARGET_HELP_S, "synth_procs": a.procs, "synth_pages": a.pages}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "startup.json").write_text(json.dumps(res, indent=1))
    floor = res["median_s"]["python -c pass"]
    md = [f"Medians of {a.repeat} interleaved rounds, each command a fresh process; load average {load0} at start, "
          f"{res['loadavg_end']} at the end. Store: `{Path(a.store).name}`.", "",
          "| command | median s | min s | over the bare interpreter s | × `python -c pass` | "
          "libraries it imported (cumulative import s) |",
          "|---|---:|---:|---:|---:|---|"]
    for name, _, _ in table:
        m = res["median_s"][name]
        lib = ", ".join(f"{k} {v:.2f}" for k, v in sorted(libs.get(name, {}).items(), key=lambda kv: -kv[1]))
        md.append(f"| `{name}` | {m:.3f} | {res['min_s'][name]:.3f} | {m - floor:+.3f} | {m / floor:.1f} | "
                  f"{lib or '-'} |")
    h = res["median_s"]["memsnap --help"]
    md += ["", f"`memsnap --help`: **{h:.3f} s**, target ≤ {TARGET_HELP_S} s: {'met' if h <= TARGET_HELP_S else 'NOT met'}."]
    if "smem -S SYNTH" in res["median_s"]:
        sm, ms = res["median_s"]["smem -S SYNTH"], res["median_s"]["memsnap sizes SYNTH"]
        res["smem_over_memsnap"] = sm / ms
        (out / "startup.json").write_text(json.dumps(res, indent=1))
        md += [f"`memsnap sizes` against `smem -S` on the same synthetic capture ({a.procs} processes, "
               f"{a.pages} pages): smem {sm:.3f} s / memsnap {ms:.3f} s = **{sm / ms:.1f}×** (target ≥ 10×: "
               f"{'met' if sm / ms >= 10 else 'NOT met'})."]
        fl = res["median_s"]["python -c 'typer + duckdb engine + connect'"]
        res["smem_over_floor"] = sm / fl
        (out / "startup.json").write_text(json.dumps(res, indent=1))
        md += [f"Its floor, the interpreter with typer, duckdb's engine and a connection (no file read): {fl:.3f} s, "
               f"so at most **{sm / fl:.1f}×** smem for any command built on them; memsnap's work beyond it: "
               f"{ms - fl:.3f} s."]
    (out / "startup.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
