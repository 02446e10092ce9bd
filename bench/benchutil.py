"""Helpers shared by the bench/*_bench.py scripts (not part of the memsnap package; not named `common`, which
would shadow the `common` package for scripts run from bench/, whose directory comes first on sys.path)."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def med(xs):
    return statistics.median(xs) if xs else None


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def memsnap_cmd() -> list[str]:
    exe = Path(sys.executable).parent / "memsnap"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from cli import main; sys.argv[0] = 'memsnap'; main()"]


def child_env() -> dict:
    env = dict(os.environ)
    env.pop("MEMSNAP_STORE", None)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run(argv: list[str], *, cwd: str | None = None, env: dict | None = None, check: bool = True) -> dict:
    """Run a child: wall time, its own peak RSS (ru_maxrss from wait4, kB) and CPU seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=cwd, env=env if env is not None else child_env())
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        rc = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        res = {"wall_s": wall, "maxrss_kb": ru.ru_maxrss, "cpu_s": ru.ru_utime + ru.ru_stime,
               "user_s": ru.ru_utime, "sys_s": ru.ru_stime, "rc": rc,
               "stdout": out.read().decode(errors="replace"), "stderr": err.read().decode(errors="replace")}
    if check and rc != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {rc}:\n{res['stderr'][-3000:]}")
    return res


def du(path: str) -> int:
    total = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            try:
                total += os.lstat(os.path.join(dp, fn)).st_size
            except OSError:
                pass
    return total
