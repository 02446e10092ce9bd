"""Snapshots and choosing them: the edge resolves what the user named, the core takes ``Snapshot`` objects.

Every function here takes the committed snapshots of a store (``Store.snapshots(host)``, in capture order) and
returns some of them; nothing here reads a store.  ``where`` names the stores in error messages.

* :func:`resolve` -- ``latest`` (per host), an exact id, or a unique id prefix (``sizes``, ``shared``);
* :func:`pick_pair` -- the two snapshots a diff compares (default: the host's last two);
* :func:`select_range` -- the snapshots a trend covers (``--last`` per host, ``--since``/``--until``);
* :func:`report_snapshots` -- the report's pair (or the only snapshot) and the span of its trend.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from common.errors import MemsnapError, SnapshotNotFound


@dataclass
class Snapshot:
    snapshot_id: str
    host: str
    capture_start: object
    boot_id: str
    pfn_available: bool | None
    kpage_available: bool | None
    page_size_bytes: int
    pages_rows: int | None = None
    #: the format a snapshot was imported from (options_json's "format", e.g. "smemcap"); None if recorded
    imported_from: str | None = None

    @property
    def no_pfn_reason(self) -> str:
        """Why the snapshot has no PFNs, for the error that says so: an import from a format without PFNs
        (smem's capture has none) is not a recording made without CAP_SYS_ADMIN."""
        if self.imported_from:
            return (f"it was imported from {self.imported_from}, whose captures hold smaps only: no pagemap, "
                    "hence no PFNs")
        return "pfn_available=false: it was recorded without CAP_SYS_ADMIN (or without the pagemap source)"

    @property
    def no_pfn_hint(self) -> str:
        """What gets PFNs: recording the host with memsnap as root (an import never can)."""
        if self.imported_from:
            return "record the host with `memsnap record` as root for page-level figures"
        return "record as root"

    @property
    def has_pages(self) -> bool:
        """PFNs and kpagecount/kpageflags were both recorded: page-level figures can be computed."""
        return bool(self.pfn_available and self.kpage_available)


class BadTime(MemsnapError):
    """A --since/--until value that is neither an ISO timestamp nor a relative time."""


class BadOption(MemsnapError):
    pass


def host_spec(spec):
    """``--host`` as given (None, a name, or a list of names and ``~regex`` entries) in its simplest form: None,
    a name (one plain entry, which narrows the files read to that host's partitions), or the list."""
    if not spec:
        return None
    if isinstance(spec, str):
        return spec
    spec = list(spec)
    return spec[0] if len(spec) == 1 and not spec[0].startswith("~") else spec


def match_hosts(hosts, spec) -> list[str] | None:
    """The hosts ``spec`` (``--host``, repeatable) chooses among ``hosts``: None (every host), one name, or a
    list whose entries are exact names or, after a ``~``, regular expressions (Python's ``re``, matching the
    whole name: ``~web-[0-9]+``).  An entry that matches no host is an error naming the hosts there are."""
    if spec is None:
        return None
    hosts = sorted(set(hosts))
    chosen: list[str] = []
    for entry in ([spec] if isinstance(spec, str) else spec):
        if entry.startswith("~"):
            try:
                rx = re.compile(entry[1:])
            except re.error as e:
                raise BadOption(f"--host {entry!r} is not a valid regular expression ({e})",
                                hint="write --host '~REGEX' (Python syntax, matching the whole name), e.g. "
                                     "--host '~web-[0-9]+'") from None
            found = [h for h in hosts if rx.fullmatch(h)]
        else:
            found = [entry] if entry in hosts else []
        if not found:
            raise SnapshotNotFound(f"--host {entry!r} matches no host of the stores ({', '.join(hosts) or 'none'})",
                                   hint="give a host name as `memsnap snapshots` lists it, or ~REGEX")
        chosen += [h for h in found if h not in chosen]
    return chosen


def _none_committed(where: str, host, hint: str) -> SnapshotNotFound:
    host = host_spec(host)
    host = host if host is None or isinstance(host, str) else " ".join(host)
    return SnapshotNotFound(f"{where}: no committed snapshots{f' for host {host!r}' if host else ''}", hint=hint)


def resolve(snaps: list[Snapshot], snapshot: str | None = "latest", *, host: str | None = None,
            where: str = "store") -> list[Snapshot]:
    """``latest`` (one per host), an exact id, or a unique id prefix (one per host holding it)."""
    if not snaps:
        raise _none_committed(where, host, "record one with `memsnap record`, or check --host")
    if snapshot in (None, "latest"):
        return list({s.host: s for s in snaps}.values())  # the last of each host (snaps are in capture order)
    hits = [s for s in snaps if s.snapshot_id == snapshot] or [s for s in snaps if s.snapshot_id.startswith(snapshot)]
    if not hits:
        raise SnapshotNotFound(f"{where}: no snapshot {snapshot!r}", hint="list them with `memsnap snapshots`")
    ids = sorted({s.snapshot_id for s in hits})
    if len(ids) > 1:  # one id under several hosts (merged copies) is not ambiguous: one snapshot per host
        raise SnapshotNotFound(f"snapshot prefix {snapshot!r} is ambiguous ({len(ids)} matches: "
                               f"{', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})",
                               hint="give more characters of the id")
    return hits


def resolve_one(snaps: list[Snapshot], snapshot: str | None = "latest", *, host: str | None = None,
                where: str = "store") -> Snapshot:
    """:func:`resolve`, refusing a choice that names one snapshot on each of several hosts."""
    chosen = resolve(snaps, snapshot, host=host, where=where)
    if len(chosen) > 1:
        raise MemsnapError(f"{len(chosen)} hosts have a latest snapshot ({', '.join(s.host for s in chosen)})",
                           hint="pick one with --host or --snapshot")
    return chosen[0]


def _key(s: Snapshot) -> tuple:
    return s.capture_start, s.snapshot_id


def pick_pair(snaps: list[Snapshot], from_id: str | None = None, to_id: str | None = None,
              host: str | None = None, *, where: str = "store") -> tuple[Snapshot, Snapshot]:
    """The diff's two snapshots: both given; one given and its neighbour; or the host's last two."""
    def one(spec):
        return resolve(snaps, spec, host=host, where=where)[0]

    if from_id and to_id:
        return one(from_id), one(to_id)
    if from_id:
        before = one(from_id)
        later = [s for s in snaps if s.host == before.host and _key(s) > _key(before)]
        if not later:
            raise MemsnapError(f"no snapshot of host {before.host} after {before.snapshot_id}",
                               hint="give --to, or record another snapshot")
        return before, later[-1]
    hosts = sorted({s.host for s in snaps})
    if len(hosts) > 1:
        raise MemsnapError(f"the stores hold {len(hosts)} hosts ({', '.join(hosts)}): which two snapshots?",
                           hint="pass --host NAME for its last two snapshots, or --from ID --to ID")
    if to_id:
        after = one(to_id)
        earlier = [s for s in snaps if _key(s) < _key(after)]
        if not earlier:
            raise MemsnapError(f"no snapshot before {after.snapshot_id}", hint="give --from")
        return earlier[-1], after
    if len(snaps) < 2:
        raise MemsnapError(f"need two snapshots to diff, the store has {len(snaps)}",
                           hint="record another one with `memsnap record`")
    return snaps[-2], snaps[-1]


def report_snapshots(snaps: list[Snapshot], from_id: str | None = None, to_id: str | None = None,
                     host: str | None = None, *, where: str = "store") -> tuple[list[Snapshot], list[Snapshot]]:
    """The report's pair (as :func:`pick_pair`; a store of one snapshot: that one alone), and the snapshots of
    the later one's host captured from the first to the last of them (its trend section)."""
    if not snaps:
        raise MemsnapError("no committed snapshots to report on", hint="record some with `memsnap record`")
    hosts = sorted({s.host for s in snaps})
    if host is None and len(hosts) > 1 and not (from_id and to_id):
        raise MemsnapError(f"the stores hold {len(hosts)} hosts ({', '.join(hosts)})", hint="pick one with --host")
    pair = snaps[:1] if len(snaps) == 1 and not from_id and not to_id else \
        list(pick_pair(snaps, from_id, to_id, host, where=where))
    before, after = pair[0], pair[-1]
    span = [s for s in snaps if s.host == after.host and before.capture_start <= s.capture_start <= after.capture_start]
    return pair, span


_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)(?:\s+ago)?$")
_UNIT_S = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value, option: str = "--since", now: datetime | None = None) -> datetime:
    """An ISO timestamp (naive = local time), or a time relative to ``now``: ``30m``, ``2h``, ``1d``, ``90s``, ``1w``."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.astimezone()
    text = str(value).strip()
    m = _REL.match(text.lower())
    if m:
        now = now or datetime.now(timezone.utc)
        return now - timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadTime(f"{option} {text!r} is neither an ISO timestamp nor a relative time",
                      hint="use e.g. 2026-11-25T18:00, '2026-11-25 18:00:00+00:00', or a time ago: 30m, 2h, 1d, "
                           "90s, 1w") from None
    return dt if dt.tzinfo else dt.astimezone()  # naive: local time, as the tables print it


def _last_per_host(snaps: list[Snapshot], last: int) -> list[Snapshot]:
    if last < 1:
        raise BadOption(f"--last {last} must be at least 1", hint="give the number of snapshots to keep")
    per_host: dict[str, list[Snapshot]] = {}
    for s in snaps:
        per_host.setdefault(s.host, []).append(s)
    keep = {id(s) for ss in per_host.values() for s in ss[-last:]}
    return [s for s in snaps if id(s) in keep]


def parse_range(since=None, until=None) -> tuple[datetime | None, datetime | None]:
    """``--since``/``--until`` as datetimes (None where not given); since after until is an error."""
    lo = parse_time(since, "--since") if since is not None else None
    hi = parse_time(until, "--until") if until is not None else None
    if lo and hi and lo > hi:
        raise BadTime(f"--since {lo.isoformat()} is after --until {hi.isoformat()}", hint="swap them")
    return lo, hi


def range_pair(snaps: list[Snapshot], host: str | None = None, *, where: str = "store") -> tuple[Snapshot, Snapshot]:
    """The first and the last of ``snaps`` (already cut to a --since/--until range) of one host: what changed
    over the range."""
    hosts = sorted({s.host for s in snaps})
    if len(hosts) > 1:
        raise MemsnapError(f"the range holds snapshots of {len(hosts)} hosts ({', '.join(hosts)})",
                           hint="pick one with --host")
    if len(snaps) < 2:
        raise SnapshotNotFound(f"only {len(snaps)} snapshot in the --since/--until range of {where}; a diff needs two",
                               hint="widen the range, or list the snapshots with `memsnap snapshots`")
    return snaps[0], snaps[-1]


def select_range(snaps: list[Snapshot], *, host: str | None = None, last: int | None = None, since=None,
                 until=None, where: str = "store") -> list[Snapshot]:
    """Snapshots in time order captured within ``since``..``until``; ``last`` keeps the last N of each host."""
    if not snaps:
        raise _none_committed(where, host, "record some with `memsnap record --interval 60 --count 0`, or check "
                                           "--host")
    lo, hi = parse_range(since, until)
    chosen = [s for s in snaps if (lo is None or s.capture_start >= lo) and (hi is None or s.capture_start <= hi)]
    if last is not None:
        chosen = _last_per_host(chosen, last)
    if not chosen:
        span = f"{snaps[0].capture_start.isoformat()} .. {snaps[-1].capture_start.isoformat()}"
        raise SnapshotNotFound(f"no snapshot between --since and --until (the store holds {len(snaps)}, "
                               f"captured {span})", hint="widen --since/--until, or list them with `memsnap snapshots`")
    return chosen
