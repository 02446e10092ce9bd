"""Set sizes (VSS, RSS, PSS, USS, swap, ...) per process, user, command, cgroup, mapping or system.

Two sources, one object each in :data:`SOURCES` (what differs between them: the per-mapping facts query,
whether a snapshot holds the data, how a fact becomes kB):

* ``smaps`` — the kernel's own accounting as recorded: per process its smaps_rollup where recorded (exact),
  per mapping the smaps entries, and the sum of the smaps entries as smem does for imports without a rollup;
* ``pages`` — recomputed from pagemap + kpagecount + kpageflags with the kernel's rules
  (``queries/page_mapping_facts.sql``).  PSS is kept in the kernel's fixed point
  (bytes << 12) until the output group is known, then floored once per group, as
  smaps_rollup floors once per process.

The amounts are one table, :data:`REGISTRY`: an entry names the amount, its column in each source's facts
(a pages column's suffix is its unit: ``_kb``, ``_pages`` times the page size, ``_fp`` fixed point), the
smaps_rollup/status figures that stand in for it, and the ``--by`` views that offer it.  ``AMOUNTS``,
``VIEW_COLUMNS`` (the -c/-s allowlists) and both stages of the query follow from it, so adding a column is
one entry.  For example the kernel's locked memory, once ``queries/smaps_mapping_facts.sql`` also selects
``m.locked_kb``::

    Amount("locked", smaps="locked_kb", pages=None, views=("process", "mapping", "pmap"),
           fallback=("rollup_locked_kb",)),

(``pages=None``: the pages source cannot recompute it, and shows it as null.)

Queries are built in SQLAlchemy Core's spelling with :mod:`analyzer.sqlcore` (the same text as SQLAlchemy,
without its import: docs/design.md, "Start-up"); every user-supplied value (regexes, ids) is a
bound parameter, and column names come from the registry.  Every amount is a BIGINT (plain integers in
Python, int64 in Arrow).  :func:`sizes` takes resolved snapshots (:mod:`analyzer.snapshots`).
"""
from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass, field

from common.errors import MemsnapError
from schema import PARTITION_COLUMNS, TABLES

from . import queries
from .duck import engine as duckdb  # the C++ engine alone (analyzer/duck.py)
from . import sqlcore as sa  # SQLAlchemy Core's spelling without its import (0.2-0.4 s): analyzer/sqlcore.py
from .snapshots import Snapshot
from .store import Store

BY = ("process", "user", "command", "cgroup", "mapping", "system")
_ALL = ("process", "user", "command", "cgroup", "mapping", "pmap", "memcg")  # every view of processes' mappings


@dataclass(frozen=True)
class Amount:
    """One amount column (kB).  ``views``: the --by views offering it (``pmap``: diff --by mapping's rows)."""
    name: str
    smaps: str | None  # column of smaps_mapping_facts summed, or None
    pages: str | None  # column of page_mapping_facts: *_kb, *_pages or *_fp (fixed point), or None
    views: tuple[str, ...]
    fallback: tuple[str, ...] = ()  # smaps: processes columns (added) for a process recorded without smaps
    per_process: tuple[str, ...] = ()  # smaps: processes columns used instead in views of whole processes
    average_of: str | None = None  # smem's per-process average of another amount (total / pids)
    #: smaps: the process's smaps_rollup figure, used instead of the sum of its smaps entries in views of whole
    #: processes where it was recorded (exact: the rollup floors once per process, smaps once per mapping);
    #: groups sum their processes' figures (docs/smem.md, "Per-process figures")
    rollup: str | None = None
    from_maps: bool = False  # known from maps alone: the same for processes recorded without smaps

    def from_pages(self, view: View) -> bool:
        """--source smaps: does a low-impact process (recorded without smaps and smaps_rollup) take this amount
        from pages?  Yes where the smaps source reads it from smaps or smaps_rollup; status figures (RssAnon,
        ...) and maps figures (vss) were recorded for it like for any other process."""
        if self.pages is None or self.from_maps:
            return False
        if self.per_process and not view.per_mapping:
            return any(c.startswith("rollup_") for c in self.per_process)
        return self.smaps is not None

    @property
    def fixed_point(self) -> bool:
        """Fixed point (bytes << 12), floored to kB once per output group (``>> 22``)."""
        return bool(self.pages and self.pages.endswith("_fp"))


