#!/usr/bin/env python3
"""Generator of large, realistic, self-consistent synthetic memsnap stores (and the same capture for smem).

    python bench/synth.py --procs 1000 --pages 5M --seed 1 --out /tmp/store [--smem-dir /tmp/smemcap]
                          [--page-order pid|vpn|entry] [--kthreads 20] [--host synth] [--quiet]

About 7-10 s and 300-400 MiB for 5M pages on 2 cores; 50M pages (5,000 processes) about 110 s and
550-770 MiB (the per-frame reference counts are the part that grows: about 25 B per distinct frame).

The snapshot is written through ``recorder.store.SnapshotWriter`` with the real schema
(``schema.arrow_schema``), so it is a valid store that ``memsnap sizes`` and the tests can open.

What the synthetic machine looks like
-------------------------------------
* **Programs** (python3.11, postgres, nginx, java, ...) are executables, each linking ld.so, libc and a
  Zipf-popular subset of a pool of about 300 shared libraries.  Every ELF object is mapped like the
  dynamic loader does it: ``r--p`` header, ``r-xp`` text, ``r--p`` rodata, ``rw-p`` data (a private file
  mapping: pages written are anonymous copies, the others still map the page-cache frame), and an
  anonymous ``rw-p`` bss.  The page cache holds a "hot" subset of each file; every process has its own
  random subset of those pages mapped, so file frames are shared across services with mapcounts from 1
  to ~N.
* **Services** run one program as a pool of forked workers (60 % singletons, 25 % 2-8 workers, 15 %
  8-32).  Members of one service share the address layout (fork), the copy-on-write anonymous memory the
  parent wrote before forking (``[heap]``, data and bss) minus a per-worker fraction broken by writes
  (private copies), and, for some services, a MAP_SHARED shmem segment (``/dev/shm/...``, postgres
  style).  A few system-wide shmem segments are mapped by random services.
* **Private memory**: malloc arenas (``rw-p`` + ``---p`` reservation), thread stacks (with guard
  pages), the main ``[stack]``; a few pages of it read-only faulted (the zero page, which smaps does not
  count) and, for some services, a fraction swapped out (private swap entries; COW-shared anonymous
  pages swapped before the fork keep one swap entry shared by the members that did not break them).
* ``[vdso]`` (2 pages shared by everyone), ``[vvar]`` (VmFlags ``pf io``, no pages), ``[vsyscall]``.
* Some kernel threads (``kernel_thread`` rows without memory; empty cmdline in the smem tree).

Consistency (what makes it a test oracle)
-----------------------------------------
* ``frames.mapcount`` = number of ``pages`` rows referencing the PFN; ``frames.flags``: ANON (12) +
  SWAPBACKED (14) for anonymous pages (+ bit 34 anon-exclusive when mapcount is 1), SWAPBACKED without
  ANON for shmem, neither for file pages, ZERO_PAGE (24) for the zero page (mapcount 0, as kpagecount
  reports it), RESERVED (32) for vdso.
* ``pages.entry``: bit 63 + PFN (bits 0-54) for present pages, bit 61 for file and shmem pages, bit 56
  when the frame's mapcount is 1 (not for the zero page); swapped pages: bit 62, type 0, offset << 5.
* ``mappings``: every smaps field derived from those pages with the kernel's rules (fs/proc/task_mmu.c):
  Rss = present pages except the zero page; PSS per page ``(4096 << 12) // mapcount`` (or ``4096 << 12``
  when mapcount < 2), summed per mapping and shifted right by 22 (floored per mapping); private means
  mapcount <= 1; anonymous and shmem pages are dirty, file pages clean; Swap = swap entries, SwapPss =
  ``(4096 << 12) // refs`` per entry (refs = rows with that swap entry).
* ``processes.rollup_*``: the same sums over the whole process, floored once (smaps_rollup), plus
  Pss_Anon / Pss_File / Pss_Shmem; status fields (VmRSS, RssAnon, RssFile, RssShmem, VmSwap, VmSize...).
* The smem tree (``--smem-dir``) holds ``proc/<pid>/smaps`` with exactly the ``mappings`` numbers,
  ``cmdline``, ``stat``, ``status``, plus ``proc/meminfo`` and ``proc/version``; ``proc/<pid>`` is
  chowned to the process's uid (smem takes the user from the directory owner) when run as root.

How it stays fast and memory-bounded
------------------------------------
Two passes over the processes with the same per-process random streams: pass 1 only counts the
references to each frame and swap entry (``np.bincount`` over a dense frame-id space, in batches);
pass 2 regenerates the same pages, derives entries and smaps numbers, and streams ``pages`` and
``mappings`` to the writer in chunks.  Memory is O(distinct frames) (one int32 per frame) plus one
chunk.  Frame ids become PFNs through a permutation of 64-frame chunks spread over physical memory.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from recorder.store import SnapshotWriter  # noqa: E402
from schema import SCHEMA_VERSION, TABLES  # noqa: E402

PAGE = 4096
FP_ONE = PAGE << 12  # one page in the kernel's PSS fixed point (PSS_SHIFT = 12)
PSS_SHIFT_KB = 22  # >> 12 (fixed point) >> 10 (bytes -> kB)

PM_PRESENT = np.uint64(1 << 63)
PM_SWAP = np.uint64(1 << 62)
PM_FILE = np.uint64(1 << 61)
PM_EXCL = np.uint64(1 << 56)

# kpageflags bits (include/uapi/linux/kernel-page-flags.h)
KPF_REFERENCED, KPF_UPTODATE, KPF_DIRTY, KPF_LRU, KPF_ACTIVE, KPF_MMAP = 2, 3, 4, 5, 6, 11
KPF_ANON, KPF_SWAPBACKED, KPF_ZERO_PAGE, KPF_RESERVED, KPF_MAPPEDTODISK = 12, 14, 24, 32, 34
KPF_ANON_EXCLUSIVE = 34  # aliases MAPPEDTODISK on anonymous pages

# page kinds (per page row) and what they mean for smaps
K_ANON, K_FILE, K_SHMEM, K_VDSO = 0, 1, 2, 3
FLAGS_BY_KIND = {
    K_ANON: (1 << KPF_ANON) | (1 << KPF_SWAPBACKED) | (1 << KPF_MMAP) | (1 << KPF_LRU) | (1 << KPF_UPTODATE)
            | (1 << KPF_ACTIVE),
    K_FILE: (1 << KPF_MMAP) | (1 << KPF_LRU) | (1 << KPF_UPTODATE) | (1 << KPF_REFERENCED)
            | (1 << KPF_MAPPEDTODISK),
    K_SHMEM: (1 << KPF_SWAPBACKED) | (1 << KPF_MMAP) | (1 << KPF_LRU) | (1 << KPF_UPTODATE) | (1 << KPF_DIRTY),
    K_VDSO: (1 << KPF_RESERVED) | (1 << KPF_MMAP),
}
ZERO_FLAGS = (1 << KPF_RESERVED) | (1 << KPF_ZERO_PAGE)
ZERO_PFN = 0x2A5B  # below PFN_BASE, never a frame id
PFN_BASE = 0x40000  # frame ids start at 1 GiB of physical memory
PFN_CHUNK = 64  # frame ids are contiguous in runs of 64 ...
PFN_CHUNK_STRIDE = 96  # ... spread over physical memory with holes, in a random order

# page states within a generated process
S_PRESENT, S_SWAP, S_ZERO = 0, 1, 2

# mapping kinds (layout)
M_FILE, M_COW, M_PRIV, M_SHM, M_NONE, M_VDSO = range(6)

VMFLAGS = {
    "r--p": "rd mr mw me", "r-xp": "rd ex mr mw me", "rw-p": "rd wr mr mw me ac", "---p": "mr mw me",
    "rw-s": "rd wr sh mr mw me ms", "stack": "rd wr mr mw me gd ac", "vvar": "rd mr pf io de dd",
    "vdso": "rd ex mr mw me de", "vsyscall": "ex",
}

REAL_LIBS = [
    "libc.so.6", "ld-linux-x86-64.so.2", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libz.so.1.2.13",
    "libssl.so.3", "libcrypto.so.3", "libstdc++.so.6.0.30", "libgcc_s.so.1", "libsystemd.so.0.35.0",
    "libselinux.so.1", "libpcre2-8.so.0.11.2", "liblzma.so.5.4.1", "libzstd.so.1.5.4", "libcap.so.2.66",
    "libgcrypt.so.20.4.1", "libgpg-error.so.0.33.1", "libuuid.so.1.3.0", "libblkid.so.1.1.0",
    "libmount.so.1.1.0", "libffi.so.8.1.2", "libexpat.so.1.8.10", "libsqlite3.so.0.8.6", "libxml2.so.2.9.14",
    "libicuuc.so.72.1", "libicudata.so.72.1", "libicui18n.so.72.1", "libbz2.so.1.0.4", "libresolv.so.2",
    "libnss_files.so.2", "libcurl.so.4.8.0", "libnghttp2.so.14.24.1", "libidn2.so.0.3.8", "libkrb5.so.3.3",
    "libgssapi_krb5.so.2.2", "libk5crypto.so.3.1", "libcom_err.so.2.1", "libkeyutils.so.1.10",
    "libpq.so.5.15", "libldap-2.5.so.0.1.11", "liblber-2.5.so.0.1.11", "libsasl2.so.2.0.25", "libjemalloc.so.2",
    "libtinfo.so.6.4", "libreadline.so.8.2", "libncursesw.so.6.4", "libuv.so.1.0.0", "libbrotlienc.so.1.0.9",
    "libbrotlidec.so.1.0.9", "libbrotlicommon.so.1.0.9", "libpython3.11.so.1.0", "libLLVM-15.so.1",
    "libjvm.so", "libnode.so.108", "libprotobuf.so.32.0.12", "libgrpc.so.29.0.0", "libaudit.so.1.0.0",
    "libpam.so.0.85.1", "libwrap.so.0.7.6", "libacl.so.1.1.2301", "libattr.so.1.1.2501", "libkmod.so.2.4.0",
    "libip4tc.so.2.0.0", "libseccomp.so.2.5.4", "libargon2.so.1", "libcryptsetup.so.12.9.0",
    "libdevmapper.so.1.02.1", "libjson-c.so.5.2.0", "liblz4.so.1.9.4", "libevent-2.1.so.7.0.1",
]
PROGRAMS = [
    # name, exe path, base text pages, cmdline template, threads, user
    ("python3.11", "/usr/bin/python3.11", 700, "/usr/bin/python3.11 -m {svc} --workers {k}", 4, "www-data"),
    ("postgres", "/usr/lib/postgresql/15/bin/postgres", 2100, "postgres: 15/main: {svc} worker", 1, "postgres"),
    ("nginx", "/usr/sbin/nginx", 320, "nginx: worker process", 1, "www-data"),
    ("java", "/usr/lib/jvm/java-17-openjdk-amd64/bin/java", 3, "/usr/bin/java -Xmx2g -jar /opt/{svc}/app.jar", 40,
     "app"),
    ("node", "/usr/bin/node", 9000, "node /srv/{svc}/server.js", 11, "app"),
    ("sshd", "/usr/sbin/sshd", 230, "sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups", 1, "root"),
    ("systemd", "/usr/lib/systemd/systemd", 30, "/lib/systemd/systemd --user", 1, "root"),
    ("bash", "/usr/bin/bash", 230, "-bash", 1, "dev"),
    ("redis-server", "/usr/bin/redis-server", 420, "/usr/bin/redis-server 127.0.0.1:6379", 5, "redis"),
    ("php-fpm8.2", "/usr/sbin/php-fpm8.2", 1300, "php-fpm: pool {svc}", 1, "www-data"),
    ("gunicorn", "/usr/bin/python3.11", 700, "/usr/bin/python3.11 /usr/bin/gunicorn {svc}.wsgi -w {k}", 2,
     "www-data"),
    ("celery", "/usr/bin/python3.11", 700, "/usr/bin/python3.11 -m celery -A {svc} worker -c {k}", 3, "app"),
    ("containerd-shim", "/usr/bin/containerd-shim-runc-v2", 1800, "/usr/bin/containerd-shim-runc-v2 -namespace "
     "moby -id {svc}", 10, "root"),
    ("dockerd", "/usr/sbin/dockerd", 9000, "/usr/sbin/dockerd -H fd://", 30, "root"),
    ("rsyslogd", "/usr/sbin/rsyslogd", 180, "/usr/sbin/rsyslogd -n -iNONE", 4, "syslog"),
    ("cron", "/usr/sbin/cron", 12, "/usr/sbin/cron -f", 1, "root"),
    ("memcached", "/usr/bin/memcached", 60, "/usr/bin/memcached -m 64 -p 11211", 10, "memcache"),
    ("haproxy", "/usr/sbin/haproxy", 900, "/usr/sbin/haproxy -Ws -f /etc/haproxy/haproxy.cfg", 2, "haproxy"),
    ("envoy", "/usr/local/bin/envoy", 9000, "/usr/local/bin/envoy -c /etc/envoy/{svc}.yaml", 16, "envoy"),
    ("prometheus-node-exporter", "/usr/bin/prometheus-node-exporter", 2600, "/usr/bin/prometheus-node-exporter",
     6, "prometheus"),
]
USERS = {"root": 0, "www-data": 33, "postgres": 107, "app": 1001, "dev": 1000, "redis": 110, "syslog": 104,
         "memcache": 111, "haproxy": 112, "envoy": 998, "prometheus": 113}
WORDS = ["api", "auth", "billing", "cart", "search", "orders", "media", "feed", "mail", "queue", "geo", "inv",
         "ledger", "notify", "pay", "report", "sync", "user", "web", "admin", "stats", "shop", "chat", "img"]


def parse_count(s: str) -> int:
    s = s.strip().upper()
    mult = {"K": 10 ** 3, "M": 10 ** 6, "G": 10 ** 9}.get(s[-1:], 1)
    return int(float(s[:-1] if s[-1:] in "KMG" else s) * mult)


# ------------------------------------------------------------------------------------------------ plan

@dataclass
class FileObj:
    """An ELF object in the page cache: header, text, rodata, data pages (file page index space)."""
    path: str
    inode: int
    dev: str
    hdr: int
    text: int
    rodata: int
    data: int
    bss: int
    hot: np.ndarray = None  # bool per file page: in the page cache and commonly touched
    lid0: int = 0

    @property
    def npages(self) -> int:
        return self.hdr + self.text + self.rodata + self.data


@dataclass
class CowObj:
    """Anonymous memory a service's parent wrote before forking (shared copy-on-write by its members).

    state per page: 0 anonymous frame (lid0 + i), 1 swapped (slot0 + i), 2 still the file's page
    (private file mapping not yet written; ``backing``), 3 never populated."""
    n: int
    state: np.ndarray
    lid0: int
    slot0: int
    backing: tuple | None = None  # (FileObj, file page offset)


@dataclass
class ShmObj:
    n: int
    lid0: int
    path: str
    inode: int


@dataclass
class Mapping:
    start: int  # vpn
    n: int  # pages
    perms: str
    kind: int
    path: str | None = None
    offset: int = 0  # file page offset
    dev: str = "00:00"
    inode: int = 0
    vmflags: str = ""
    obj: object = None
    frac: float = 1.0  # PRIV: expected present fraction scale


@dataclass
class Service:
    sid: int
    name: str
    prog: tuple
    user: str
    uid: int
    cgroup: str
    memcg_ino: int
    members: list = field(default_factory=list)  # pids, parent first
    layout: list = field(default_factory=list)
    swap_frac: float = 0.0
    threads: int = 1
    cmdline: str = ""


class Allocator:
    """Dense frame ids (lids) and swap slots, with the kind and memcg of each lid range."""

    def __init__(self):
        self.lid = 0
        self.slot = 0
        self.range_start: list[int] = []
        self.range_kind: list[int] = []
        self.range_memcg: list[int] = []

    def lids(self, n: int, kind: int, memcg: int) -> int:
        s = self.lid
        if not self.range_kind or self.range_kind[-1] != kind or self.range_memcg[-1] != memcg:
            self.range_start.append(s)
            self.range_kind.append(kind)
            self.range_memcg.append(memcg)
        self.lid += n
        return s

    def slots(self, n: int) -> int:
        s = self.slot
        self.slot += n
        return s


def _lognormal(rng, median, sigma, lo=1, hi=None):
    v = median * float(np.exp(rng.normal(0.0, sigma)))
    v = max(lo, v)
    return min(v, hi) if hi else v


class Plan:
    """The machine: files, services, layouts and shared objects.  Only scalars come from the plan RNG;
    arrays (hot masks, COW states) come from per-object RNGs, so the plan is the same for every scale."""

    def __init__(self, procs: int, seed: int, s_lib: float, s_anon: float, kthreads: int):
        self.seed, self.s_lib, self.s_anon = seed, s_lib, s_anon
        rng = np.random.default_rng([seed, 0])
        self.alloc = Allocator()
        self.system_memcg = 1000 + int(rng.integers(0, 1000))
        # -------- shared libraries
        names = list(REAL_LIBS)
        i = 0
        while len(names) < 300:
            names.append(f"lib{WORDS[i % len(WORDS)]}{i}.so.{1 + i % 7}.{i % 13}.0")
            i += 1
        self.libs: list[FileObj] = []
        for j, name in enumerate(names):
            text = _lognormal(rng, 60, 1.1, 4, 12000)
            if name in ("libc.so.6",):
                text = 400
            elif name in ("libLLVM-15.so.1", "libjvm.so", "libnode.so.108"):
                text = 6000
            elif name == "libicudata.so.72.1":
                text = 2
            rod = text * (7000 if name == "libicudata.so.72.1" else float(rng.uniform(0.1, 0.6)))
            data, bss = float(rng.uniform(1, 12)), float(rng.uniform(0, 8))
            f = FileObj(f"/usr/lib/x86_64-linux-gnu/{name}", 100000 + 37 * j, "fe:00",
                        hdr=max(1, round(text * 0.08 * s_lib)), text=max(1, round(text * s_lib)),
                        rodata=max(1, round(rod * s_lib)), data=max(1, round(data * s_lib)),
                        bss=round(bss * s_lib))
            hot_text, hot_ro = float(rng.uniform(0.15, 0.9)), float(rng.uniform(0.05, 0.6))
            if name == "libicudata.so.72.1":
                hot_ro = 0.02
            frng = np.random.default_rng([seed, 1, j])
            f.hot = np.concatenate([
                np.ones(f.hdr, bool), frng.random(f.text) < hot_text, frng.random(f.rodata) < hot_ro,
                np.ones(f.data, bool)])
            f.lid0 = self.alloc.lids(f.npages, K_FILE, self.system_memcg)
            self.libs.append(f)
        # Zipf popularity of libraries (libc and ld.so are always linked)
        pop = 1.0 / np.arange(1, len(self.libs) - 1) ** 1.05
        self.lib_p = pop / pop.sum()
        # -------- programs (executables + their libraries)
        self.progs = []
        for j, p in enumerate(PROGRAMS):
            name, exe, text = p[0], p[1], p[2]
            existing = [q for q in self.progs if q["exe"].path == exe]
            if existing:
                self.progs.append(dict(existing[0], tmpl=p))
                continue
            f = FileObj(exe, 200000 + 53 * j, "fe:00", hdr=max(1, round(text * 0.05 * s_lib)),
                        text=max(1, round(text * s_lib)), rodata=max(1, round(text * 0.4 * s_lib)),
                        data=max(1, round(max(2, text * 0.03) * s_lib)), bss=max(1, round(20 * s_lib)))
            frng = np.random.default_rng([seed, 3, j])
            f.hot = np.concatenate([np.ones(f.hdr, bool), frng.random(f.text) < 0.6, frng.random(f.rodata) < 0.3,
                                    np.ones(f.data, bool)])
            f.lid0 = self.alloc.lids(f.npages, K_FILE, self.system_memcg)
            nlibs = int(_lognormal(rng, 14, 0.7, 2, 120))
            extra = rng.choice(np.arange(2, len(self.libs)), size=min(nlibs, len(self.libs) - 2), replace=False,
                               p=self.lib_p)
            self.progs.append({"exe": f, "libs": [0, 1] + sorted(int(x) for x in extra), "tmpl": p})
        prog_p = 1.0 / np.arange(1, len(self.progs) + 1) ** 0.8
        prog_p /= prog_p.sum()
        # -------- vdso, system-wide shm segments
        self.vdso = FileObj("[vdso]", 0, "00:00", hdr=0, text=2, rodata=0, data=0, bss=0)
        self.vdso.hot = np.ones(2, bool)
        self.vdso.lid0 = self.alloc.lids(2, K_VDSO, 0)
        self.global_shm = []
        for j in range(3):
            n = max(1, round(_lognormal(rng, 6000, 0.5) * s_anon))
            self.global_shm.append(ShmObj(n, self.alloc.lids(n, K_SHMEM, self.system_memcg),
                                          f"/dev/shm/global-{j}", 300000 + j))
        # -------- services and their members
        self.services: list[Service] = []
        pid = 300 + int(rng.integers(0, 200))
        left = procs
        sid = 0
        while left > 0:
            u = rng.random()
            k = 1 if u < 0.6 else int(rng.integers(2, 9)) if u < 0.85 else int(rng.integers(8, 33))
            k = min(k, left)
            left -= k
            prog = self.progs[int(rng.choice(len(self.progs), p=prog_p))]
            tmpl = prog["tmpl"]
            word = f"{WORDS[int(rng.integers(0, len(WORDS)))]}{sid}"
            user = tmpl[5]
            svc = Service(sid, word, prog, user, USERS[user], f"/system.slice/{tmpl[0]}-{word}.service",
                          10000 + 17 * sid, threads=max(1, int(_lognormal(rng, tmpl[4], 0.3, 1, 200))))
            svc.cmdline = tmpl[3].format(svc=word, k=k)
            pid += int(rng.integers(1, 3000))
            for m in range(k):
                svc.members.append(pid)
                pid += int(rng.integers(1, 4))
            svc.swap_frac = 0.0 if rng.random() < 0.7 else float(rng.uniform(0.01, 0.25))
            self._layout(svc, rng)
            self.services.append(svc)
            sid += 1
        self.kthreads = []
        kpid = 2
        for j in range(kthreads):
            self.kthreads.append((kpid, ["kthreadd", "ksoftirqd/0", "kworker/0:1-events", "rcu_preempt",
                                         "migration/1", "kcompactd0", "khugepaged", "kswapd0"][j % 8]))
            kpid += 1 + j % 5
        self.private_lid0 = None  # set before the passes

    def _layout(self, svc: Service, rng) -> None:
        """Address space of the service (all members share it: they are forks of one parent)."""
        seed, s = self.seed, self.s_anon
        lay: list[Mapping] = []
        a = self.alloc

        crng = np.random.default_rng([seed, 4, svc.sid])

        def cow(n, backing=None, populated=None, written=None):
            pop = populated if populated is not None else float(crng.uniform(0.6, 1.0))
            r = crng.random(n)
            state = np.where(r < pop, 0, 3).astype(np.uint8)
            if backing is not None:  # private file mapping: unwritten pages still map the file's frame
                w = written if written is not None else float(crng.uniform(0.3, 0.9))
                state[(state == 0) & (crng.random(n) >= w)] = 2
            if svc.swap_frac:
                state[(state == 0) & (crng.random(n) < svc.swap_frac * 0.5)] = 1
            return CowObj(n, state, a.lids(n, K_ANON, svc.memcg_ino), a.slots(n), backing)

        def elf(f: FileObj, vpn: int) -> int:
            segs = [("r--p", 0, f.hdr), ("r-xp", f.hdr, f.text), ("r--p", f.hdr + f.text, f.rodata)]
            for perms, off, n in segs:
                lay.append(Mapping(vpn, n, perms, M_FILE, f.path, off, f.dev, f.inode, VMFLAGS[perms], f))
                vpn += n
            off = f.hdr + f.text + f.rodata
            lay.append(Mapping(vpn, f.data, "rw-p", M_COW, f.path, off, f.dev, f.inode, VMFLAGS["rw-p"],
                               cow(f.data, backing=(f, off))))
            vpn += f.data
            if f.bss:
                lay.append(Mapping(vpn, f.bss, "rw-p", M_COW, None, vmflags=VMFLAGS["rw-p"], obj=cow(f.bss)))
                vpn += f.bss
            return vpn

        # executable, then [heap] (brk) after a random gap
        vpn = 0x555555554 + int(rng.integers(0, 1 << 20))
        vpn = elf(svc.prog["exe"], vpn)
        vpn += int(rng.integers(1, 1 << 16))
        heap = max(8, round(_lognormal(rng, 1500, 1.0, 8, 2_000_000) * s))
        lay.append(Mapping(vpn, heap, "rw-p", M_COW, "[heap]", vmflags=VMFLAGS["rw-p"], obj=cow(heap)))
        # mmap area, growing down from near the top of the address space
        top = 0x7F0000000 + int(rng.integers(0, 1 << 24))
        mm: list[list[Mapping]] = []

        def below(build):  # place a group of mappings right below the previous ones
            nonlocal top
            start_len = len(lay)
            group_start = top
            # build at a provisional address, then shift down so it ends at `top`
            end = build(group_start)
            size = end - group_start
            for m in lay[start_len:]:
                m.start -= size
            top -= size + int(rng.integers(0, 64))
            mm.append(lay[start_len:])
            del lay[start_len:]

        for li in svc.prog["libs"]:
            below(lambda v, f=self.libs[li]: elf(f, v))
        # malloc arenas: rw-p part + ---p reservation up to 64 MiB
        for _ in range(int(rng.integers(1, 3)) + min(svc.threads, 6)):
            n = max(1, round(_lognormal(rng, 900, 1.1, 1, 1_000_000) * s))

            def arena(v, n=n):
                lay.append(Mapping(v, n, "rw-p", M_PRIV, None, vmflags=VMFLAGS["rw-p"]))
                res = max(0, 16384 - n % 16384)
                if res:
                    lay.append(Mapping(v + n, res, "---p", M_NONE, None, vmflags=VMFLAGS["---p"]))
                return v + n + res
            below(arena)
        # thread stacks (8 MiB with a guard page), sparsely touched
        for _ in range(min(svc.threads - 1, 64)):
            def tstack(v):
                lay.append(Mapping(v, 1, "---p", M_NONE, None, vmflags=VMFLAGS["---p"]))
                lay.append(Mapping(v + 1, 2048, "rw-p", M_PRIV, None, vmflags=VMFLAGS["rw-p"], frac=0.03))
                return v + 2049
            below(tstack)
        # service shmem (postgres shared_buffers style) and system-wide segments
        shm_p = 0.35 if len(svc.members) > 1 else 0.05
        if rng.random() < shm_p:
            n = max(1, round(_lognormal(rng, 5000, 1.0, 1, 4_000_000) * s))
            obj = ShmObj(n, a.lids(n, K_SHMEM, svc.memcg_ino), f"/dev/shm/{svc.name}.{svc.sid}", 400000 + svc.sid)
            below(lambda v, o=obj: (lay.append(Mapping(v, o.n, "rw-s", M_SHM, o.path, 0, "00:1a", o.inode,
                                                       VMFLAGS["rw-s"], o)), v + o.n)[1])
        for g in self.global_shm:
            if rng.random() < 0.08:
                below(lambda v, o=g: (lay.append(Mapping(v, o.n, "rw-s", M_SHM, o.path, 0, "00:1a", o.inode,
                                                         VMFLAGS["rw-s"], o)), v + o.n)[1])
        # mmap'ed anonymous memory written before fork (COW-shared by the workers)
        if rng.random() < 0.5:
            n = max(1, round(_lognormal(rng, 2000, 1.0, 1, 2_000_000) * s))
            below(lambda v, n=n: (lay.append(Mapping(v, n, "rw-p", M_COW, None, vmflags=VMFLAGS["rw-p"],
                                                     obj=cow(n))), v + n)[1])
        for group in reversed(mm):
            lay.extend(group)
        # stack, vvar, vdso, vsyscall
        st = 0x7FFC00000 + int(rng.integers(0, 1 << 20))
        lay.append(Mapping(st, 33, "rw-p", M_PRIV, "[stack]", vmflags=VMFLAGS["stack"], frac=0.5))
        vv = st + 33 + int(rng.integers(64, 4096))
        lay.append(Mapping(vv, 4, "r--p", M_NONE, "[vvar]", vmflags=VMFLAGS["vvar"]))
        lay.append(Mapping(vv + 4, 2, "r-xp", M_VDSO, "[vdso]", vmflags=VMFLAGS["vdso"], obj=self.vdso))
        lay.append(Mapping(0xFFFFFFFFFF600, 1, "--xp", M_NONE, "[vsyscall]", vmflags=VMFLAGS["vsyscall"]))
        lay.sort(key=lambda m: m.start)
        for x, y in zip(lay, lay[1:]):
            assert x.start + x.n <= y.start, (svc.name, x, y)
        svc.layout = lay

    def expected_rows(self) -> tuple[float, float]:
        """Expected pages rows: (file-backed part, anonymous/shmem part)."""
        e_lib = e_anon = 0.0
        for svc in self.services:
            k = len(svc.members)
            for m in svc.layout:
                if m.kind in (M_FILE, M_VDSO):
                    e_lib += k * 0.75 * float(m.obj.hot[m.offset:m.offset + m.n].sum())
                elif m.kind == M_COW:
                    e_anon += k * float((m.obj.state != 3).sum())
                elif m.kind == M_PRIV:
                    e_anon += k * m.n * 0.625 * m.frac
                elif m.kind == M_SHM:
                    e_anon += k * m.n * 0.6
        return e_lib, e_anon

    def processes(self):
        """(service, member index, pid) in pid order."""
        out = [(svc, i, pid) for svc in self.services for i, pid in enumerate(svc.members)]
        out.sort(key=lambda t: t[2])
        return out


# ------------------------------------------------------------------------------------------------ pages

@dataclass
class ProcPages:
    vpn: np.ndarray  # uint64
    state: np.ndarray  # uint8: S_PRESENT, S_SWAP, S_ZERO
    val: np.ndarray  # int64: lid (present), slot (swapped), 0 (zero page)
    kind: np.ndarray  # uint8: K_* (present pages)
    bounds: np.ndarray  # int64, len(layout) + 1: page rows of mapping i are bounds[i]:bounds[i+1]


C_FILE, C_VDSO, C_COW, C_PRIV, C_SHM = range(5)


@dataclass
class Template:
    """Every page a member of a service could have, in address order (what fork gives them all)."""
    vpn: np.ndarray  # uint64
    midx: np.ndarray  # int64 mapping index
    cls: np.ndarray  # uint8 C_*
    frac: np.ndarray  # float64 keep-probability scale (PRIV)
    state: np.ndarray  # uint8 S_PRESENT / S_SWAP (COW pages swapped before the fork)
    val: np.ndarray  # int64 lid or slot
    kind: np.ndarray  # uint8 K_*
    nmaps: int


def build_template(svc: Service) -> Template:
    parts = []
    for i, m in enumerate(svc.layout):
        k = m.kind
        if k in (M_FILE, M_VDSO):
            f = m.obj
            idx = np.flatnonzero(f.hot[m.offset:m.offset + m.n])
            n = idx.size
            parts.append((idx + m.start, i, C_FILE if k == M_FILE else C_VDSO, 1.0, np.zeros(n, np.uint8),
                          idx + (f.lid0 + m.offset), K_FILE if k == M_FILE else K_VDSO))
        elif k == M_COW:
            o: CowObj = m.obj
            idx = np.flatnonzero(o.state != 3)
            st = o.state[idx]
            val = np.where(st == 1, idx + o.slot0, idx + o.lid0).astype(np.int64)
            kind = np.full(idx.size, K_ANON, np.uint8)
            if o.backing is not None:
                fb = st == 2
                f, off = o.backing
                val[fb] = idx[fb] + (f.lid0 + off)
                kind[fb] = K_FILE
            parts.append((idx + m.start, i, C_COW, 1.0, np.where(st == 1, S_SWAP, S_PRESENT).astype(np.uint8),
                          val, kind))
        elif k == M_PRIV:
            idx = np.arange(m.n, dtype=np.int64)
            parts.append((idx + m.start, i, C_PRIV, m.frac, np.zeros(m.n, np.uint8), np.zeros(m.n, np.int64), K_ANON))
        elif k == M_SHM:
            idx = np.arange(m.n, dtype=np.int64)
            parts.append((idx + m.start, i, C_SHM, 1.0, np.zeros(m.n, np.uint8), idx + m.obj.lid0, K_SHMEM))
    sizes = [len(p[0]) for p in parts]
    cat = np.concatenate
    return Template(
        vpn=cat([p[0] for p in parts]).astype(np.uint64),
        midx=np.repeat(np.array([p[1] for p in parts], np.int64), sizes),
        cls=np.repeat(np.array([p[2] for p in parts], np.uint8), sizes),
        frac=np.repeat(np.array([p[3] for p in parts], np.float64), sizes),
        state=cat([p[4] for p in parts]), val=cat([np.asarray(p[5], np.int64) for p in parts]),
        kind=cat([np.broadcast_to(np.asarray(p[6], np.uint8), (len(p[0]),)) for p in parts]),
        nmaps=len(svc.layout))


def gen_process(plan: Plan, svc: Service, member: int, pid: int, alloc_next: list, tpl: Template) -> ProcPages:
    """The pages of one process.  Deterministic for (seed, pid) and the order of calls (private lids).

    One uniform draw r per candidate page decides everything: file/shmem/private pages are mapped
    when r < threshold; a COW page is broken (private copy) when r < brk; a mapped private page is
    swapped when r/threshold < swap fraction, the zero page when r/threshold > 1 - zero fraction."""
    rng = np.random.default_rng([plan.seed, 2, pid])
    parent = member == 0
    p_file = float(rng.uniform(0.5, 1.0))
    brk = float(rng.uniform(0.0, 0.15)) if parent else float(rng.uniform(0.05, 0.6))
    p_priv = float(rng.uniform(0.3, 0.95))
    p_shm = float(rng.uniform(0.2, 1.0))
    zero_frac = 0.01
    sw = svc.swap_frac
    lut = np.array([p_file, 1.0, 1.0, p_priv, p_shm])
    thr = lut[tpl.cls] * tpl.frac
    r = rng.random(tpl.vpn.size)
    keep = r < thr
    cls = tpl.cls
    state = tpl.state.copy()
    val = tpl.val.copy()
    kind = tpl.kind.copy()
    broken = (cls == C_COW) & (r < brk)
    priv = (cls == C_PRIV) & keep
    u = np.zeros_like(r)
    np.divide(r, thr, out=u, where=priv)
    p_swap = priv & (u < sw)
    p_zero = priv & ~p_swap & (u > 1.0 - zero_frac)
    need = broken | (priv & ~p_swap & ~p_zero)
    nl = int(np.count_nonzero(need))
    val[need] = np.arange(alloc_next[0], alloc_next[0] + nl, dtype=np.int64)
    alloc_next[0] += nl
    state[need] = S_PRESENT
    kind[need] = K_ANON
    ns = int(np.count_nonzero(p_swap))
    if ns:
        val[p_swap] = np.arange(alloc_next[1], alloc_next[1] + ns, dtype=np.int64)
        alloc_next[1] += ns
        state[p_swap] = S_SWAP
    if p_zero.any():
        state[p_zero] = S_ZERO
        val[p_zero] = 0
    sel = np.flatnonzero(keep)
    midx = tpl.midx[sel]
    bounds = np.searchsorted(midx, np.arange(tpl.nmaps + 1, dtype=np.int64), side="left")
    return ProcPages(tpl.vpn[sel], state[sel], val[sel], kind[sel], bounds.astype(np.int64))


def _template(cache: list, svc: Service) -> Template:
    """Members of a service have consecutive pids, so a cache of one template is enough."""
    if cache[0] is not svc:
        cache[0], cache[1] = svc, build_template(svc)
    return cache[1]


def seg_sum(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Exact int64 sums of x over the row ranges bounds[i]:bounds[i+1] (empty ranges give 0)."""
    cs = np.zeros(x.size + 1, np.int64)
    np.cumsum(x, dtype=np.int64, out=cs[1:])
    return cs[bounds[1:]] - cs[bounds[:-1]]


