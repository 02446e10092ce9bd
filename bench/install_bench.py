#!/usr/bin/env python3
"""Install size, as a bench/run.py benchmark: the plain install (the recorder), the [analyze] install and the
single-file recorder, measured with the functions of ``bench/install_size.py``.

    python bench/install_bench.py [--out bench/out] [--quick]

Each install is a fresh venv with memsnap installed from this tree, non-editable, as ``pip install memsnap``
and ``pip install 'memsnap[analyze]'`` would (pip's cache keeps reruns fast); sizes are ``du`` of the venv's
site-packages and of the whole venv.  The zipapp is ``make recorder-pyz``'s file, plus what it unpacks to
$SHIV_ROOT on its first run.  About 5 minutes, most of it pip.  ``--quick`` is accepted for bench/run.py and
does the same work (there is no smaller install to measure).

Results: ``<out>/install.json`` (every figure) and ``<out>/install.md`` (the "Install size" section of
BENCHMARKS.md).  ``python bench/install_size.py`` (``make bench-install``) prints the table alone.
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import install_size as inst  # bench/install_size.py (this script's directory is first on sys.path)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

INSTALLS = (("recorder (plain)", "", "pip install memsnap"),
            ("full", "analyze", "pip install 'memsnap[analyze]'"))


def _commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                               check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + (" + uncommitted changes" if dirty else "")


def measure() -> dict:
    """What install_size.main() measures, as a dict."""
    t0 = time.monotonic()
    started = datetime.now(timezone.utc)
    rows = []
    with tempfile.TemporaryDirectory(prefix="memsnap-install-") as tmp:
        tmp = Path(tmp)
        for name, extras, command in INSTALLS:
            inst.log(f"building the {name} install ...")
            t = time.monotonic()
            venv = inst.make_venv(tmp / (extras or "plain"), extras)
            python = venv / "bin" / "python"
            dists = inst.run([python, "-m", "pip", "list", "--format", "freeze"]).stdout.split()
            site = inst.site_packages(venv)
            packages = inst.largest(site, n=10 ** 6)  # every package, largest first
            rows.append(dict(name=name, command=command, extras=extras, site_mib=inst.du_mib(site),
                             venv_mib=inst.du_mib(venv), tooling_mib=inst.tooling_mib(site),
                             largest=packages[:4], packages_mib=dict(packages), dists=len(dists),
                             distributions=dists, seconds=time.monotonic() - t,
                             analyzer_importable=inst.importable(python, inst.ANALYZER_LIBS)))
            inst.log(f"   site-packages {rows[-1]['site_mib']:.0f} MiB, {len(dists)} distributions, "
                     f"{rows[-1]['seconds']:.0f} s")
        inst.log("building the zipapp (make recorder-pyz) ...")
        t = time.monotonic()
        pyz = inst.build_zipapp()
        zip_s = time.monotonic() - t
        shiv_root = tmp / "shiv"
        inst.run(["python3", pyz, "--help"], env=inst.clean_env(SHIV_ROOT=str(shiv_root)))
        zipapp = dict(command="make recorder-pyz", file_mib=pyz.stat().st_size / 2 ** 20,
                      unpacked_mib=inst.du_mib(shiv_root), seconds=zip_s)
        inst.log(f"   {zipapp['file_mib']:.0f} MiB file, {zipapp['unpacked_mib']:.0f} MiB unpacked, {zip_s:.0f} s")
    lean, full = rows
    ratios = dict(site=lean["site_mib"] / full["site_mib"],
                  site_without_tooling=(lean["site_mib"] - lean["tooling_mib"])
                  / (full["site_mib"] - full["tooling_mib"]),
                  zipapp_file=zipapp["file_mib"] / full["site_mib"],
                  zipapp_unpacked=zipapp["unpacked_mib"] / full["site_mib"])
    return dict(date=f"{started:%Y-%m-%d %H:%M UTC}", commit=_commit(),
                python=f"{platform.python_version()}, {platform.machine()}", installs=rows, zipapp=zipapp,
                ratios=ratios, total_s=time.monotonic() - t0)


def markdown(r: dict) -> str:
    lean, full = r["installs"]
    z, q = r["zipapp"], r["ratios"]
    L = ["## Install size (`bench/install_bench.py`)", "",
         f"Measured {r['date']} on the working tree at {r['commit'] or 'an unknown commit'} with "
         "`python bench/install_bench.py` (the functions of `bench/install_size.py`; `make bench-install` prints "
         f"the table alone). Each install is a fresh `python -m venv` (Python {r['python']}) with this tree "
         "installed non-editable; sizes are `du` (MiB).", "",
         "| install | command | site-packages (MiB) | of which pip + setuptools | whole venv (MiB) | distributions "
         "| largest (MiB) | analyzer libraries importable |",
         "|---|---|---:|---:|---:|---:|---|---|"]
    for x in (lean, full):
        big = ", ".join(f"{k} {v:.0f}" for k, v in x["largest"])
        L.append(f"| {x['name']} | `{x['command']}` | {x['site_mib']:.0f} | {x['tooling_mib']:.0f} | "
                 f"{x['venv_mib']:.0f} | {x['dists']} | {big} | {', '.join(x['analyzer_importable']) or 'none'} |")
    L.append(f"| zipapp | `{z['command']}` | {z['file_mib']:.0f} (the file); {z['unpacked_mib']:.0f} unpacked to "
             "$SHIV_ROOT on first run | 0 | | | | none |")
    L += ["", f"Recorder / full: site-packages **{q['site']:.2f}** ({lean['site_mib']:.0f} / {full['site_mib']:.0f} "
              f"MiB); without the venv's own pip and setuptools {q['site_without_tooling']:.2f}; the zipapp file "
              f"{q['zipapp_file']:.2f}; the zipapp unpacked {q['zipapp_unpacked']:.2f}.", ""]
    lean_pkgs, full_pkgs = lean["packages_mib"], full["packages_mib"]
    # what the recorder needs (from the plain install) and what the extra adds (the full install's excess)
    floor = [(k, lean_pkgs[k]) for k in ("pyarrow", "numpy") if k in lean_pkgs]
    floor_mib = sum(v for _, v in floor)
    added = sorted(((k, v - lean_pkgs.get(k, 0)) for k, v in full_pkgs.items() if v - lean_pkgs.get(k, 0) >= 0.5),
                   key=lambda kv: -kv[1])
    extra = full["site_mib"] - lean["site_mib"]
    why = {"pyarrow": "Arrow tables and Parquet", "numpy": "the pagemap bit work"}
    under = q["site"] < 0.5
    text = ("The plain install is under half of the full one. " if under
            else "The plain install is **not** under half of the full one. ")
    if len(floor) > 1:
        text += (f"Of the plain install, {' and '.join(f'{k} ({v:.0f} MiB)' for k, v in floor)} together are "
                 f"{floor_mib:.0f} MiB, {floor_mib / full['site_mib']:.0%} of the full install, and the recorder "
                 f"imports both ({'; '.join(f'{k}: {why[k]}' for k, _ in floor)}). ")
    elif floor:
        (k, v), = floor
        text += (f"Of the plain install, {k} is {v:.0f} MiB, {v / full['site_mib']:.0%} of the full install, and "
                 f"the recorder imports it ({why[k]}). ")
    text += (f"The `[analyze]` extra adds the other {extra:.0f} MiB ("
             + ", ".join(f"{k} {v:.0f}" for k, v in added[:6]) + (", ..." if len(added) > 6 else "") + ")")
    if not under and floor:
        text += ("; anything below that needs a smaller "
                 + " or ".join({"pyarrow": "pyarrow", "numpy": "a recorder without numpy"}[k] for k, _ in floor)
                 + ", not packaging")
    text += (f". The single file is the small way to ship the recorder: {z['file_mib']:.0f} MiB to copy, "
             f"{z['unpacked_mib']:.0f} MiB unpacked (no pip or setuptools). Building the three took "
             f"{lean['seconds'] + full['seconds'] + z['seconds']:.0f} s here, most of it pip.")
    L.append(text)
    return "\n".join(L) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(HERE / "out"), help="directory for install.json and install.md")
    ap.add_argument("--quick", action="store_true", help="accepted for bench/run.py; the same work")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    r = measure()
    r["args"] = {"quick": a.quick}
    (out / "install.json").write_text(json.dumps(r, indent=1) + "\n")
    (out / "install.md").write_text(markdown(r))
    inst.log(f"wrote {out / 'install.json'}, {out / 'install.md'} in {r['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
