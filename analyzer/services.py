"""Which service a cgroup path belongs to: a systemd unit, a container, a Kubernetes pod.

One registry, :data:`PATTERNS`: each entry matches one segment of a cgroup path (``/``-separated) and names a
service of a kind.  The deepest segment that matches names the path's service (a container inside a pod is
the container; the pod is kept in ``pod``).  Paths seen on this machine and the forms of each runtime are in
tests/test_physmem.py.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    kind: str
    regex: re.Pattern
    #: the segment before this one must match this (cgroupfs drivers: /docker/<id>, /kubepods/.../pod<uid>)
    parent: re.Pattern | None = None
    #: how the service is named from the match: the id shortened to 12 characters for containers
    short: bool = False


def _p(kind, rx, parent=None, short=False):
    return Pattern(kind, re.compile(rx), re.compile(parent) if parent else None, short)


_ID = r"(?P<id>[0-9a-f]{12,64})"
#: segment patterns, most specific first (the first that matches a segment names it)
PATTERNS = (
    _p("docker", rf"^docker-{_ID}\.scope$", short=True),                    # systemd cgroup driver
    _p("docker", rf"^{_ID}$", parent=r"^docker$", short=True),              # cgroupfs driver: /docker/<id>
    _p("containerd", rf"^cri-containerd-{_ID}\.scope$", short=True),
    _p("crio", rf"^crio-{_ID}\.scope$", short=True),
    _p("podman", rf"^libpod-{_ID}\.scope$", short=True),
    _p("containerd", rf"^{_ID}$", parent=r"^pod[0-9a-f_-]{36}$", short=True),  # cgroupfs: /kubepods/.../pod<uid>/<id>
    _p("pod", r"^kubepods(?:-[a-z]+)*-pod(?P<id>[0-9a-f_]{36})\.slice$"),    # systemd driver (uid with _)
    _p("pod", r"^pod(?P<id>[0-9a-f-]{36})$", parent=r"^(kubepods|besteffort|burstable|guaranteed)"),
    _p("systemd", r"^(?P<id>[^/]+\.(?:service|scope|socket|mount|swap|target))$"),
)


@dataclass(frozen=True)
class Service:
    name: str   # e.g. nginx.service, docker:0123456789ab, pod:<uid>
    kind: str   # systemd | docker | containerd | crio | podman | pod | cgroup | root
    pod: str | None = None  # the Kubernetes pod uid, when the path is in one


def service_of(path: str | None) -> Service:
    """The service of a cgroup path: the deepest segment a pattern of :data:`PATTERNS` matches."""
    if not path or path == "/":
        return Service("(root)", "root")
    segs = [s for s in path.split("/") if s]
    found, pod = None, None
    for i, seg in enumerate(segs):
        parent = segs[i - 1] if i else ""
        for p in PATTERNS:
            m = p.regex.match(seg)
            if m and (p.parent is None or p.parent.match(parent)):
                ident = m.group("id")
                if p.kind == "pod":
                    ident = ident.replace("_", "-")
                    pod = ident
                name = ident if p.kind == "systemd" else f"{p.kind}:{ident[:12] if p.short else ident}"
                found = (name, p.kind)
                break
    if found is None:
        return Service(path, "cgroup")
    return Service(found[0], found[1], pod)
