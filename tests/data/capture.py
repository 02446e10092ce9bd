#!/usr/bin/env python3
"""Captures the real /proc text used by tests/test_parsers.py (run as root on Linux; output in this dir).

* ``cat.*``     maps/smaps/smaps_rollup/status/stat/cmdline/cgroup of a stopped ``cat - "arg with space"`` (stopped, so
  maps, smaps and smaps_rollup describe the same address space);
* ``odd.stat``/``odd.status``  a process whose comm contains spaces, parentheses and ')';
* ``kthread.*`` pid 2 (kthreadd); ``zombie.*`` an unreaped child; ``meminfo``.
"""
import ctypes
import os
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def save(name, data):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def read(path):
    with open(path, "rb") as f:
        return f.read()


p = subprocess.Popen(["cat", "-", "arg with space"], stdin=subprocess.PIPE)
time.sleep(0.2)
os.kill(p.pid, signal.SIGSTOP)
time.sleep(0.1)
for f in ("maps", "smaps", "smaps_rollup", "status", "stat", "cmdline", "cgroup"):
    save(f"cat.{f}", read(f"/proc/{p.pid}/{f}"))
p.kill()
p.wait()

r, w = os.pipe()
pid = os.fork()
if pid == 0:
    ctypes.CDLL(None).prctl(15, b"a) b (c)) d", 0, 0, 0)  # PR_SET_NAME
    os.write(w, b"x")
    time.sleep(2)
    os._exit(0)
os.read(r, 1)
save("odd.stat", read(f"/proc/{pid}/stat"))
save("odd.status", read(f"/proc/{pid}/status"))
os.kill(pid, signal.SIGKILL)
time.sleep(0.2)  # not reaped: a zombie
save("zombie.stat", read(f"/proc/{pid}/stat"))
save("zombie.status", read(f"/proc/{pid}/status"))
save("zombie.smaps", read(f"/proc/{pid}/smaps"))
os.waitpid(pid, 0)

save("kthread.stat", read("/proc/2/stat"))
save("kthread.status", read("/proc/2/status"))
save("kthread.maps", read("/proc/2/maps"))
save("meminfo", read("/proc/meminfo"))