REGISTRY = (
    Amount("swap", "swap_kb", "swap_pages", _ALL, fallback=("rollup_swap_kb",)),
    Amount("uss", "uss_kb", "uss_pages", _ALL, fallback=("rollup_private_clean_kb", "rollup_private_dirty_kb")),
    Amount("pss", "pss_kb", "pss_fp", _ALL, fallback=("rollup_pss_kb",), rollup="rollup_pss_kb"),
    Amount("rss", "rss_kb", "rss_pages", _ALL, fallback=("rollup_rss_kb",)),
    Amount("vss", "vss_kb", "vss_kb", _ALL, from_maps=True),
    Amount("avgpss", None, None, ("mapping",), average_of="pss"),
    Amount("avguss", None, None, ("mapping",), average_of="uss"),
    Amount("avgrss", None, None, ("mapping",), average_of="rss"),
    Amount("swappss", "swap_pss_kb", "swap_pss_fp", _ALL, fallback=("rollup_swap_pss_kb",),
           rollup="rollup_swap_pss_kb"),
    # the kernel reports PSS by kind and RSS by kind only per process (smaps_rollup, status)
    Amount("pss_anon", None, "pss_anon_fp", ("process", "cgroup"), per_process=("rollup_pss_anon_kb",)),
    Amount("pss_file", None, "pss_file_fp", ("process", "cgroup"), per_process=("rollup_pss_file_kb",)),
    Amount("pss_shmem", None, "pss_shmem_fp", ("process", "cgroup"), per_process=("rollup_pss_shmem_kb",)),
    Amount("anon", "anon_kb", "anon_pages", ("process", "mapping", "pmap"), per_process=("rss_anon_kb",)),
    Amount("file", None, "file_pages", ("process",), per_process=("rss_file_kb",)),
    Amount("shmem", None, "shmem_pages", ("process",), per_process=("rss_shmem_kb",)),
    Amount("hugetlb", "hugetlb_kb", "hugetlb_pages", ("process", "mapping", "pmap")),
    Amount("thp", "thp_kb", "thp_pages", ("process", "mapping", "pmap")),
)
#: every amount column (``kb``: the system view's)
AMOUNTS = tuple(a.name for a in REGISTRY) + ("kb",)

#: facts columns the rows are grouped by per mapping (the other keys are processes columns)
_MAPPING_KEYS = ("map", "perms", "offset_bytes")


@dataclass(frozen=True)
class View:
    """A --by view: its group columns as (output name, processes or facts column), its counts as (output
    name, ``maps``: mappings counted | ``pids``: distinct processes), and its default columns (smem's)."""
    name: str
    keys: tuple[tuple[str, str], ...]
    counts: tuple[tuple[str, str], ...]
    defaults: tuple[str, ...]

    @property
    def per_mapping(self) -> bool:
        return any(col in _MAPPING_KEYS for _, col in self.keys)

    @property
    def amounts(self) -> tuple[Amount, ...]:
        return tuple(a for a in REGISTRY if self.name in a.views)

    @property
    def columns(self) -> tuple[str, ...]:
        keys = [k for k, _ in self.keys]
        if "starttime" in keys:  # the start as a time, beside the raw clock ticks (see started_times)
            keys.insert(keys.index("starttime") + 1, "started")
        return ("host", "snapshot_id", *keys, *(c for c, _ in self.counts), *(a.name for a in self.amounts))


_SMEM = ("swap", "uss", "pss", "rss")
#: a group column from the view process_commands (queries/process_commands.sql), not from processes
_PROGRAM = "process_commands.command"
VIEWS = {v.name: v for v in (
    View("process", (("pid", "pid"), ("starttime", "starttime_ticks"), ("user", "user"), ("uid", "euid"),
                     ("command", "cmdline"), ("name", "comm"), ("cgroup", "cgroup"), ("exe", "exe"),
                     ("program", _PROGRAM)), (("maps", "maps"),),
         ("pid", "user", "command", *_SMEM)),
    View("user", (("user", "user"), ("uid", "euid")), (("count", "pids"),), ("user", "count", *_SMEM)),
    # the name people call a program by: for an interpreter or launcher the program it runs, else comm
    # (queries/process_commands.sql; docs/smem.md, "Command names")
    View("command", (("command", _PROGRAM),), (("count", "pids"),), ("command", "count", *_SMEM)),
    View("cgroup", (("cgroup", "cgroup"),), (("count", "pids"),), ("cgroup", "count", *_SMEM)),
    View("mapping", (("map", "map"),), (("count", "maps"), ("pids", "pids")), ("map", "pids", "avgpss", "pss")),
    # internal (memsnap memory --by cgroup): per memory cgroup (processes.memory_cgroup, schema 3)
    View("memcg", (("memcg", "memory_cgroup"),), (("count", "pids"),), ("memcg", "count", *_SMEM)),
    # internal (diff --by mapping): one row per process x mapping (path, perms, offset)
    View("pmap", (("pid", "pid"), ("starttime", "starttime_ticks"), ("name", "comm"), ("map", "map"),
                  ("perms", "perms"), ("offset", "offset_bytes")), (("count", "maps"),),
         ("pid", "map", "perms", "offset", "pss")),
)}
#: every column a view offers (the allowlist for -c and -s), and its default columns (smem's defaults)
VIEW_COLUMNS = {**{n: v.columns for n, v in VIEWS.items()},
                "system": ("host", "snapshot_id", "area", "kb", "percent")}
DEFAULT_COLUMNS = {**{n: v.defaults for n, v in VIEWS.items()}, "system": ("area", "kb", "percent")}