# ------------------------------------------------------------------------------------------------ smaps text

SMAPS_ORDER = ["Size", "KernelPageSize", "MMUPageSize", "Rss", "Pss", "Pss_Dirty", "Shared_Clean", "Shared_Dirty",
               "Private_Clean", "Private_Dirty", "Referenced", "Anonymous", "KSM", "LazyFree", "AnonHugePages",
               "ShmemPmdMapped", "FilePmdMapped", "Shared_Hugetlb", "Private_Hugetlb", "Swap", "SwapPss", "Locked"]
SMAPS_COL = {"Size": "size_kb", "KernelPageSize": "kernel_page_size_kb", "MMUPageSize": "mmu_page_size_kb",
             "Rss": "rss_kb", "Pss": "pss_kb", "Pss_Dirty": "pss_dirty_kb", "Shared_Clean": "shared_clean_kb",
             "Shared_Dirty": "shared_dirty_kb", "Private_Clean": "private_clean_kb",
             "Private_Dirty": "private_dirty_kb", "Referenced": "referenced_kb", "Anonymous": "anonymous_kb",
             "KSM": "ksm_kb", "LazyFree": "lazyfree_kb", "AnonHugePages": "anon_huge_pages_kb",
             "ShmemPmdMapped": "shmem_pmd_mapped_kb", "FilePmdMapped": "file_pmd_mapped_kb",
             "Shared_Hugetlb": "shared_hugetlb_kb", "Private_Hugetlb": "private_hugetlb_kb", "Swap": "swap_kb",
             "SwapPss": "swap_pss_kb", "Locked": "locked_kb"}
