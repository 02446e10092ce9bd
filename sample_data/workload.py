#!/usr/bin/env python3
"""A workload with known memory sharing, for tests, benchmarks and sample_data/.

The parent sets up, then forks ``--workers`` children that inherit everything:

* ``anon``    private anonymous memory, written by the parent before fork (COW-shared);
* ``zero``    private anonymous memory only read (maps the zero page);
* ``shanon``  MAP_SHARED anonymous memory (shmem), written;
* ``shfile``  a MAP_SHARED file mapping, read entirely and partly written;
* ``pvfile``  a MAP_PRIVATE file mapping, read, and partly written (COW anon copies);
* ``memfd``   a memfd mapped twice in the parent (before the fork), written through one view;
* ``thp``     anonymous memory with MADV_HUGEPAGE (2 MiB aligned), written;
* ``cow``     a MAP_PRIVATE mapping of a memfd named ``memsnap-cow``, written by the parent before the
              fork: anonymous copy-on-write pages that a named mapping lets diffs single out
              (``-M memsnap-cow``) from the interpreter's own copy-on-write noise;
* with ``--pageout-mb``, part of ``anon`` is pushed to swap before the fork (shared swap entries).

It prints one JSON line ``{"parent": pid, "workers": [...], "file": path, ...}``
when everything is set up, then reads commands from stdin:

* ``cow I MIB``   worker I writes the first MIB MiB of ``cow`` (breaks COW), replies ``ok``;
* ``quit``        everyone exits.
"""
from __future__ import annotations

import argparse
import json
import mmap
import os
import signal
import sys
import tempfile

MiB = 1 << 20
MADV_PAGEOUT = getattr(mmap, "MADV_PAGEOUT", 21)  # include/uapi/asm-generic/mman-common.h


def _touch_read(m: mmap.mmap, size: int) -> int:
    s = 0
    for off in range(0, size, 4096):
        s += m[off]
    return s


def _write(m: mmap.mmap, size: int, byte: int) -> None:
    page = bytes([byte]) * 4096
    for off in range(0, size, 4096):
        m[off:off + 4096] = page


def setup(args):
    regions = {}
    regions["anon"] = mmap.mmap(-1, args.anon_mb * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _write(regions["anon"], args.anon_mb * MiB, 1)
    regions["zero"] = mmap.mmap(-1, args.zero_mb * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    _touch_read(regions["zero"], args.zero_mb * MiB)
    regions["shanon"] = mmap.mmap(-1, args.shared_mb * MiB, flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
    _write(regions["shanon"], args.shared_mb * MiB, 2)

    fd, path = tempfile.mkstemp(prefix="memsnap-workload-", dir=args.dir)
    os.write(fd, os.urandom(args.file_mb * MiB))
    os.fsync(fd)
    regions["shfile"] = mmap.mmap(fd, args.file_mb * MiB, flags=mmap.MAP_SHARED)
    _touch_read(regions["shfile"], args.file_mb * MiB)
    _write(regions["shfile"], args.file_mb * MiB // 4, 3)
    regions["pvfile"] = mmap.mmap(fd, args.file_mb * MiB, flags=mmap.MAP_PRIVATE)
    _touch_read(regions["pvfile"], args.file_mb * MiB)
    _write(regions["pvfile"], args.file_mb * MiB // 2, 4)
    os.close(fd)

    mfd = os.memfd_create("memsnap-workload")
    os.ftruncate(mfd, args.memfd_mb * MiB)
    regions["memfd"] = mmap.mmap(mfd, args.memfd_mb * MiB, flags=mmap.MAP_SHARED)
    regions["memfd2"] = mmap.mmap(mfd, args.memfd_mb * MiB, flags=mmap.MAP_SHARED)
    _write(regions["memfd"], args.memfd_mb * MiB, 5)
    _touch_read(regions["memfd2"], args.memfd_mb * MiB)

    cfd = os.memfd_create("memsnap-cow")
    os.ftruncate(cfd, args.cow_mb * MiB)
    regions["cow"] = mmap.mmap(cfd, args.cow_mb * MiB, flags=mmap.MAP_PRIVATE)
    _write(regions["cow"], args.cow_mb * MiB, 8)
    os.close(cfd)

    if args.thp_mb:
        # over-allocate so a 2 MiB aligned part exists; the kernel then backs it with huge pages
        big = mmap.mmap(-1, (args.thp_mb + 2) * MiB, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if hasattr(mmap, "MADV_HUGEPAGE"):
            big.madvise(mmap.MADV_HUGEPAGE)
        _write(big, (args.thp_mb + 2) * MiB, 6)
        regions["thp"] = big
    return regions, path


def worker(regions, rfd, wfd):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rf = os.fdopen(rfd, "r")
    wf = os.fdopen(wfd, "w")
    for line in rf:
        parts = line.split()
        if not parts or parts[0] == "quit":
            break
        if parts[0] == "cow":
            _write(regions["cow"], int(parts[1]) * MiB, 7)
            wf.write("ok\n")
            wf.flush()
    os._exit(0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--anon-mb", type=int, default=16)
    ap.add_argument("--zero-mb", type=int, default=2)
    ap.add_argument("--shared-mb", type=int, default=8)
    ap.add_argument("--file-mb", type=int, default=8)
    ap.add_argument("--memfd-mb", type=int, default=4)
    ap.add_argument("--thp-mb", type=int, default=4)
    ap.add_argument("--cow-mb", type=int, default=8)
    ap.add_argument("--pageout-mb", type=int, default=0,
                    help="before forking, push the first N MiB of anon to swap (MADV_PAGEOUT), so parent and "
                         "workers share swap entries (needs swap enabled)")
    ap.add_argument("--dir", default=None, help="directory for the mapped file (default: $TMPDIR)")
    args = ap.parse_args(argv)

    regions, path = setup(args)
    if args.pageout_mb:
        regions["anon"].madvise(MADV_PAGEOUT, 0, args.pageout_mb * MiB)
    workers = []
    for _ in range(args.workers):
        cmd_r, cmd_w = os.pipe()
        rep_r, rep_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(rep_r)
            worker(regions, cmd_r, rep_w)
        os.close(cmd_r)
        os.close(rep_w)
        workers.append((pid, os.fdopen(cmd_w, "w"), os.fdopen(rep_r, "r")))
    print(json.dumps({"parent": os.getpid(), "workers": [w[0] for w in workers], "file": path,
                      "sizes_mb": {k: v for k, v in vars(args).items() if k.endswith("_mb")}}), flush=True)
    try:
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "quit":
                break
            if parts[0] == "cow":
                _, cw, rr = workers[int(parts[1])]
                cw.write(f"cow {parts[2]}\n")
                cw.flush()
                print(rr.readline().strip(), flush=True)
    finally:
        for pid, cw, _ in workers:
            try:
                cw.write("quit\n")
                cw.close()
            except OSError:
                pass
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        os.unlink(path)


if __name__ == "__main__":
    main()