#: the dialect statements compile for: sqlcore writes DuckDB's SQL itself (``?`` parameters, native booleans,
#: ``/`` true division); tests/test_sizes_cli.py builds the same statements with SQLAlchemy and compiles them
#: with duckdb_engine's dialect in its place, and requires the same text
_DIALECT = None


def _processes_table(md):
    """The processes table (its columns and the Hive partition columns), as sqlcore declares it."""
    cols = [sa.Column(c.name) for c in TABLES["processes"].columns] + [sa.Column(p) for p in PARTITION_COLUMNS]
    return sa.Table("processes", md, *cols)


#: the chosen snapshots: a snapshot is (host, snapshot_id), merged stores may hold one id under several hosts
_CHOSEN = "(host, snapshot_id) IN (SELECT unnest($hosts), unnest($snapshot_ids))"
_FACT_KEYS = ("host", "snapshot_id", "pid", "idx", "map", "perms", "offset_bytes")


class SourceUnavailable(MemsnapError):
    """The snapshot lacks the data a --source needs (e.g. no PFNs)."""


class BadColumn(MemsnapError):
    pass


class BadRegex(MemsnapError):
    """A -P/-U/-M filter that is not a valid (RE2) regular expression."""


def check_regex(con, option: str, value: str | None) -> None:
    """Validate a filter with DuckDB's own regex engine (RE2), the value bound as a parameter."""
    if value is None:
        return
    try:
        con.execute("SELECT regexp_matches('', ?)", [value]).fetchall()
    except duckdb.Error as e:
        raise BadRegex(f"{option} {value!r} is not a valid regular expression ({e})",
                       hint="use RE2 syntax (https://github.com/google/re2/wiki/Syntax); escape literal "
                            "parentheses, brackets and dots with a backslash") from None


def check_filters(con, processfilter: str | None, userfilter: str | None, mapfilter: str | None) -> None:
    for option, value in (("--processfilter", processfilter), ("--userfilter", userfilter),
                          ("--mapfilter", mapfilter)):
        check_regex(con, option, value)


def _kb(expr):
    return sa.cast(sa.func.sum(expr), sa.BigInteger)


def _fp(expr):  # fixed point -> kB, floored once per output group
    return _kb(expr).op(">>")(sa.literal_column("22"))


def _added(table, columns):
    return functools.reduce(operator.add, (table.c[c] for c in columns))


class _Smaps:
    """--source smaps: the kernel's smaps figures, summed; smaps_rollup where a process has maps only."""
    name = "smaps"
    facts = "smaps_mapping_facts"
    columns = _FACT_KEYS + tuple(a.smaps for a in REGISTRY if a.smaps) + ("has_smaps",)
    kept = ("host", "snapshot_id")  # fact columns kept whatever the view (stage 1 groups by them anyway)
    read_once = True  # nothing but the sizes statement reads its facts (notes() does not): no temp table

    def check(self, snaps: list[Snapshot]) -> None:
        pass  # every snapshot has smaps or smaps_rollup figures

    def offers(self, a: Amount, view: View) -> bool:
        return bool(a.smaps or (a.per_process and not view.per_mapping))

    def fact(self, a: Amount, view: View, f):
        """Stage 1 (per process or process x mapping): the facts summed, or None if stage 2 does not use them."""
        return None if (a.per_process and not view.per_mapping) or not a.smaps else sa.func.sum(f.c[a.smaps])

    def total(self, a: Amount, view: View, s1, procs, whole: bool = True):
        """Stage 2 (per output group): kB.  ``whole``: every mapping counted (no -M filter), so a process's
        smaps_rollup figure stands for it."""
        if a.per_process and not view.per_mapping:
            return _kb(_added(procs, a.per_process))
        if a.rollup and whole and not view.per_mapping:  # exact per process; smemcap imports have no rollup
            return _kb(sa.func.coalesce(procs.c[a.rollup], s1.c[a.name]))
        return _kb(sa.func.coalesce(s1.c[a.name], _added(procs, a.fallback)) if a.fallback else s1.c[a.name])

    def notes(self, con) -> list[str]:
        return []

    def extra_facts(self, amounts, view: View, f) -> list:
        return []

    def facts_sql(self, cols: str, snaps: list[Snapshot]) -> tuple[str, dict]:
        return (f"SELECT {cols} FROM (\n{queries.get(self.facts).sql}\n) WHERE {_CHOSEN}", _chosen(snaps))


