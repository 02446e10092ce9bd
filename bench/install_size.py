"""Install size: the plain install (the recorder), the [analyze] install and the single-file recorder.

    python bench/install_size.py            # prints a Markdown table (progress on stderr)

Each install is a fresh venv with memsnap installed from this tree, non-editable, as `pip install memsnap`
and `pip install 'memsnap[analyze]'` would; pip's cache keeps reruns fast.  Sizes are `du` of the venv's
site-packages (what the packages take) and of the whole venv; the zipapp is `make recorder-pyz`'s file,
plus what it unpacks to $SHIV_ROOT on its first run.

tests/test_install.py builds its installs with the functions here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYZ = ROOT / "dist" / "memsnap-recorder.pyz"
#: what only the analyzer needs (import names), and what they pull in (pillow, fonttools)
ANALYZER_LIBS = ("duckdb", "duckdb_engine", "sqlalchemy", "matplotlib", "PIL", "fontTools")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def clean_env(**extra) -> dict:
    """The environment a user's shell would give: no PYTHONPATH into this tree, no active venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MEMSNAP_STORE")}
    env.update(extra)
    return env


def run(cmd, **kw) -> subprocess.CompletedProcess:
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=kw.pop("env", clean_env()),
                        **kw)
    if cp.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {cp.returncode}\n{cp.stdout}\n{cp.stderr}")
    return cp


def make_venv(venv: Path, extras: str = "") -> Path:
    """A fresh venv at `venv` with memsnap from this tree installed (non-editable), with the given extras."""
    run([sys.executable, "-m", "venv", venv])
    # setuptools puts whatever an earlier build left in build/lib into the wheel (deleted modules too)
    shutil.rmtree(ROOT / "build", ignore_errors=True)
    spec = f"{ROOT}[{extras}]" if extras else str(ROOT)
    try:
        run([venv / "bin" / "python", "-m", "pip", "install", "-q", spec], cwd=venv)
    finally:
        shutil.rmtree(ROOT / "build", ignore_errors=True)  # pip builds in the tree: leave none behind
    return venv


def site_packages(venv: Path) -> Path:
    return next((Path(venv) / "lib").glob("python3*/site-packages"))


def importable(python: Path, modules) -> list[str]:
    """Which of `modules` the interpreter `python` can import (found on its path, not imported)."""
    code = ("import importlib.util, sys; "
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None))")
    return run([python, "-c", code, *modules], cwd=Path(python).parent).stdout.split()


def build_zipapp() -> Path:
    """`make recorder-pyz`: dist/memsnap-recorder.pyz."""
    try:
        run(["make", "-C", ROOT, "recorder-pyz"])
    finally:
        shutil.rmtree(ROOT / "build", ignore_errors=True)
    return PYZ


def du_mib(*paths: Path) -> float:
    """Disk usage of the paths together, MiB."""
    if not paths:
        return 0.0
    return int(run(["du", "-skc", *paths]).stdout.splitlines()[-1].split()[0]) / 1024


#: what `python -m venv` puts in every venv, whatever is installed
VENV_TOOLING = ("pip", "setuptools", "pkg_resources", "_distutils_hack", "distutils-precedence.pth")


def largest(site: Path, n: int = 4) -> list[tuple[str, float]]:
    """The n largest packages in site-packages, MiB: numpy.libs, _duckdb.cpython-*.so and the dist-info count
    with the package they belong to."""
    sizes: dict[str, float] = {}
    for line in run(["du", "-sk", *sorted(site.iterdir())]).stdout.splitlines():
        kib, path = line.split("\t", 1)
        name = Path(path).name.split(".")[0].split("-")[0].lstrip("_")
        sizes[name] = sizes.get(name, 0) + int(kib) / 1024
    return sorted(sizes.items(), key=lambda kv: -kv[1])[:n]


def tooling_mib(site: Path) -> float:
    return du_mib(*(p for p in site.iterdir() if p.name.split("-")[0] in VENV_TOOLING))


def main() -> None:
    t0 = time.monotonic()
    rows = []
    with tempfile.TemporaryDirectory(prefix="memsnap-install-") as tmp:
        tmp = Path(tmp)
        for name, extras, command in (("recorder (plain)", "", "pip install memsnap"),
                                      ("full", "analyze", "pip install 'memsnap[analyze]'")):
            log(f"building the {name} install ...")
            t = time.monotonic()
            venv = make_venv(tmp / (extras or "plain"), extras)
            dists = run([venv / "bin" / "python", "-m", "pip", "list", "--format", "freeze"]).stdout.split()
            site = site_packages(venv)
            rows.append(dict(name=name, command=command, site=du_mib(site), venv=du_mib(venv),
                             tooling=tooling_mib(site), largest=largest(site), dists=len(dists),
                             seconds=time.monotonic() - t,
                             analyzer=importable(venv / "bin" / "python", ANALYZER_LIBS)))
        log("building the zipapp (make recorder-pyz) ...")
        t = time.monotonic()
        pyz = build_zipapp()
        seconds = time.monotonic() - t
        shiv_root = tmp / "shiv"
        run(["python3", pyz, "--help"], env=clean_env(SHIV_ROOT=str(shiv_root)))
        pyz_mib, unpacked = pyz.stat().st_size / 2 ** 20, du_mib(shiv_root)

    lean, full = rows
    print("| install | command | site-packages (MiB) | of which pip + setuptools | whole venv (MiB) | "
          "distributions | largest (MiB) | analyzer libraries importable |")
    print("|---|---|---:|---:|---:|---:|---|---|")
    for r in rows:
        big = ", ".join(f"{k} {v:.0f}" for k, v in r["largest"])
        print(f"| {r['name']} | `{r['command']}` | {r['site']:.0f} | {r['tooling']:.0f} | {r['venv']:.0f} | "
              f"{r['dists']} | {big} | {', '.join(r['analyzer']) or 'none'} |")
    print(f"| zipapp | `make recorder-pyz` | {pyz_mib:.0f} (the file); {unpacked:.0f} unpacked to $SHIV_ROOT on "
          f"first run | 0 | | | | none |")
    print()
    print(f"recorder / full: site-packages {lean['site'] / full['site']:.2f}; without pip + setuptools "
          f"{(lean['site'] - lean['tooling']) / (full['site'] - full['tooling']):.2f}; zipapp file "
          f"{pyz_mib / full['site']:.2f}; zipapp unpacked {unpacked / full['site']:.2f}")
    log(f"(took {time.monotonic() - t0:.0f} s: plain {lean['seconds']:.0f} s, full {full['seconds']:.0f} s, "
        f"zipapp {seconds:.0f} s)")


if __name__ == "__main__":
    main()