_SMAPS_TMPL = "".join(f"{k + ':':<16}{{{i}:>8}} kB\n" for i, k in enumerate(SMAPS_ORDER)) + \
    "THPeligible:    {%d}\nProtectionKey:  {%d:>8}\nVmFlags: {%d} \n" % (len(SMAPS_ORDER), len(SMAPS_ORDER) + 1,
                                                                       len(SMAPS_ORDER) + 2)


def smaps_text(layout, cols: dict) -> str:
    out = []
    vals = [cols[SMAPS_COL[k]].tolist() for k in SMAPS_ORDER]
    thp = cols["thp_eligible"].tolist()
    for i, m in enumerate(layout):
        start, end = m.start * PAGE, (m.start + m.n) * PAGE
        head = f"{start:08x}-{end:08x} {m.perms} {m.offset * PAGE:08x} {m.dev} {m.inode} "
        if m.path:
            head = f"{head:<73}{m.path}"
        out.append(head + "\n")
        out.append(_SMAPS_TMPL.format(*[v[i] for v in vals], thp[i], 0, m.vmflags))
    return "".join(out)


# ------------------------------------------------------------------------------------------------ writer

MAPPING_INT_COLS = [c for c in SMAPS_COL.values()]


FILE_SHARE = 0.4
PAGE_ROW_GROUP = 1 << 20  # the recorder flushes (and orders) page rows in row groups of this size