class _Pages:
    """--source pages: recomputed from PFNs and kpage data."""
    name = "pages"
    facts = "page_mapping_facts"
    columns = _FACT_KEYS + ("page_size_bytes",) + tuple(a.pages for a in REGISTRY if a.pages) + ("unknown_frames",)
    kept = ("host", "snapshot_id", "unknown_frames")  # unknown_frames: read by notes()
    read_once = False  # notes() reads the facts again, and they cost seconds at 5M pages: a temp table

    def check(self, snaps: list[Snapshot]) -> None:
        for s in snaps:
            if not s.pfn_available:
                raise SourceUnavailable(
                    f"snapshot {s.snapshot_id} has no PFNs: {s.no_pfn_reason}; sizes cannot be recomputed "
                    "from pages", hint=f"use --source smaps (the kernel's own accounting), or {s.no_pfn_hint}")
            if not s.kpage_available:
                raise SourceUnavailable(
                    f"snapshot {s.snapshot_id} has no kpagecount/kpageflags (recorded without the kpage source)",
                    hint="use --source smaps, or record with --sources including pagemap,kpage")

    def offers(self, a: Amount, view: View) -> bool:
        return a.pages is not None

    def fact(self, a: Amount, view: View, f):
        col = f.c[a.pages]
        return sa.func.sum(col * (f.c.page_size_bytes / 1024) if a.pages.endswith("_pages") else col)

    def total(self, a: Amount, view: View, s1, procs, whole: bool = True):
        return (_fp if a.fixed_point else _kb)(s1.c[a.name])

    def notes(self, con) -> list[str]:
        unknown = con.execute("SELECT coalesce(sum(unknown_frames), 0) FROM _facts").fetchall()[0][0]
        return [f"{unknown} present pages had no frames row (kpage read failed); counted as private"] if unknown \
            else []

    extra_facts = _Smaps.extra_facts
    facts_sql = _Smaps.facts_sql


class _PagesFrom(_Pages):
    """--source pages, the facts read from a table that holds ``page_mapping_facts`` of the snapshots already
    (every column; :func:`page_facts_table`): what the report computes once for its sections."""

    def __init__(self, table: str):
        self.table = table

    def facts_sql(self, cols: str, snaps: list[Snapshot]) -> tuple[str, dict]:
        return f'SELECT {cols} FROM "{self.table}" WHERE {_CHOSEN}', _chosen(snaps)


def page_facts_table(con, snaps: list[Snapshot], table: str, kinds: str | None = None) -> str:
    """``page_mapping_facts`` of ``snaps`` (one statement for all of them) into the temp table ``table``, for
    :func:`sizes` ``facts=table``.  ``kinds``: a table holding the statement's per (pid, mapping, kind of frame)
    counts of the snapshots already (``host, snapshot_id, pid, idx, cls, pages, pss_fp``: the rows of
    ``queries/page_pairs.sql`` with a host), read instead of joining the pages to the frames again."""
    sql = queries.get("page_mapping_facts").sql
    if kinds:
        sql, n = _KINDS_CTE.subn(lambda m: m.group(1) + (
            f'    SELECT snap.sk, k.pid, k.idx, k.cls, k.pages AS n, k.pss_fp FROM "{kinds}" k\n'
            "    JOIN snap ON snap.host = k.host AND snap.snapshot_id = k.snapshot_id\n"), sql, count=1)
        if n != 1:
            raise AssertionError("queries/page_mapping_facts.sql: no CTE `k AS (` ... `),` to read the kinds from")
    con.execute(f'CREATE OR REPLACE TEMP TABLE "{table}" AS SELECT * FROM (\n{sql}\n) WHERE {_CHOSEN}', _chosen(snaps))
    return table


#: page_mapping_facts' CTE ``k`` (pages per pid, mapping and kind of frame), its body replaced by page_facts_table
_KINDS_CTE = re.compile(r"^(k AS \(\n).*?(?=^\),$)", re.M | re.S)


SOURCES = {s.name: s for s in (_Smaps(), _Pages())}
_PAGE_ONLY = tuple(c for c in _Pages.columns if c not in _FACT_KEYS and c != "vss_kb")


