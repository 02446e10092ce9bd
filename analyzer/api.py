"""The analyzer's API, the edge: what the user names (``latest``, ids, prefixes, --from/--to, --last,
--since/--until) is resolved here, once, to :class:`~analyzer.snapshots.Snapshot` objects, and the core
(:mod:`analyzer.sizes`, :mod:`analyzer.diff`, :mod:`analyzer.shared`, :mod:`analyzer.trend`,
:mod:`analyzer.report`) is called with them.

    from analyzer import open_store
    with open_store("memsnap-store") as st:
        st.sizes(by="user").rows
        st.diff(by="command").summary()
        st.sql("SELECT * FROM process_sizes_smaps").arrow()
"""
from __future__ import annotations

from . import snapshots as _snapshots
from . import store as _store

# The core modules (diff, report, shared, sizes, trend) are imported by the method that uses them: sizes
# brings SQLAlchemy, report matplotlib, and ``memsnap snapshots`` (or ``sql``) needs neither.


class Store(_store.Store):
    """A store (SQL, views, snapshots, SQLAlchemy tables) with the CLI's operations."""

    def sizes(self, *, by: str = "process", source: str = "smaps", snapshot: str | None = "latest",
              host: str | list[str] | None = None, processfilter: str | None = None, userfilter: str | None = None,
              mapfilter: str | None = None, sort: str | None = None, reverse: bool = False, columns=None,
              numeric: bool = False, limit: int | None = None,
              without_recorder: bool = False) -> _sizes.SizesResult:
        """Set sizes of ``snapshot`` (``latest``: the last of each host), per ``by`` view.  ``without_recorder``:
        page figures as if the recorder were not running (:meth:`Store.without_recorder`)."""
        from . import sizes as _sizes

        snaps = self.resolve(snapshot, host)
        if without_recorder:
            self.without_recorder()
        res = _sizes.sizes(self, snaps, by=by, source=source, processfilter=processfilter, userfilter=userfilter,
                           mapfilter=mapfilter, sort=sort, reverse=reverse, columns=columns, numeric=numeric,
                           limit=limit)
        if without_recorder:
            res.notes.append(_sizes.observer_note(self, snaps, applied=True))
        hosts = sorted({s.host for s in snaps})
        if len(hosts) > 1:
            which = "latest snapshot of each" if snapshot in (None, "latest") else f"snapshot {snapshot!r} of each"
            res.notes.append(f"{len(hosts)} hosts: {which} ({', '.join(hosts)})")
        return res

    def diff(self, *, from_id: str | None = None, to_id: str | None = None, host: str | list[str] | None = None,
             by: str = "process", source: str = "smaps", processfilter: str | None = None,
             userfilter: str | None = None, mapfilter: str | None = None, min_change: int = 0,
             sort: str | None = None, reverse: bool = False, normalize: bool | None = None,
             since=None, until=None) -> _diff.DiffResult:
        """``from_id`` -> ``to_id`` (default: the host's last two snapshots; with ``since``/``until``, the
        first and the last snapshot captured in that range)."""
        from . import diff as _diff

        before, after = self._pair(from_id, to_id, host, since, until)
        return _diff.diff(self, before, after, by=by, source=source, processfilter=processfilter,
                          userfilter=userfilter, mapfilter=mapfilter, min_change=min_change, sort=sort,
                          reverse=reverse, normalize=normalize)

    def memory(self, *, by: str = "class", snapshot: str | None = "latest", host: str | list[str] | None = None,
               columns=None):
        """Where the memory went (physmem source): by frame class, memory cgroup or service."""
        from . import memory as _memory

        snap = _snapshots.resolve_one(self.snapshots(host), snapshot, host=host, where=self.where)
        return _memory.memory(self, snap, by=by, columns=columns)

    def shared(self, view: str = "groups", *, snapshot: str | None = "latest", host: str | list[str] | None = None,
               groups: str = "command", processfilter: str | None = None, userfilter: str | None = None,
               mapfilter: str | None = None, detail: bool = False, limit: int | None = None) -> _shared.Table:
        """Shared-page attribution: ``view`` is groups | pairs | mapping | histogram | flags | reconcile."""
        from . import shared as _shared

        snap = _snapshots.resolve_one(self.snapshots(host), snapshot, host=host, where=self.where)
        return _shared.shared(self, snap, view, groups=groups, processfilter=processfilter, userfilter=userfilter,
                              mapfilter=mapfilter, detail=detail, limit=limit)

    def trend(self, *, by: str = "process", host: str | list[str] | None = None, last: int | None = None, since=None,
              until=None, source: str = "smaps", processfilter: str | None = None, userfilter: str | None = None,
              mapfilter: str | None = None, progress=None) -> _trend.TrendResult:
        """A series over the snapshots captured ``since``..``until`` (the ``last`` N of each host)."""
        from . import trend as _trend

        snaps = _snapshots.select_range(self.snapshots(host), host=host, last=last, since=since, until=until,
                                        where=self.where)
        return _trend.trend(self, snaps, by=by, source=source, processfilter=processfilter, userfilter=userfilter,
                            mapfilter=mapfilter, progress=progress)

    def _pair(self, from_id, to_id, host, since, until):
        snaps = self.snapshots(host)
        if since is None and until is None:
            return _snapshots.pick_pair(snaps, from_id, to_id, host, where=self.where)
        snaps = _snapshots.select_range(snaps, host=host, since=since, until=until, where=self.where)
        if from_id or to_id:  # resolved among the range's snapshots
            return _snapshots.pick_pair(snaps, from_id, to_id, host, where=self.where)
        return _snapshots.range_pair(snaps, host, where=self.where)

    def time_range(self, since=None, until=None):
        """``since``/``until`` (ISO or relative) as datetimes, None where not given."""
        return _snapshots.parse_range(since, until)

    def report(self, *, from_id: str | None = None, to_id: str | None = None, host: str | list[str] | None = None,
               by: str = "command", top: int = 15, progress=None, since=None, until=None) -> _report.Report:
        """The HTML report on ``from_id`` -> ``to_id`` (default: the host's last two snapshots; with
        ``since``/``until``, the first and the last of that range, and the range's trend)."""
        from . import report as _report

        if since is None and until is None:
            pair, span = _snapshots.report_snapshots(self.snapshots(host), from_id, to_id, host, where=self.where)
        else:
            snaps = _snapshots.select_range(self.snapshots(host), host=host, since=since, until=until,
                                            where=self.where)
            if not from_id and not to_id and len(snaps) > 1:  # the whole range: its first and last snapshot
                first, last = _snapshots.range_pair(snaps, host, where=self.where)
                from_id, to_id = first.snapshot_id, last.snapshot_id
            pair, span = _snapshots.report_snapshots(snaps, from_id, to_id, host, where=self.where)
        return _report.build(self, pair, span, by=by, top=top, progress=progress)