def recorder_page_order() -> str:
    """Row order of `pages` inside a row group, as the schema documents the recorder's (pid, vpn or entry)."""
    note = getattr(TABLES["pages"], "storage", "") or ""
    for key in ("entry", "vpn"):
        if f"ordered by ({key}" in note:
            return key
    return "pid"


def generate(procs: int, pages: int, seed: int, out: str, smem_dir: str | None = None, host: str = "synth",
             kthreads: int = 20, capture_time: datetime | None = None, verbose: bool = True,
             chunk_rows: int = 1 << 21, page_order: str | None = None) -> dict:
    page_order = page_order or recorder_page_order()
    t_start = time.perf_counter()
    def log(*a):
        if verbose:
            import resource
            print(*a, f"[peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB]", file=sys.stderr,
                  flush=True)
    # scale the sizes so that the number of pages rows is close to `pages`
    probe = Plan(procs, seed, 1.0, 1.0, kthreads)
    e_lib, e_anon = probe.expected_rows()
    # file-backed pages (shared libraries, executables) get at most FILE_SHARE of the rows: with realistic
    # library sizes they would dominate small per-process budgets (5M pages / 1000 processes = 20 MiB each)
    s_lib = min(1.0, FILE_SHARE * pages / max(e_lib, 1.0))
    s_anon = (pages - s_lib * e_lib) / max(e_anon, 1.0)
    plan = Plan(procs, seed, s_lib, s_anon, kthreads) if (s_lib, s_anon) != (1.0, 1.0) else probe
    del probe
    plist = plan.processes()
    obj_lids, obj_slots = plan.alloc.lid, plan.alloc.slot
    log(f"plan: {len(plan.services)} services, {len(plist)} processes, scale lib {s_lib:.3f} anon {s_anon:.3f}, "
        f"{time.perf_counter() - t_start:.1f}s")

    # ---------------- pass 1: references per frame id and per swap slot
    t1 = time.perf_counter()
    alloc_next = [obj_lids, obj_slots]
    counts = np.zeros(max(obj_lids, 1 << 16), np.int32)
    swaprefs = np.zeros(max(obj_slots, 1 << 10), np.int32)
    buf_l, buf_s, nbuf = [], [], 0
    proc_lid0 = {}

    def add_counts(acc: np.ndarray, ids: np.ndarray, split: int) -> np.ndarray:
        """acc[i] += occurrences of i in ids.  Shared objects live below `split`; private ids of the batch
        are a recent, narrow range above it, so the bincount temporaries stay small."""
        if not ids.size:
            return acc
        hi = int(ids.max()) + 1
        if hi > acc.size:
            acc = np.concatenate([acc, np.zeros(max(hi - acc.size, acc.size // 2), np.int32)])
        low = ids[ids < split]
        if low.size:
            c = np.bincount(low)
            acc[:c.size] += c  # int64 -> int32 in place (same kind), no converted copy
        high = ids[ids >= split]
        if high.size:
            lo = int(high.min())
            c = np.bincount(high - lo)
            acc[lo:lo + c.size] += c
        return acc

    def fold():
        nonlocal counts, swaprefs, buf_l, buf_s, nbuf
        if buf_l:
            counts = add_counts(counts, np.concatenate(buf_l), obj_lids)
        if buf_s:
            swaprefs = add_counts(swaprefs, np.concatenate(buf_s), obj_slots)
        buf_l, buf_s, nbuf = [], [], 0

    rows_total = 0
    tpl_cache = [None, None]
    for svc, member, pid in plist:
        proc_lid0[pid] = alloc_next[0]
        pp = gen_process(plan, svc, member, pid, alloc_next, _template(tpl_cache, svc))
        buf_l.append(pp.val[pp.state == S_PRESENT])
        buf_s.append(pp.val[pp.state == S_SWAP])
        nbuf += pp.val.size
        rows_total += pp.val.size
        if nbuf >= 2 * chunk_rows:
            fold()
    fold()
    n_lids, n_slots = alloc_next
    counts = counts[:n_lids] if counts.size >= n_lids else np.concatenate([counts, np.zeros(n_lids - counts.size, np.int32)])
    swaprefs = swaprefs[:n_slots] if swaprefs.size >= n_slots else np.concatenate(
        [swaprefs, np.zeros(n_slots - swaprefs.size, np.int32)])
    # memcg of private lids: one range per process (in allocation order)
    for svc, member, pid in plist:
        plan.alloc.range_start.append(proc_lid0[pid])
        plan.alloc.range_kind.append(K_ANON)
        plan.alloc.range_memcg.append(svc.memcg_ino)
    r_start = np.asarray(plan.alloc.range_start, np.int64)
    r_kind = np.asarray(plan.alloc.range_kind, np.uint8)
    r_memcg = np.asarray(plan.alloc.range_memcg, np.int64)
    order = np.argsort(r_start, kind="stable")
    r_start, r_kind, r_memcg = r_start[order], r_kind[order], r_memcg[order]
    last = np.r_[r_start[1:] != r_start[:-1], True]  # an empty range shares its start with the next: drop it
    r_start, r_kind, r_memcg = r_start[last], r_kind[last], r_memcg[last]
    log(f"pass 1: {rows_total} page rows, {n_lids} frame ids, {int((counts > 0).sum())} frames used, "
        f"{n_slots} swap slots, {time.perf_counter() - t1:.1f}s")

    # frame id -> PFN: 64-frame chunks in a random order, with holes
    prng = np.random.default_rng([seed, 5])
    nchunks = (n_lids + PFN_CHUNK - 1) // PFN_CHUNK
    perm = prng.permutation(nchunks).astype(np.int64)

    def pfn_of(lids: np.ndarray) -> np.ndarray:
        return (PFN_BASE + perm[lids // PFN_CHUNK] * PFN_CHUNK_STRIDE + lids % PFN_CHUNK).astype(np.uint64)

    # ---------------- pass 2: write everything
    t2 = time.perf_counter()
    start = capture_time or datetime.now(timezone.utc)
    h = hashlib.sha1(f"{host}/synth-{seed}".encode()).hexdigest()[:8]
    snapshot_id = f"{start:%Y%m%dT%H%M%S%f}Z-{h}-{os.getpid()}"
    boot_id = str(__import__("uuid").UUID(int=int(np.random.default_rng([seed, 6]).integers(0, 2 ** 62)) << 64 | 1))
    os.makedirs(out, exist_ok=True)
    writer = SnapshotWriter(out, host, snapshot_id, start.strftime("%Y-%m-%d"))
    try:
        stats = _pass2(plan, plist, writer, snapshot_id, counts, swaprefs, pfn_of, obj_lids, obj_slots, smem_dir,
                       PAGE_ROW_GROUP, log, start, page_order)
        log(f"pass 2 (pages, mappings, processes{', smem tree' if smem_dir else ''}): {time.perf_counter() - t2:.1f}s")
        t3 = time.perf_counter()
        n_frames = _write_frames(writer, snapshot_id, counts, perm, r_start, r_kind, r_memcg, PAGE_ROW_GROUP)
        log(f"frames: {n_frames} rows, {time.perf_counter() - t3:.1f}s")
        meminfo = _meminfo(counts, r_start, r_kind, stats)
        writer.table("meminfo").write({"snapshot_id": [snapshot_id] * len(meminfo), "key": [k for k, _ in meminfo],
                                       "value_kb": [v for _, v in meminfo], "value": [v for _, v in meminfo]})
        if smem_dir:
            _smem_globals(smem_dir, meminfo)
        n_user = len(plist)
        end = start + timedelta(seconds=max(0.5, rows_total / 2e6))
        snap = {
            "snapshot_id": snapshot_id, "boot_id": boot_id, "hostname": host, "kernel_release": "6.18.44-synth",
            "machine": "x86_64", "page_size_bytes": PAGE, "clock_ticks_hz": 100,
            "boot_time": start - timedelta(days=3), "capture_start": start, "capture_end": end,
            "uptime_s": 3 * 86400.0, "recorder_version": "synth-0.1", "recorder_pid": 1, "recorder_uid": 0,
            "schema_version": SCHEMA_VERSION,
            "options_json": json.dumps({"synthetic": True, "generator": "bench/synth.py", "procs": procs,
                                        "pages": pages, "seed": seed, "page_order": page_order}),
            "sources": "maps,smaps,smaps_rollup,pagemap,kpage", "pfn_available": True, "kpage_available": True,
            "kpagecgroup_available": True, "mapcount_mode": "per_page", "thp_enabled": "madvise",
            "thp_defrag": "madvise", "thp_shmem_enabled": "never", "ksm_run": 0, "ksm_pages_sharing": 0,
            "ksm_pages_shared": 0, "processes_seen": n_user + len(plan.kthreads), "processes_recorded": n_user,
            "processes_partial": 0, "processes_vanished": 0, "processes_denied": 0, "processes_zombie": 0,
            "kernel_threads": len(plan.kthreads), "pages_rows": rows_total, "frames_rows": n_frames,
            "warnings": None,
        }
        bytes_written = writer.commit(snap)
    except BaseException:
        writer.abort()
        raise
    info = {"snapshot_id": snapshot_id, "store": os.path.abspath(out), "host": host, "procs": len(plist),
            "kernel_threads": len(plan.kthreads), "services": len(plan.services), "pages_rows": rows_total,
            "frames_rows": n_frames, "mappings_rows": stats["mappings"], "bytes_written": bytes_written,
            "seconds": round(time.perf_counter() - t_start, 2), "page_order": page_order,
            "smem_dir": os.path.abspath(smem_dir) if smem_dir else None}
    log(json.dumps(info))
    return info


def _pass2(plan, plist, writer, sid, counts, swaprefs, pfn_of, obj_lids, obj_slots, smem_dir, chunk_rows, log,
           start, page_order):
    pages_w, maps_w = writer.table("pages"), writer.table("mappings")
    alloc_next = [obj_lids, obj_slots]
    page_buf, page_rows = [], 0
    map_buf: list[dict] = []
    map_rows = 0
    proc_rows = []
    sid_b = sid.encode()
    totals = {"mappings": 0, "anon_pages": 0, "swap_pages": 0}
    if smem_dir:
        os.makedirs(os.path.join(smem_dir, "proc"), exist_ok=True)
    as_root = os.geteuid() == 0

    def sid_array(n):
        offsets = np.arange(n + 1, dtype=np.int32) * len(sid_b)
        return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(sid_b * n))

    def flush_pages():
        nonlocal page_buf, page_rows
        if page_rows:
            pid_a = np.concatenate([np.full(v.size, p, np.int32) for p, v, _, _ in page_buf])
            vpn_a = np.concatenate([v for _, v, _, _ in page_buf])
            entry_a = np.concatenate([e for _, _, e, _ in page_buf])
            midx_a = np.concatenate([m for _, _, _, m in page_buf])
            order = None  # rows are generated in (pid, vpn) order
            if page_order == "entry":
                order = np.argsort(entry_a, kind="stable")
            elif page_order == "vpn":
                order = np.argsort(vpn_a, kind="stable")
            if order is not None:
                pid_a, vpn_a, entry_a, midx_a = pid_a[order], vpn_a[order], entry_a[order], midx_a[order]
            pages_w.write(pa.table({"snapshot_id": sid_array(page_rows), "pid": pid_a, "vpn": vpn_a,
                                    "entry": entry_a, "map_idx": midx_a}, schema=pages_w.schema))
        page_buf, page_rows = [], 0

    def flush_maps():
        nonlocal map_buf, map_rows
        if map_rows:
            cols = {}
            for name in maps_w.schema.names:
                if name == "snapshot_id":
                    cols[name] = sid_array(map_rows)
                elif name == "other_kb":
                    cols[name] = pa.nulls(map_rows, maps_w.schema.field(name).type)
                else:
                    parts = [b[name] for b in map_buf]
                    if isinstance(parts[0], np.ndarray):
                        cols[name] = np.concatenate(parts)
                    else:
                        cols[name] = pa.array([x for p in parts for x in p], maps_w.schema.field(name).type)
            maps_w.write(pa.table(cols, schema=maps_w.schema))
        map_buf, map_rows = [], 0

    uptime_ticks = 3 * 86400 * 100
    tpl_cache = [None, None]
    for svc, member, pid in plist:
        pp = gen_process(plan, svc, member, pid, alloc_next, _template(tpl_cache, svc))
        lay = svc.layout
        nm = len(lay)
        present = pp.state == S_PRESENT
        swapped = pp.state == S_SWAP
        zero = pp.state == S_ZERO
        mc = np.zeros(pp.val.size, np.int64)
        mc[present] = counts[pp.val[present]]
        refs = np.zeros(pp.val.size, np.int64)
        refs[swapped] = swaprefs[pp.val[swapped]]
        # kernel fixed-point PSS per page (fs/proc/task_mmu.c smaps_page_accumulate)
        fp = np.where(present, np.where(mc >= 2, FP_ONE // np.maximum(mc, 1), FP_ONE), 0)
        sfp = np.where(swapped, np.where(refs >= 2, FP_ONE // np.maximum(refs, 1), FP_ONE), 0)
        dirty = present & (pp.kind != K_FILE) & (pp.kind != K_VDSO)
        shared = present & (mc >= 2)
        private = present & (mc <= 1)
        anon = present & (pp.kind == K_ANON)
        filek = present & ((pp.kind == K_FILE) | (pp.kind == K_VDSO))
        shm = present & (pp.kind == K_SHMEM)
        b = pp.bounds
        rss_p = seg_sum(present, b)
        cols = {
            "size_kb": np.array([m.n * 4 for m in lay], np.int64),
            "kernel_page_size_kb": np.full(nm, 4, np.int64), "mmu_page_size_kb": np.full(nm, 4, np.int64),
            "rss_kb": rss_p * 4,
            "pss_kb": seg_sum(fp, b) >> PSS_SHIFT_KB,
            "pss_dirty_kb": seg_sum(np.where(dirty, fp, 0), b) >> PSS_SHIFT_KB,
            "shared_clean_kb": seg_sum(shared & ~dirty, b) * 4, "shared_dirty_kb": seg_sum(shared & dirty, b) * 4,
            "private_clean_kb": seg_sum(private & ~dirty, b) * 4,
            "private_dirty_kb": seg_sum(private & dirty, b) * 4,
            "referenced_kb": rss_p * 4, "anonymous_kb": seg_sum(anon, b) * 4,
            "swap_kb": seg_sum(swapped, b) * 4, "swap_pss_kb": seg_sum(sfp, b) >> PSS_SHIFT_KB,
        }
        z = np.zeros(nm, np.int64)
        for c in ("ksm_kb", "lazyfree_kb", "anon_huge_pages_kb", "shmem_pmd_mapped_kb", "file_pmd_mapped_kb",
                  "shared_hugetlb_kb", "private_hugetlb_kb", "locked_kb"):
            cols[c] = z
        cols["thp_eligible"] = np.array([1 if (m.kind in (M_PRIV, M_COW) and m.path is None and m.n >= 512) else 0
                                         for m in lay], np.int32)
        cols["protection_key"] = np.zeros(nm, np.int32)
        # pagemap entries
        entry = np.zeros(pp.val.size, np.uint64)
        if present.any():
            pv = pp.val[present]
            e = pfn_of(pv) | PM_PRESENT
            k = pp.kind[present]
            e[(k == K_FILE) | (k == K_SHMEM) | (k == K_VDSO)] |= PM_FILE
            e[mc[present] == 1] |= PM_EXCL
            entry[present] = e
        if swapped.any():
            entry[swapped] = PM_SWAP | ((pp.val[swapped].astype(np.uint64) + np.uint64(1)) << np.uint64(5))
        if zero.any():
            entry[zero] = PM_PRESENT | np.uint64(ZERO_PFN)
        if pp.vpn.size:
            # the page's mapping (mappings.idx, the layout's position), as the recorder stores it
            page_buf.append((pid, pp.vpn, entry, np.repeat(np.arange(nm, dtype=np.int32), np.diff(b))))
            page_rows += pp.vpn.size
        # mappings rows
        mb = {"pid": np.full(nm, pid, np.int32), "idx": np.arange(nm, dtype=np.int32),
              "start_addr": np.array([m.start * PAGE for m in lay], np.uint64),
              "end_addr": np.array([(m.start + m.n) * PAGE for m in lay], np.uint64),
              "perms": [m.perms for m in lay], "offset_bytes": np.array([m.offset * PAGE for m in lay], np.uint64),
              "dev": [m.dev for m in lay], "inode": np.array([m.inode for m in lay], np.uint64),
              "path": [m.path for m in lay], "vm_flags": [m.vmflags for m in lay], "source": ["smaps"] * nm}
        mb.update(cols)
        map_buf.append(mb)
        map_rows += nm
        totals["mappings"] += nm
        # smaps_rollup: the same sums over the whole process, floored once
        n_rss = int(present.sum())
        fp_sum = int(fp.sum())
        roll = {
            "rollup_rss_kb": n_rss * 4, "rollup_pss_kb": fp_sum >> PSS_SHIFT_KB,
            "rollup_pss_dirty_kb": int(fp[dirty].sum()) >> PSS_SHIFT_KB,
            "rollup_shared_clean_kb": int((shared & ~dirty).sum()) * 4,
            "rollup_shared_dirty_kb": int((shared & dirty).sum()) * 4,
            "rollup_private_clean_kb": int((private & ~dirty).sum()) * 4,
            "rollup_private_dirty_kb": int((private & dirty).sum()) * 4,
            "rollup_referenced_kb": n_rss * 4, "rollup_anonymous_kb": int(anon.sum()) * 4,
            "rollup_ksm_kb": 0, "rollup_lazyfree_kb": 0, "rollup_anon_huge_pages_kb": 0,
            "rollup_shmem_pmd_mapped_kb": 0, "rollup_file_pmd_mapped_kb": 0, "rollup_shared_hugetlb_kb": 0,
            "rollup_private_hugetlb_kb": 0, "rollup_swap_kb": int(swapped.sum()) * 4,
            "rollup_swap_pss_kb": int(sfp.sum()) >> PSS_SHIFT_KB, "rollup_locked_kb": 0,
            "rollup_pss_anon_kb": int(fp[anon].sum()) >> PSS_SHIFT_KB,
            "rollup_pss_file_kb": int(fp[filek].sum()) >> PSS_SHIFT_KB,
            "rollup_pss_shmem_kb": int(fp[shm].sum()) >> PSS_SHIFT_KB,
        }
        totals["anon_pages"] += int(anon.sum())
        totals["swap_pages"] += int(swapped.sum())
        vm_size = int(cols["size_kb"].sum())
        prog = svc.prog["tmpl"]
        comm = prog[0][:15]
        parent_pid = svc.members[0]
        ppid = 1 if member == 0 else parent_pid
        starttime = 1000 + (pid * 7919) % (uptime_ticks - 2000)
        data_kb = sum(m.n * 4 for m in lay if m.perms == "rw-p" and m.path not in ("[stack]",))
        exe_kb = sum(m.n * 4 for m in lay if m.perms == "r-xp" and m.path == svc.prog["exe"].path)
        lib_kb = sum(m.n * 4 for m in lay if m.perms == "r-xp" and m.path and ".so" in m.path)
        row = {
            "snapshot_id": sid, "pid": pid, "starttime_ticks": starttime, "ppid": ppid, "state": "S",
            "uid": svc.uid, "euid": svc.uid, "gid": svc.uid, "user": svc.user, "comm": comm,
            "cmdline": svc.cmdline,
            "exe": svc.prog["exe"].path, "cgroup": svc.cgroup, "pid_ns": 4026531836, "threads": svc.threads,
            "kernel_thread": False,
            "vm_peak_kb": vm_size, "vm_size_kb": vm_size, "vm_lck_kb": 0, "vm_pin_kb": 0, "vm_hwm_kb": n_rss * 4,
            "vm_rss_kb": n_rss * 4, "rss_anon_kb": int(anon.sum()) * 4, "rss_file_kb": int(filek.sum()) * 4,
            "rss_shmem_kb": int(shm.sum()) * 4, "vm_data_kb": data_kb, "vm_stk_kb": 132, "vm_exe_kb": exe_kb,
            "vm_lib_kb": lib_kb, "vm_pte_kb": 4 * max(1, (vm_size // 2048) + 4),
            "vm_swap_kb": int(swapped.sum()) * 4, "hugetlb_pages_kb": 0,
            **roll, "rollup_other_kb": None, "sources": "smaps_rollup,smaps,pagemap", "mappings": nm,
            "pages": int(pp.vpn.size), "captured_at": start, "capture_ms": 0.02 * nm + pp.vpn.size * 5e-5,
            "status": "ok", "error": None,
        }
        proc_rows.append(row)
        if smem_dir:
            d = os.path.join(smem_dir, "proc", str(pid))
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, "smaps"), "w") as f:
                f.write(smaps_text(lay, cols))
            _write_proc_files(d, pid, comm, "S", ppid, row["cmdline"], svc.threads, starttime, vm_size, n_rss, row)
            if as_root:
                os.chown(d, svc.uid, svc.uid)
        if page_rows >= chunk_rows:
            flush_pages()
        if map_rows >= 100_000:
            flush_maps()
    flush_pages()
    flush_maps()
    # kernel threads: a row each, no memory (smem: empty cmdline and smaps)
    for kpid, name in plan.kthreads:
        proc_rows.append({"snapshot_id": sid, "pid": kpid, "starttime_ticks": 1 + kpid, "ppid": 2 if kpid > 2 else 0,
                          "state": "I" if "kworker" in name else "S", "uid": 0, "euid": 0, "gid": 0, "user": "root",
                          "comm": name[:15], "cmdline": None, "exe": None, "cgroup": "/", "pid_ns": 4026531836,
                          "threads": 1, "kernel_thread": True, "sources": None, "mappings": 0, "pages": 0,
                          "captured_at": start, "capture_ms": 0.01, "status": "kernel_thread", "error": None})
        if smem_dir:
            d = os.path.join(smem_dir, "proc", str(kpid))
            os.makedirs(d, exist_ok=True)
            open(os.path.join(d, "smaps"), "w").close()
            _write_proc_files(d, kpid, name[:15], "S", 2, "", 1, 1 + kpid, 0, 0, None)
    pw = writer.table("processes")
    names = pw.schema.names
    proc_rows.sort(key=lambda r: r["pid"])
    pw.write(pa.Table.from_pylist([{n: r.get(n) for n in names} for r in proc_rows], schema=pw.schema))
    return totals


def _write_proc_files(d, pid, comm, state, ppid, cmdline, threads, starttime, vm_size_kb, rss_pages, row):
    with open(os.path.join(d, "cmdline"), "w") as f:
        f.write(cmdline.replace(" ", "\0") + "\0" if cmdline else "")
    flags = 0x00208040 if not cmdline else 0x00400100
    fields = [pid, f"({comm})", state, ppid, pid, pid, 0, -1, flags, 1000, 0, 10, 0, 120, 30, 0, 0, 20, 0, threads, 0,
              starttime, vm_size_kb * 1024, rss_pages, 18446744073709551615, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17,
              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    with open(os.path.join(d, "stat"), "w") as f:
        f.write(" ".join(str(x) for x in fields) + "\n")
    with open(os.path.join(d, "status"), "w") as f:
        lines = [f"Name:\t{comm}", f"State:\t{state}", f"Pid:\t{pid}", f"PPid:\t{ppid}", f"Threads:\t{threads}"]
        if row:
            lines[4:4] = [f"Uid:\t{row['uid']}\t{row['euid']}\t{row['euid']}\t{row['euid']}",
                          f"Gid:\t{row['gid']}\t{row['gid']}\t{row['gid']}\t{row['gid']}"]
            for key, col in (("VmPeak", "vm_peak_kb"), ("VmSize", "vm_size_kb"), ("VmHWM", "vm_hwm_kb"),
                             ("VmRSS", "vm_rss_kb"), ("RssAnon", "rss_anon_kb"), ("RssFile", "rss_file_kb"),
                             ("RssShmem", "rss_shmem_kb"), ("VmData", "vm_data_kb"), ("VmSwap", "vm_swap_kb")):
                lines.append(f"{key}:\t{row[col]:>8} kB")
        f.write("\n".join(lines) + "\n")


def _write_frames(writer, sid, counts, perm, r_start, r_kind, r_memcg, chunk_rows) -> int:
    """frames rows in PFN order: physical chunk p holds frame ids invperm[p]*64 .. +63."""
    fw = writer.table("frames")
    sid_b = sid.encode()
    n_lids = counts.size
    invperm = np.argsort(perm)
    n = 0
    # the zero page comes first (lowest PFN)
    fw.write({"snapshot_id": [sid], "pfn": [ZERO_PFN], "mapcount": [0], "flags": [ZERO_FLAGS], "memcg_ino": [0],
              "recorder_refs": [None]})  # no recorder ran: its references unknown, as in a store before schema 3
    n += 1
    flags_lut = np.array([FLAGS_BY_KIND[k] for k in range(4)], np.uint64)
    step = max(1, chunk_rows // PFN_CHUNK)
    off = np.arange(PFN_CHUNK, dtype=np.int64)
    for p0 in range(0, invperm.size, step):
        pch = np.arange(p0, min(p0 + step, invperm.size), dtype=np.int64)
        lids = (invperm[pch][:, None] * PFN_CHUNK + off).ravel()
        pfn = (PFN_BASE + np.repeat(pch, PFN_CHUNK) * PFN_CHUNK_STRIDE + np.tile(off, pch.size)).astype(np.uint64)
        ok = lids < n_lids
        lids, pfn = lids[ok], pfn[ok]
        mcount = counts[lids]
        used = mcount > 0
        lids, pfn, mcount = lids[used], pfn[used], mcount[used].astype(np.int64)
        if not lids.size:
            continue
        ri = np.searchsorted(r_start, lids, side="right") - 1
        kind = r_kind[ri]
        flags = flags_lut[kind]
        flags[(kind == K_ANON) & (mcount == 1)] |= np.uint64(1 << KPF_ANON_EXCLUSIVE)
        m = lids.size
        offsets = np.arange(m + 1, dtype=np.int32) * len(sid_b)
        fw.write(pa.table({"snapshot_id": pa.StringArray.from_buffers(m, pa.py_buffer(offsets), pa.py_buffer(sid_b * m)),
                           "pfn": pfn, "mapcount": mcount, "flags": flags,
                           "memcg_ino": r_memcg[ri].astype(np.uint64), "recorder_refs": pa.nulls(m, pa.int64())},
                          schema=fw.schema))
        n += m
    return n


def _meminfo(counts, r_start, r_kind, stats) -> list[tuple[str, int]]:
    # frames in use per lid range (no per-frame temporaries: ranges are contiguous)
    used_per_range = np.add.reduceat(counts > 0, r_start, dtype=np.int64) if counts.size else np.zeros(0, np.int64)
    by_kind = {k: int(used_per_range[r_kind == k].sum()) for k in FLAGS_BY_KIND}
    anon, shmem, filek = by_kind[K_ANON] * 4, by_kind[K_SHMEM] * 4, by_kind[K_FILE] * 4
    mapped = anon + shmem + filek
    total = max(4 * 1024 * 1024, int(mapped * 1.6) // 4096 * 4096)
    cached = filek * 3 + shmem
    free = max(0, total - anon - cached - 600_000)
    swap_total = max(0, stats["swap_pages"] * 4 * 2)
    return [("MemTotal", total), ("MemFree", free), ("MemAvailable", free + cached - shmem), ("Buffers", 120_000),
            ("Cached", cached), ("SwapCached", 0), ("Active", anon + filek), ("Inactive", filek * 2),
            ("AnonPages", anon), ("Mapped", filek + shmem), ("Shmem", shmem), ("KReclaimable", 90_000),
            ("Slab", 250_000), ("SReclaimable", 90_000), ("SUnreclaim", 160_000), ("KernelStack", 16_000),
            ("PageTables", 60_000), ("SecPageTables", 0), ("SwapTotal", swap_total),
            ("SwapFree", swap_total - stats["swap_pages"] * 4), ("Percpu", 8_000), ("Hugetlb", 0)]


def _smem_globals(smem_dir, meminfo):
    with open(os.path.join(smem_dir, "proc", "meminfo"), "w") as f:
        for k, v in meminfo:
            f.write(f"{k + ':':<16}{v:>8} kB\n")
    with open(os.path.join(smem_dir, "proc", "version"), "w") as f:
        f.write("Linux version 6.18.44-synth (synth@memsnap) (gcc (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--procs", type=int, default=1000, help="user processes (default 1000)")
    ap.add_argument("--pages", type=parse_count, default=parse_count("5M"),
                    help="approximate total pages rows, e.g. 1M, 5M, 50M (default 5M)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True, help="store directory (created; a new snapshot is added)")
    ap.add_argument("--smem-dir", default=None, help="also write the capture as DIR/proc/<pid>/{smaps,cmdline,stat,"
                                                     "status}, DIR/proc/meminfo, DIR/proc/version for `smem -S DIR`")
    ap.add_argument("--host", default="synth")
    ap.add_argument("--kthreads", type=int, default=20, help="kernel thread rows (no memory)")
    ap.add_argument("--page-order", choices=("pid", "vpn", "entry"), default=None,
                    help="row order of pages inside each row group (default: the recorder's, from the schema)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    info = generate(a.procs, a.pages, a.seed, a.out, a.smem_dir, a.host, a.kthreads, verbose=not a.quiet,
                    page_order=a.page_order)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