class _SmapsWithPages(_Smaps):
    """--source smaps for snapshots holding low-impact processes (recorded without smaps and smaps_rollup:
    ``memsnap record --impact low``, or above --impact-threshold-mb).  Every mapping's smaps facts, and beside
    those processes' mappings their page facts (queries/page_mapping_facts.sql, as --source pages); each amount
    :meth:`Amount.from_pages` of theirs comes from the page facts, floored per output group as --source pages
    does, and is added to the smaps figures of the other processes of the group."""
    columns = _Smaps.columns + _PAGE_ONLY + ("from_pages",)
    kept = _Smaps.kept + ("unknown_frames",)
    read_once = False  # notes() reads unknown_frames of the facts

    def __init__(self, low: list[tuple], snaps: list[Snapshot]):
        with_pages = {(s.host, s.snapshot_id) for s in snaps if s.has_pages}
        self.low = [r for r in low if (r[0], r[1]) in with_pages]   # (host, snapshot_id, pid, comm)
        self.blind = [r for r in low if (r[0], r[1]) not in with_pages]  # no PFNs or kpage: figures unknown
        self.snaps = {(s.host, s.snapshot_id): s for s in snaps}

    def extra_facts(self, amounts, view: View, f) -> list:
        pages = SOURCES["pages"]
        return [(a.name + "_pages", pages.fact(a, view, f)) for a in amounts if a.from_pages(view)] + \
            [("from_pages", sa.func.bool_or(f.c.from_pages))]

    def total(self, a: Amount, view: View, s1, procs, whole: bool = True):
        smaps = super().total(a, view, s1, procs, whole)
        if not a.from_pages(view):
            return smaps
        pages = (_fp if a.fixed_point else _kb)(s1.c[a.name + "_pages"])
        return sa.func.coalesce(smaps + pages, smaps, pages)  # a group may hold either kind, or both

    def facts_sql(self, cols: str, snaps: list[Snapshot]) -> tuple[str, dict]:
        params = {**_chosen(snaps), "low_hosts": [r[0] for r in self.low], "low_snapshot_ids": [r[1] for r in self.low],
                  "low_pids": [r[2] for r in self.low]}
        keys = ("host", "snapshot_id", "pid", "idx")
        if not self.low:  # only processes without page data: no page facts to compute
            return (f"SELECT {cols} FROM (SELECT s.*, {', '.join(f'NULL::BIGINT AS {c}' for c in _PAGE_ONLY)}, "
                    f"false AS from_pages FROM (\n{queries.get('smaps_mapping_facts').sql}\n) s) WHERE {_CHOSEN}",
                    _chosen(snaps))
        sql = (f"SELECT {cols} FROM (SELECT s.*, {', '.join('p.' + c for c in _PAGE_ONLY)}, p.pid IS NOT NULL AS "
               f"from_pages FROM (\n{queries.get('smaps_mapping_facts').sql}\n) s LEFT JOIN (SELECT * FROM (\n"
               f"{queries.get('page_mapping_facts').sql}\n) WHERE (host, snapshot_id, pid) IN (SELECT unnest($low_hosts), "
               "unnest($low_snapshot_ids), unnest($low_pids))) p ON "
               + " AND ".join(f"p.{k} = s.{k}" for k in keys) + f") WHERE {_CHOSEN}")
        return sql, params

    def notes(self, con) -> list[str]:
        out = []
        if self.low:
            out.append(f"{_pids(self.low)} recorded in low-impact mode (no smaps, no smaps_rollup): "
                       "figures from pages, as --source pages computes them")
            out += SOURCES["pages"].notes(con)
        for (host, sid), rows in _by_snapshot(self.blind).items():
            s = self.snaps[(host, sid)]
            why = s.no_pfn_reason if not s.pfn_available else "no kpagecount/kpageflags (recorded without kpage)"
            out.append(f"{_pids(rows)} recorded in low-impact mode (no smaps, no smaps_rollup) in snapshot {sid}, "
                       f"which has no page data ({why}): their rss, pss, uss and swap are unknown (empty)")
        return out


def observer_note(store: Store, snaps: list[Snapshot], applied: bool = False) -> str:
    """One line on the observer's effect (docs/design.md, "The observer"): how many frames of the recorded
    processes the recorder itself mapped while it read kpagecount, and whether the figures leave it out."""
    effect = store.recorder_effect(snaps)
    if not effect:
        return "the recorder's own references to frames were not recorded (a store before schema 3, or no PFNs): " \
               "page figures are as the kernel counted them during the capture, the recorder's mappings included"
    frames = sum(r[2] for r in effect)
    refs = sum(r[3] for r in effect)
    return (f"the recorder itself mapped {frames:,} of the recorded processes' frames ({refs:,} references: "
            "shared libraries such as libc and the Python runtime), lowering their PSS during the capture; "
            + ("--without-recorder: page figures leave those references out" if applied else
               "sizes --source pages --without-recorder leaves them out"))


def _pids(rows: list[tuple], most: int = 8) -> str:
    shown = ", ".join(f"{r[2]} ({r[3]})" for r in rows[:most]) + (f" and {len(rows) - most} more" if len(rows) > most
                                                                  else "")
    return f"{len(rows)} process(es), pid {shown},"


def _by_snapshot(rows: list[tuple]) -> dict:
    out: dict = {}
    for r in rows:
        out.setdefault((r[0], r[1]), []).append(r)
    return out


def low_impact_processes(con, snaps: list[Snapshot]) -> list[tuple]:
    """(host, snapshot_id, pid, comm) of the processes of ``snaps`` recorded without smaps and smaps_rollup."""
    chosen = {(s.host, s.snapshot_id) for s in snaps}
    rows = queries.run(con, "process_impact", {"snapshot_ids": sorted({s.snapshot_id for s in snaps})})
    return [(h, sid, pid, comm) for h, sid, pid, comm, _, low in rows.fetchall() if low and (h, sid) in chosen]


@dataclass
class SizesResult:
    by: str
    source: str
    columns: list[str]
    rows: list[dict]
    snapshots: list = field(default_factory=list)
    memtotal_kb: dict = field(default_factory=dict)
    swaptotal_kb: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def check_columns(by: str, names, what: str) -> None:
    allowed = VIEW_COLUMNS[by]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise BadColumn(f"unknown {what} {', '.join(bad)} for --by {by}", hint=f"choose from: {' '.join(allowed)}")