def open_store(paths, *, memory_limit: str | None = None, threads: int | None = None,
               skip_bad: bool = False, scope=None, engine: str | None = None,
               spark_master: str | None = None) -> Store:
    """Open one or more stores (paths or globs; several merge) for analysis.  ``scope``
    (:class:`common.catalog.Scope`, or :func:`scope_for`): only the partitions and files a question needs.
    ``engine``: ``duckdb`` (default, or $MEMSNAP_ENGINE) or ``spark`` (:mod:`analyzer.spark`, on
    ``spark_master``, default $MEMSNAP_SPARK_MASTER or ``local[*]``): the same queries, the same answers."""
    engine = _store.engine_of(engine)
    st = Store(paths, memory_limit=memory_limit, threads=threads, skip_bad=skip_bad, scope=scope)
    if engine == "spark":
        from . import spark

        try:
            spark.attach(st, spark_master)
        except BaseException:
            st.close()
            raise
    return st


def scope_for(*, host: str | list[str] | None = None, ids=(), latest: int | None = None, since=None, until=None,
              tables=None):
    """The scope of a question: ``since``/``until`` (as the commands take them) -> their UTC times; else ids
    or prefixes -> the snapshots they can name ('latest' among them: the last of each host); else ``latest``
    -> the last N of each host; else every snapshot (None when ``tables``, the tables read, is None too)."""
    from datetime import timedelta, timezone

    from common.catalog import Scope
    from common.layout import ID_TIME

    host = _snapshots.host_spec(host)
    if not isinstance(host, str):  # --host repeated or a ~regex: every host's files, chosen among later
        host = None

    if since is not None or until is not None:
        lo, hi = _snapshots.parse_range(since, until)
        def day(t, margin):  # a relative time is parsed again later, a little later: a minute's margin
            return None if t is None else (t + timedelta(seconds=margin)).astimezone(timezone.utc).strftime(ID_TIME)

        return Scope(since=day(lo, -60), until=day(hi, 60), host=host, tables=tables)
    if ids and "latest" not in ids:
        return Scope(prefixes=tuple(ids), host=host, tables=tables)
    if ids:
        latest = 1
    if latest:
        return Scope(latest=latest, host=host, tables=tables)
    return Scope(host=host, tables=tables) if tables else None
