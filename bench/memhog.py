#!/usr/bin/env python3
"""Benchmark workload: N processes of about MIB MiB resident each, with known sharing.

The parent maps and writes the shared parts, then forks N-1 children; every one of
the N processes (parent included) then writes its own private parts.  Per process,
as fractions of ``--mib``:

* 30 %  ``cow``      private anonymous, written by the parent before fork (COW-shared by all N)
* 15 %  ``shanon``   MAP_SHARED anonymous (shmem), written before fork (shared by all N)
* 15 %  ``file``     MAP_SHARED mapping of a regular file, read entirely (page cache, shared by all N)
* 35 %  ``private``  private anonymous, written after fork (unique to each process)
*  5 %  ``thp``      private anonymous with MADV_HUGEPAGE, 2 MiB aligned, written after fork

So about N * 0.4 * MIB + 0.6 * MIB MiB of RAM in total.

It prints one JSON line ``{"pids": [...], "file": path, "mib": MIB}`` when every process
is set up, then waits until stdin is closed (or says ``quit``), kills its children, removes
the file and exits.  Children get PR_SET_PDEATHSIG so they never outlive the parent.

Not a recorder or analyzer component: used only by ``bench/record_bench.py``.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import mmap
import os
import signal
import sys
import tempfile

MiB = 1 << 20
PAGE = mmap.PAGESIZE


def _write(m: mmap.mmap, start: int, size: int, byte: int) -> None:
    chunk = bytes([byte]) * MiB
    off = start
    end = start + size
    while off < end:
        n = min(MiB, end - off)
        m[off:off + n] = chunk[:n]
        off += n


def _read(m: mmap.mmap, size: int) -> int:
    s = 0
    for off in range(0, size, PAGE):
        s += m[off]
    return s


def _mb(frac: float, mib: int) -> int:
    return max(2 * MiB, int(frac * mib) * MiB // (2 * MiB) * (2 * MiB))  # multiple of 2 MiB


def _pdeathsig() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def private_parts(mib: int) -> list[mmap.mmap]:
    """Written after fork: unique to the calling process."""
    size = _mb(0.35, mib)
    priv = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _write(priv, 0, size, 0x11 + os.getpid() % 200)
    thp_size = _mb(0.05, mib)
    big = mmap.mmap(-1, thp_size + 2 * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        big.madvise(mmap.MADV_HUGEPAGE)
    _write(big, 0, thp_size + 2 * MiB, 0x22)
    return [priv, big]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=20)
    ap.add_argument("--mib", type=int, default=200)
    ap.add_argument("--dir", default=None, help="directory of the mapped file (default: $TMPDIR)")
    args = ap.parse_args(argv)

    cow_size, sh_size, file_size = _mb(0.30, args.mib), _mb(0.15, args.mib), _mb(0.15, args.mib)
    cow = mmap.mmap(-1, cow_size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _write(cow, 0, cow_size, 0x01)
    shanon = mmap.mmap(-1, sh_size, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    _write(shanon, 0, sh_size, 0x02)
    fd, path = tempfile.mkstemp(prefix="memsnap-bench-", dir=args.dir)
    for _ in range(file_size // MiB):
        os.write(fd, os.urandom(MiB))
    fmap = mmap.mmap(fd, file_size, flags=mmap.MAP_SHARED)
    os.close(fd)
    _read(fmap, file_size)

    children = []
    ready_r, ready_w = os.pipe()
    for _ in range(args.procs - 1):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            _pdeathsig()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            # fork does not copy the page tables of shared mappings: fault them in here
            _read(shanon, sh_size)
            _read(fmap, file_size)
            keep = private_parts(args.mib)  # noqa: F841  (kept mapped until killed)
            os.write(ready_w, b"r")
            while True:
                signal.pause()
        children.append(pid)
    os.close(ready_w)
    keep = private_parts(args.mib)  # noqa: F841
    got = 0
    while got < len(children):
        b = os.read(ready_r, 64)
        if not b:
            break
        got += len(b)
    os.close(ready_r)
    try:
        print(json.dumps({"pids": [os.getpid(), *children], "file": path, "mib": args.mib}), flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
    finally:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os.unlink(path)


if __name__ == "__main__":
    main()