def _compile(stmt) -> tuple[str, list]:
    c = stmt.compile(dialect=_DIALECT, compile_kwargs={"render_postcompile": True})
    return str(c), [c.params[k] for k in (c.positiontup or [])]


def _chosen(snaps: list[Snapshot]) -> dict:
    return {"hosts": [s.host for s in snaps], "snapshot_ids": [s.snapshot_id for s in snaps]}


def _meminfo_totals(con, snaps: list[Snapshot]) -> tuple[dict, dict]:
    """MemTotal and SwapTotal (kB) by snapshot id."""
    out: dict[str, dict] = {"MemTotal": {}, "SwapTotal": {}}
    for key, sid, kb in con.execute("SELECT key, snapshot_id, value_kb FROM meminfo WHERE key IN ('MemTotal', "
                                    f"'SwapTotal') AND {_CHOSEN}", _chosen(snaps)).fetchall():
        out[key][sid] = kb
    return out["MemTotal"], out["SwapTotal"]


def sizes(store: Store, snaps: list[Snapshot], *, by: str = "process", source: str = "smaps",
          processfilter: str | None = None, userfilter: str | None = None, mapfilter: str | None = None,
          sort: str | None = None, reverse: bool = False, columns=None, numeric: bool = False,
          limit: int | None = None, facts: str | None = None) -> SizesResult:
    """Set sizes of the snapshots ``snaps`` (several: one pass over all of them, rows per snapshot).  ``facts``
    (--source pages): a table holding the snapshots' page facts already (:func:`page_facts_table`)."""
    if by not in BY and by not in ("pmap", "memcg"):
        raise BadColumn(f"unknown view --by {by}", hint=f"choose from {', '.join(BY)}")
    if source not in SOURCES:
        raise BadColumn(f"unknown --source {source}", hint="choose smaps or pages")
    columns = list(columns or DEFAULT_COLUMNS[by])
    check_columns(by, columns, "column(s)")
    sort = sort or ("pss" if by != "system" else None)
    if sort:
        check_columns(by, [sort], "sort key")
    if len(snaps) > 1 and "host" not in columns:
        columns.insert(0, "host")
    check_filters(store.con, processfilter, userfilter, mapfilter)
    res = SizesResult(by, source, columns, [], list(snaps), *_meminfo_totals(store.con, snaps))
    if by == "system":
        res.rows = _system_rows(store, snaps)
        if sort:
            res.rows.sort(key=lambda r: (r.get(sort) is None, r.get(sort)), reverse=reverse)
        return res
    view, src = VIEWS[by], SOURCES[source]
    src.check(snaps)
    if facts and source == "pages":
        src = _PagesFrom(facts)
    if source == "smaps":
        low = low_impact_processes(store.con, snaps)
        if low:
            src = _SmapsWithPages(low, snaps)
    res.rows = _query(store.con, view, src, snaps, numeric,
                      dict(processfilter=processfilter, userfilter=userfilter, mapfilter=mapfilter),
                      inline=src.read_once and store.engine_name == "duckdb")
    if "starttime" in dict(view.keys):
        add_started(store.con, snaps, res.rows)
    res.notes += src.notes(store.con)
    if sort:
        res.rows = sort_rows(res.rows, sort, reverse, by, columns[0])
    if limit:
        res.rows = res.rows[-limit:] if not reverse else res.rows[:limit]
    return res


def _query(con, view: View, src, snaps: list[Snapshot], numeric: bool, filters: dict,
           inline: bool = False) -> list[dict]:
    """The rows of ``view``: facts per mapping -> stage 1 per process (x mapping) -> stage 2 per group.  The
    facts are the temp table ``_facts``, or (``inline``: nothing else reads them) a ``WITH _facts AS (...)``
    of the one statement: DuckDB then stores no row of them (the smaps facts of 1,000 processes, 116k rows:
    35-100 ms to store against 10-20 ms to compute)."""
    md = sa.MetaData()
    f = sa.Table("_facts", md, *[sa.Column(c) for c in dict.fromkeys(src.columns)])
    procs = _processes_table(md)
    amounts = [a for a in view.amounts if not a.average_of and src.offers(a, view)]
    stage1 = _stage1(view, src, amounts, f, filters["mapfilter"])
    # only the fact columns this view uses (DuckDB then computes and reads no other: the mapping name of
    # every row, for one, is a string per mapping that a per-process or per-command view never needs)
    used = {c.name for c in sa.sql.visitors.iterate(stage1) if isinstance(c, sa.Column) and c.table is f}
    cols = ", ".join(f'"{c}"' for c in dict.fromkeys(src.columns) if c in used or c in src.kept)  # "map": quoted
    sql, params = src.facts_sql(cols, snaps)
    if not inline:
        con.execute(f"CREATE OR REPLACE TEMP TABLE _facts AS {sql}", params)
    s1 = stage1.subquery("s1")
    cmds = sa.Table("process_commands", md, *[sa.Column(c) for c in ("host", "snapshot_id", "pid", "command")])
    groups = {name: (cmds.c.command if col == _PROGRAM else procs.c[col] if col in procs.c else s1.c[col])
              for name, col in view.keys}
    if numeric and "user" in groups:  # the uid instead of the name: a number per process, text per user
        groups["user"] = procs.c.euid if view.name == "process" else sa.cast(procs.c.euid, sa.String)
    counts = {"maps": _kb(s1.c.maps), "pids": sa.func.count(sa.distinct(procs.c.pid))}
    sel = [procs.c.snapshot_id.label("snapshot_id"), procs.c.host.label("host"),
           *[c.label(n) for n, c in groups.items()], *[counts[kind].label(n) for n, kind in view.counts],
           *[src.total(a, view, s1, procs, not filters["mapfilter"]).label(a.name) for a in amounts]]
    j = s1.join(procs, sa.and_(procs.c.host == s1.c.host, procs.c.snapshot_id == s1.c.snapshot_id,
                               procs.c.pid == s1.c.pid))
    if _PROGRAM in dict(view.keys).values():
        j = j.join(cmds, sa.and_(cmds.c.host == procs.c.host, cmds.c.snapshot_id == procs.c.snapshot_id,
                                 cmds.c.pid == procs.c.pid))
    stmt = sa.select(*sel).select_from(j).where(*_process_filters(procs, filters)).group_by(
        procs.c.snapshot_id, procs.c.host, *groups.values())
    text, args = _compile(stmt)
    if inline:
        sql, params = _positional(sql, params)
        text, args = f"WITH _facts AS (\n{sql}\n)\n{text}", params + args
    cur = con.execute(text, args)
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, r)) for r in cur.fetchall()]
    for r in rows:
        for a in view.amounts:
            r.setdefault(a.name, _average(r, a.average_of) if a.average_of else None)
    return rows


_NAMED = re.compile(r"\$([A-Za-z_]\w*)")


def _positional(sql: str, params: dict) -> tuple[str, list]:
    """``sql`` with each ``$name`` of ``params`` as ``?`` and the values in their order, to go in one statement
    with sqlcore's ``?`` parameters (DuckDB takes one style per statement).  The texts are memsnap's own
    (queries/, this module); a ``$`` that names no parameter is left as it is."""
    values: list = []

    def one(m):
        if m[1] not in params:
            return m[0]
        values.append(params[m[1]])
        return "?"
    return _NAMED.sub(one, sql), values


def started_times(con, snaps: list[Snapshot]) -> dict:
    """Per (host, snapshot_id): (boot time, clock ticks per second), to turn a process's starttime (clock ticks
    after boot, stat field 22) into the time it started.  The boot time is ``boot_time`` (btime of /proc/stat,
    whole seconds); where it was not recorded (an smemcap import) it is derived from what was:
    capture_start - uptime_s."""
    rows = con.execute(
        "SELECT host, snapshot_id, coalesce(boot_time, capture_start - to_microseconds(CAST(round(uptime_s * 1e6) "
        f"AS BIGINT))), clock_ticks_hz FROM snapshots WHERE {_CHOSEN}", _chosen(snaps)).fetchall()
    return {(h, sid): (boot, hz) for h, sid, boot, hz in rows}


def add_started(con, snaps: list[Snapshot], rows: list[dict]) -> None:
    """``started`` (a timestamp) beside ``starttime`` (the raw clock ticks) in each row."""
    import datetime as dt

    info = started_times(con, snaps)
    for r in rows:
        boot, hz = info.get((r.get("host"), r.get("snapshot_id")), (None, None))
        ticks = r.get("starttime")
        r["started"] = boot + dt.timedelta(seconds=ticks / hz) if boot is not None and hz and ticks is not None \
            else None


def _average(row: dict, of: str) -> int | None:
    return int(row[of] / row["pids"]) if row.get(of) is not None and row["pids"] else None  # smem: int(1.0 * t / n)


def _stage1(view: View, src, amounts: list[Amount], f, mapfilter: str | None):
    """Per process (or process x mapping), unfloored: the facts summed, and the mappings counted."""
    keys = [f.c.host, f.c.snapshot_id, f.c.pid] + [f.c[col] for _, col in view.keys if col in _MAPPING_KEYS]
    facts = [(a.name, src.fact(a, view, f)) for a in amounts] + src.extra_facts(amounts, view, f)
    stmt = sa.select(*keys, sa.func.count().label("maps"),
                     *[e.label(n) for n, e in facts if e is not None]).group_by(*keys)
    if mapfilter:
        stmt = stmt.where(sa.func.regexp_matches(f.c.map, sa.bindparam("mapfilter", mapfilter)))
    return stmt


def _process_filters(procs, filters: dict) -> list:
    """Kernel threads left out (as smem); -P on comm or command line, -U on the user name (or uid)."""
    conds = [sa.func.coalesce(procs.c.kernel_thread, False) == sa.false()]
    if filters["processfilter"]:
        rx = sa.bindparam("processfilter", filters["processfilter"])
        conds.append(sa.or_(sa.func.regexp_matches(sa.func.coalesce(procs.c.comm, ""), rx),
                            sa.func.regexp_matches(sa.func.coalesce(procs.c.cmdline, ""), rx)))
    if filters["userfilter"]:
        conds.append(sa.func.regexp_matches(sa.func.coalesce(procs.c.user, sa.cast(procs.c.uid, sa.String)),
                                            sa.bindparam("userfilter", filters["userfilter"])))
    return conds


def sort_rows(rows: list[dict], sort: str, reverse: bool, by: str, first: str | None = None) -> list[dict]:
    """Rows by ``sort``, nulls first; the group's own columns, then host/snapshot break ties: a stable order.
    ``first``: the first column shown (default: the view's first default column)."""
    first = first or DEFAULT_COLUMNS[by][0]
    ties = [n for n, _ in VIEWS[by].keys]
    return sorted(rows, key=lambda r: (r.get(sort) is not None, r.get(sort) if r.get(sort) is not None else 0,
                                       str(r.get("pid", r.get(first))), str(r.get("host")),
                                       str(r.get("snapshot_id")), tuple(str(r.get(c)) for c in ties)),
                  reverse=reverse)


# meminfo areas for --by system: disjoint parts of MemTotal, plus what is left
SYSTEM_AREAS = (
    ("free", ("MemFree",)),
    ("userspace anonymous (AnonPages)", ("AnonPages",)),
    ("page cache, file (Cached + Buffers - Shmem)", ("Cached", "Buffers", "-Shmem")),
    ("shmem/tmpfs (Shmem)", ("Shmem",)),
    ("slab (Slab)", ("Slab",)),
    ("kernel stacks (KernelStack)", ("KernelStack",)),
    ("page tables (PageTables + SecPageTables)", ("PageTables", "SecPageTables")),
    ("per-cpu (Percpu)", ("Percpu",)),
    ("hugetlb pool (Hugetlb)", ("Hugetlb",)),
)


def _system_rows(store: Store, snaps) -> list[dict]:
    rows = []
    for sid, host in sorted(((s.snapshot_id, s.host) for s in snaps), key=lambda x: (x[1], x[0])):
        m = dict(store.con.execute("SELECT key, value_kb FROM meminfo WHERE host = ? AND snapshot_id = ? "
                                   "AND value_kb IS NOT NULL", [host, sid]).fetchall())
        total = m.get("MemTotal")
        used = 0
        for area, keys in SYSTEM_AREAS:
            v = 0
            present = False
            for k in keys:
                sign = -1 if k.startswith("-") else 1
                k = k.lstrip("-")
                if k in m:
                    present = present or sign > 0
                    v += sign * m[k]
            if not present:
                continue  # the kernel did not report it: no row rather than a fake 0
            used += v
            rows.append({"host": host, "snapshot_id": sid, "area": area, "kb": v})
        rows.append({"host": host, "snapshot_id": sid, "area": "unaccounted (MemTotal - the rows above: vmalloc, "
                     "drivers, ...)", "kb": total - used if total is not None else None})
        rows.append({"host": host, "snapshot_id": sid, "area": "total (MemTotal)", "kb": total})
        for r in rows:
            if r["snapshot_id"] == sid and r["host"] == host:
                r["percent"] = round(100.0 * r["kb"] / total, 2) if total and r["kb"] is not None else None
    return rows


#: the views whose rows add up across hosts (a group's processes on every host): amounts and counts are sums
ACROSS_HOSTS_VIEWS = ("user", "command", "cgroup")


def across_hosts(res: SizesResult) -> list[dict]:
    """Per group of a --by user/command/cgroup result, one row summing it over every host it appears on:
    ``host`` is ``*``, ``snapshot_id`` the number of hosts (``--across-hosts``: what a service costs on each host,
    and in total).  Rows in the order their groups first appear."""
    if res.by not in ACROSS_HOSTS_VIEWS:
        raise BadColumn(f"--across-hosts needs --by {', '.join(ACROSS_HOSTS_VIEWS)}, not --by {res.by}",
                        hint="processes and mappings belong to one host; group them with --by command")
    keys = [k for k, _ in VIEWS[res.by].keys if k in res.columns]
    summed = [c for c in res.columns if c not in keys and c not in ("host", "snapshot_id")]
    out: dict[tuple, dict] = {}
    hosts: dict[tuple, set] = {}
    for r in res.rows:
        g = tuple(r.get(k) for k in keys)
        t = out.setdefault(g, {**{k: r.get(k) for k in keys}, **{c: None for c in summed}})
        hosts.setdefault(g, set()).add(r.get("host"))
        for c in summed:
            if r.get(c) is not None:
                t[c] = (t[c] or 0) + r[c]
    return [{**t, "host": "*", "snapshot_id": f"{len(hosts[g])} hosts"} for g, t in out.items()]
