"""Opening one or more stores in DuckDB.

Each stored table becomes a view over the visible Parquet files of all stores given: the files of committed
snapshots, each snapshot once (loose or compacted, :mod:`common.catalog` decides), listed when the store is
opened.  ``_raw_<table>`` is the same file set without the committed-snapshot view on top.

This is the bottom of the analyzer: it imports no analysis module (sizes, diff, shared, trend, report).
:func:`analyzer.api.open_store` (``analyzer.open_store``) adds those operations on top.
"""
from __future__ import annotations

import dataclasses
import glob
import os
import re
import shutil
import tempfile
import weakref

from common.errors import MemsnapError, SchemaMismatch, StoreCorrupt, StoreError
from common import catalog, layout, objstore
from schema import SCHEMA_VERSION, TABLES, duck_type

from . import queries, snapshots
from .duck import engine as duckdb  # the C++ engine; the relation layer on first use (analyzer/duck.py)
from .snapshots import Snapshot


def permission_denied(path: str, store: str) -> StoreError:
    """A store (or a part of it) this user cannot read.  A store recorded as root has directories 0750 and files
    0600: read as another user, it must say so, not look missing or empty."""
    return StoreError(f"{path}: permission denied (this user cannot read the store {store})",
                      hint=f"run as root (sudo memsnap ...), or give this user read access, e.g. "
                           f"`sudo chgrp -R GROUP {store} && sudo chmod -R g+rX {store}` for a group you are in",
                      path=path)


def _denied_in(path: str) -> str | None:
    """``path`` itself or the first directory below it this user cannot read; None if all can be.  Files are
    checked when a scope has chosen them (:meth:`Store._validate_files`): no per-file work at open."""
    for p in (path, os.path.join(path, layout.COMMIT_TABLE)):
        if os.path.isdir(p) and not os.access(p, os.R_OK | os.X_OK):
            return p
    if not os.path.isdir(os.path.join(path, layout.COMMIT_TABLE)):
        return None
    for table in TABLES:
        top = os.path.join(path, table)
        if not os.path.isdir(top):
            continue
        if not os.access(top, os.R_OK | os.X_OK):
            return top
        for d in (top, *_subdirs(top)):  # host=*, then date=*: the partitions
            for sub in _subdirs(d):
                if not os.access(sub, os.R_OK | os.X_OK):
                    return sub
    return None


def _subdirs(d: str) -> list[str]:
    try:
        return [e.path for e in os.scandir(d) if e.is_dir()]
    except PermissionError:
        return []  # reported as the directory itself


def _stat_denied(path: str) -> str | None:
    """The directory on the way to ``path`` that cannot be searched (stat fails with EACCES), if any."""
    try:
        os.stat(path)
        return None
    except PermissionError:
        parts = os.path.abspath(path).split(os.sep)
        for i in range(1, len(parts)):
            d = os.sep.join(parts[:i]) or os.sep
            if not os.access(d, os.X_OK):
                return d
        return path
    except OSError:
        return None


def resolve_stores(paths) -> list[str]:
    """Expand globs; every result must be a store directory (it has a ``snapshots/`` subdirectory) that this
    user can read throughout (a permission problem is said as such, naming the path)."""
    out: list[str] = []
    for p in paths:
        if objstore.is_url(p):  # an object store: listed by the catalog (common/objstore.py), read through fsspec
            url = objstore.normalize(p)
            if not objstore.exists(os.path.join(url, layout.COMMIT_TABLE)):
                raise StoreError(f"{url}: not a memsnap store (nothing under {url}/{layout.COMMIT_TABLE}/)",
                                 hint="pass the URL given to `memsnap push`; the endpoint and credentials come "
                                      "from $AWS_ENDPOINT_URL, $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY", path=p)
            out.append(url)
            continue
        matches = sorted(glob.glob(os.path.expanduser(p))) if glob.has_magic(p) else [os.path.expanduser(p)]
        if not matches:
            raise StoreError(f"{p}: no store matches this pattern", hint="check the path or quote the glob", path=p)
        for m in matches:
            blocked = _stat_denied(m)
            if blocked:
                raise permission_denied(blocked, m)
            denied = _denied_in(m) if os.path.isdir(m) else None
            if denied:
                raise permission_denied(denied, m)
            if not os.path.isdir(m):
                raise StoreError(f"{m}: no such store directory",
                                 hint="record one with `memsnap record --store DIR`, or pass the right path", path=m)
            if not layout.is_store(m):
                raise StoreError(f"{m}: not a memsnap store (no snapshots/ directory)",
                                 hint="pass the directory given to `memsnap record --store`", path=m)
            out.append(os.path.abspath(m))
    return list(dict.fromkeys(out))


ENGINES = ("duckdb", "spark")


def engine_of(engine: str | None = None) -> str:
    """The engine asked for (``--engine``, else $MEMSNAP_ENGINE, else duckdb); docs/fleet.md."""
    engine = (engine or os.environ.get("MEMSNAP_ENGINE") or "duckdb").lower()
    if engine not in ENGINES:
        raise MemsnapError(f"unknown engine {engine!r}", hint="use --engine duckdb or --engine spark")
    return engine


#: DuckDB memory limit unless MEMSNAP_MEMORY_LIMIT or memory_limit= says otherwise
DEFAULT_MEMORY_LIMIT = "1GB"


def sql_literal(text: str) -> str:
    """A SQL string literal.  Only for file paths found by glob, where DuckDB takes no parameters (CREATE VIEW)."""
    return "'" + text.replace("'", "''") + "'"


def raw_view_sql(table: str, files, segment: bool = False) -> str:
    """``CREATE VIEW _raw_<table>`` over Parquet files (a list, or one glob), or an empty typed view.
    ``segment``: add ``_segment``, the name of the row's file (for :func:`committed_view_sql` over globs)."""
    cols = [c.name for c in TABLES[table].columns] + ["host", "date"]
    typed_empty = "SELECT " + ", ".join(f'CAST(NULL AS {duck_type(c.type)}) AS "{c.name}"'
                                        for c in TABLES[table].columns) + \
        ', CAST(NULL AS VARCHAR) AS host, CAST(NULL AS DATE) AS "date"' + \
        (", CAST(NULL AS VARCHAR) AS _segment" if segment else "") + " WHERE false"
    if files:
        flist = "[" + ", ".join(sql_literal(f) for f in ([files] if isinstance(files, str) else files)) + "]"
        sel = ", ".join(f'"{c}"' for c in cols) + (", parse_filename(filename, true) AS _segment" if segment else "")
        # Files written with an older schema version lack the columns added since (docs/design.md: new columns are
        # nullable, old stores stay readable): UNION ALL BY NAME with the typed empty relation supplies them as NULL.
        return (f"CREATE OR REPLACE VIEW _raw_{table} AS SELECT {sel} FROM (SELECT * FROM read_parquet({flist}, "
                f"hive_partitioning = true, union_by_name = true{', filename = true' if segment else ''}) "
                f"UNION ALL BY NAME {typed_empty})")
    return f"CREATE OR REPLACE VIEW _raw_{table} AS {typed_empty}"


def pages_by_address_sql(rows: str, asof: bool = True) -> str:
    """``pages`` rows of ``rows`` (a relation) with ``map_idx`` found by address: the mapping of the same
    snapshot and pid with start <= vpn < end, or NULL when none holds the page.  For rows whose files have no
    ``map_idx`` (stores before schema 4; docs/design.md, "Pages to mappings"), so that every query joins pages
    to mappings on (pid, map_idx = idx) whatever the store's age.  ``asof``: DuckDB's ASOF join (the mapping
    with the greatest start <= vpn, then vpn < end checked); otherwise a range join with both bounds, for
    engines without ASOF (Spark).  Exact either way: the mappings of a process do not overlap."""
    cols = ", ".join(f"p.{c}" for c in TABLES["pages"].column_names if c != "map_idx")
    m = ("SELECT m.host, m.snapshot_id, m.pid, m.idx, m.start_addr // s.page_size_bytes::UBIGINT AS start_vpn, "
         "m.end_addr // s.page_size_bytes::UBIGINT AS end_vpn FROM mappings m JOIN snapshots s USING (host, snapshot_id)")
    on = "p.host = m.host AND p.snapshot_id = m.snapshot_id AND p.pid = m.pid AND p.vpn >= m.start_vpn"
    if asof:
        return (f"SELECT {cols}, CASE WHEN p.vpn < m.end_vpn THEN m.idx END AS map_idx, p.host, p.date "
                f"FROM ({rows}) p ASOF LEFT JOIN ({m}) m ON {on}")
    return (f"SELECT {cols}, m.idx AS map_idx, p.host, p.date FROM ({rows}) p LEFT JOIN ({m}) m "
            f"ON {on} AND p.vpn < m.end_vpn")


def pages_without_map_idx(con, files) -> bool:
    """True when some ``pages`` file's row group may hold a NULL ``map_idx`` (no such column: written before
    schema 4; or nulls, e.g. compacted from such files), read from the footers' statistics."""
    if not files:
        return False
    rows = con.execute(
        "SELECT bool_and(ok) FROM (SELECT bool_or(coalesce(path_in_schema = 'map_idx' AND stats_null_count = 0, "
        "false)) AS ok FROM parquet_metadata(?) GROUP BY file_name, row_group_id)", [list(files)]).fetchall()
    return rows[0][0] is False


def committed_view_sql(table: str, resolved: bool = True, by_address: bool = False) -> str:
    """The view of a table's committed rows over ``_raw_<table>``.

    ``resolved``: the raw view reads exactly the visible files (:mod:`common.catalog`), so no filter is needed.
    Otherwise (a view over globs that must follow new snapshots, ``export-db``) the catalog's rule is applied
    in SQL: a row is visible when its file's segment (``_segment``, the file name) is its snapshot's winning
    segment, the greatest segment whose ``snapshots`` file holds the snapshot."""
    if resolved:
        sel = f"SELECT * FROM _raw_{table}"
    else:  # A snapshot is (host, snapshot_id): merged stores may hold the same id under several hosts.
        sel = (f"SELECT * EXCLUDE (_segment) FROM _raw_{table} WHERE (host, snapshot_id, _segment) IN "
               "(SELECT host, snapshot_id, max(_segment) FROM _raw_snapshots GROUP BY host, snapshot_id)")
    if table == "pages" and by_address:  # rows without map_idx get it by address (pages_by_address_sql)
        sel = (f"SELECT * FROM ({sel}) WHERE map_idx IS NOT NULL UNION ALL BY NAME "
               + pages_by_address_sql(f"SELECT * FROM ({sel}) WHERE map_idx IS NULL"))
    return f"CREATE OR REPLACE VIEW {table} AS {sel}"


class Store:
    """DuckDB views over one or more stores.  ``con`` is the DuckDB connection (or, ``engine_name`` spark,
    :class:`analyzer.spark.SparkConnection` with the same surface over the same files)."""
    engine_name = "duckdb"

    def __init__(self, paths, *, memory_limit: str | None = None, threads: int | None = None,
                 skip_bad: bool = False, scope: catalog.Scope | None = None):
        self.paths = resolve_stores(paths if isinstance(paths, (list, tuple)) else [paths])
        self.con = duckdb.connect(":memory:")
        if any(objstore.is_url(p) for p in self.paths):
            self.con.register_filesystem(objstore.fsspec_filesystem())
        # DuckDB would use 80 % of RAM; the analyzer runs beside other work, and spills what does not fit
        # (measured: a 5M-page store diffed in 667 MiB at a 500MB limit, 1.25x the unlimited time).
        memory_limit = memory_limit or os.environ.get("MEMSNAP_MEMORY_LIMIT") or DEFAULT_MEMORY_LIMIT
        try:
            self.con.execute("SET memory_limit = ?", [memory_limit])  # value bound, never interpolated
        except duckdb.Error as e:
            raise StoreError(f"memory limit {memory_limit!r} is not valid: {str(e).splitlines()[0]}",
                             hint="use a size such as 1GB or 512MB (MEMSNAP_MEMORY_LIMIT)") from None
        self._tmpdir = tempfile.mkdtemp(prefix="memsnap-duckdb-")  # spill files; removed with the Store
        weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
        self.con.execute("SET temp_directory = ?", [self._tmpdir])
        # every view bound and every query planned would otherwise parse each file's footer again
        self.con.execute("SET parquet_metadata_cache = true")
        # DuckDB draws a progress bar on stdout for a query over 2 s, in the middle of `-f json` or csv (seen
        # at 5M pages); the library never prints, and the CLI shows its own progress on stderr
        self.con.execute("SET enable_progress_bar = false")
        if threads:
            self.con.execute("SET threads = ?", [int(threads)])
        self.skip_bad = skip_bad
        self.skipped: list[tuple[str, str]] = []  # (file, reason) left out with skip_bad
        # MEMSNAP_SCOPE=all opens every partition whatever the question (the answers are the same; slower);
        # --skip-bad too reads every table a scope names, so what it leaves out is what no command could read
        self.scope = None if os.environ.get("MEMSNAP_SCOPE") == "all" else scope
        if self.scope is not None and skip_bad and self.scope.tables is not None:
            self.scope = dataclasses.replace(self.scope, tables=None)
        self._good = self._validate_files()
        for name in TABLES:
            self._create_view(name)
        self._check_versions()
        self.con = queries.ViewsOnUse(self.con)  # named views and macros: created when first used

    def without_recorder(self) -> None:
        """From now on ``frames`` gives each frame's mapcount less the recorder's own references
        (queries/frames_without_recorder.sql): every page figure as if the recorder were not running
        (docs/design.md, "The observer").  Stores before schema 3 have no such count and are unchanged."""
        self.con.execute("CREATE OR REPLACE VIEW frames AS SELECT * FROM frames_without_recorder")

    def recorder_effect(self, snaps) -> list[tuple]:
        """Per snapshot: (host, snapshot_id, frames the recorded processes share with the recorder, their
        recorder references), or no row for stores before schema 3."""
        return self.con.execute(
            "SELECT host, snapshot_id, count(*) FILTER (WHERE recorder_refs > 0), coalesce(sum(recorder_refs), 0) "
            "FROM _raw_frames WHERE (host, snapshot_id) IN (SELECT unnest(?), unnest(?)) "
            "AND recorder_refs IS NOT NULL GROUP BY host, snapshot_id",
            [[s.host for s in snaps], [s.snapshot_id for s in snaps]]).fetchall()

    # ------------------------------------------------------------------ views
    def _files(self, table: str) -> list[str]:
        return self._good[table]

    def _select(self, scope, bad: dict) -> dict[str, list[str]]:
        """The visible files ``scope`` needs, per table (every visible file when it matches nothing, so that
        what is said about a missing snapshot or host is said about the whole store)."""
        on_bad = bad.__setitem__ if self.skip_bad else None
        for scope in ([scope, None] if scope is not None else [None]):
            files: dict[str, list[str]] = {t: [] for t in TABLES}
            for path in self.paths:
                try:
                    cat = catalog.select(path, TABLES, scope, on_bad=on_bad, read_ids=self._read_ids)
                except PermissionError as e:  # a compacted commit file this user cannot read
                    raise permission_denied(e.filename or path, path) from None
                for t in TABLES:
                    files[t] += cat.files.get(t, [])  # a table the scope does not read: an empty view
            if files[layout.COMMIT_TABLE]:
                break
        return files

    def _read_ids(self, path: str) -> list[str]:
        """A compacted commit file's snapshot ids, read with DuckDB (common.catalog's default reader imports
        pyarrow: 0.2-0.4 s that a command on a compacted store would pay for nothing)."""
        return [r[0] for r in self.con.execute("SELECT snapshot_id FROM read_parquet(?) ORDER BY 1", [path]).fetchall()]

    def _kv_metadata_ok(self, files: dict[str, list[str]]) -> bool:
        """The fast check (DuckDB reads every footer in one call, and caches it for the queries): True when
        each file is readable Parquet with this table's memsnap metadata and a schema version we read."""
        from schema import META_TABLE, META_VERSION

        want = {f: t for t, fs in files.items() for f in fs}
        if not want:
            return True
        try:
            rows = self.con.execute(
                "SELECT file_name, decode(key), decode(value) FROM parquet_kv_metadata(?) "
                "WHERE decode(key) IN (?, ?)", [list(want), META_TABLE.decode(), META_VERSION.decode()]).fetchall()
        except duckdb.Error:
            return False  # the slow path finds which file, and why
        meta: dict[str, dict[str, str]] = {}
        for f, k, v in rows:
            meta.setdefault(f, {})[k] = v
        return all(meta.get(f, {}).get(META_TABLE.decode()) == t and
                   meta[f].get(META_VERSION.decode(), "x").isdigit() and
                   int(meta[f][META_VERSION.decode()]) <= SCHEMA_VERSION for f, t in want.items())

    def _validate_files(self) -> dict[str, list[str]]:
        """Check the footer of every file the scope needs (:meth:`_select`): truncated, empty, foreign or
        too-new files are an error naming the file, or (skip_bad) are left out together with every other file
        of their snapshot.  Files outside the scope are not read at all."""
        bad: dict[str, str] = {}
        files = self._select(self.scope, bad)
        for fs in files.values():
            denied = next((f for f in fs if not objstore.is_url(f) and not os.access(f, os.R_OK)), None)
            if denied:
                raise permission_denied(denied, next((p for p in self.paths if denied.startswith(p + os.sep)),
                                                     self.paths[0]))
        if not self.skip_bad and self._kv_metadata_ok(files):
            return files
        self._check(files, bad)
        if bad and self.scope is not None:  # skip_bad: what it leaves out may be what the scope named
            bad.clear()
            files = self._select(None, bad)
            self._check(files, bad)
        if not bad:
            return files
        def seg(f):  # a segment (a snapshot, or a compaction) is named uniquely within its partition
            return layout.host_of(f), layout.date_of(f), layout.segment_of(f)

        dead = {seg(f) for f in bad}
        for f, why in bad.items():
            self.skipped.append((f, why))
        return {t: [f for f in fs if seg(f) not in dead] for t, fs in files.items()}

    def _check(self, files: dict[str, list[str]], bad: dict) -> None:
        """The slow check, file by file with pyarrow: raises naming the first bad file, or (skip_bad) adds
        each bad file and why to ``bad``."""
        import pyarrow.parquet as pq

        from schema import META_TABLE, META_VERSION

        for table, fs in files.items():
            for f in fs:
                try:
                    url = objstore.is_url(f)
                    meta = (objstore.read_schema(f) if url else pq.read_schema(f)).metadata or {}
                    if self.skip_bad:  # the footer can be fine while a data page is damaged: decode it all
                        pq.read_table(objstore.key(f) if url else f, filesystem=objstore.fs() if url else None,
                                      page_checksum_verification=True)
                except Exception as e:  # pyarrow raises several types for damaged files
                    why = f"not a readable Parquet file ({str(e).splitlines()[0][:120]})"
                else:
                    v, t = meta.get(META_VERSION), meta.get(META_TABLE)
                    if v is None or t is None:
                        why = "not a memsnap file (no memsnap.schema_version/table metadata)"
                    elif t.decode() != table:
                        why = f"a {t.decode()!r} file in the {table!r} directory"
                    elif int(v) > SCHEMA_VERSION:
                        if not self.skip_bad:
                            raise SchemaMismatch(f"{f}: written with schema version {int(v)}, this memsnap reads "
                                                 f"up to {SCHEMA_VERSION}", hint="upgrade memsnap on this "
                                                 "workstation, or run `memsnap --skip-bad ...` to leave such files out", path=f)
                        why = f"schema version {int(v)} is newer than {SCHEMA_VERSION}"
                    else:
                        continue
                if not self.skip_bad:
                    raise StoreCorrupt(f"{f}: {why}", hint="remove or move the file (the rest of its snapshot "
                                       "goes with it), or run `memsnap --skip-bad ...` to leave its snapshot out", path=f)
                bad[f] = why

    def _create_view(self, table: str) -> None:
        self.con.execute(raw_view_sql(table, self._files(table)))
        try:
            self.con.execute(f"SELECT * FROM _raw_{table} LIMIT 0")
        except duckdb.OutOfMemoryException:
            raise  # a memory limit too small even to open the files, not a damaged store
        except duckdb.Error as e:
            raise StoreCorrupt(f"cannot read {table} files of {', '.join(self.paths)}: {e}",
                               hint="a file is truncated or not Parquet; remove it or re-record") from None
        self.con.execute(committed_view_sql(table, by_address=table == "pages" and
                                            pages_without_map_idx(self.con, self._files(table))))

    def _check_versions(self) -> None:
        try:
            v = self.con.execute("SELECT max(schema_version) FROM snapshots").fetchall()[0][0]  # fetched whole: DuckDB refuses a relation while a result is unfinished
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as e:
            raise StoreCorrupt(f"cannot read snapshots of {', '.join(self.paths)}: {e}",
                               hint="a snapshots file is damaged; remove it") from None
        if v is not None and v > SCHEMA_VERSION:
            raise SchemaMismatch(f"{', '.join(self.paths)}: written with schema version {v}, this memsnap reads "
                                 f"up to {SCHEMA_VERSION}", hint="upgrade memsnap on this workstation")

    # ------------------------------------------------------------------ API
    def sql(self, query: str, params=None) -> duckdb.DuckDBPyRelation:
        return self.con.sql(query, params=params)

    def execute(self, query: str, params=None):
        return self.con.execute(query, params or [])

    def memory_limit_bytes(self) -> int | None:
        """DuckDB's memory limit in bytes (it reports e.g. '953.6 MiB'); None if it cannot be read (or on Spark,
        which spills by itself)."""
        if self.engine_name != "duckdb":
            return None
        text = self.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        m = re.fullmatch(r"\s*([0-9.]+)\s*([KMGTP]i?B|bytes?)?\s*", str(text))
        if not m:
            return None
        unit = (m[2] or "B").rstrip("s")
        scale = {"B": 1, "byte": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40, "PiB": 1 << 50,
                 "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12, "PB": 10 ** 15}.get(unit)
        return int(float(m[1]) * scale) if scale else None

    def snapshots(self, host: str | list[str] | None = None) -> list[Snapshot]:
        """Committed snapshots in capture order: of every host, of one (``host`` a name), or of the hosts a
        list of names and ``~regex`` entries chooses (``--host``, repeatable; :func:`analyzer.snapshots.match_hosts`)."""
        host = snapshots.host_spec(host)
        one = host if isinstance(host, str) else None
        rows = self.con.execute(
            "SELECT snapshot_id, host, capture_start, boot_id, pfn_available, kpage_available, page_size_bytes, "
            "pages_rows, json_extract_string(options_json, '$.format') FROM snapshots WHERE ? IS NULL OR host = ? ORDER BY capture_start, snapshot_id", [one, one]).fetchall()
        snaps = [Snapshot(*r) for r in rows]
        if host is None or one is not None:
            return snaps
        chosen = set(snapshots.match_hosts([s.host for s in snaps], host))
        return [s for s in snaps if s.host in chosen]

    def resolve(self, snapshot: str | None = "latest", host: str | None = None) -> list[Snapshot]:
        """``latest`` (per host), an exact id, or a unique id prefix (see :func:`analyzer.snapshots.resolve`)."""
        return snapshots.resolve(self.snapshots(host), snapshot, host=host, where=self.where)

    @property
    def where(self) -> str:
        """The stores, for error messages."""
        return ", ".join(self.paths)

    def query(self, name: str, params: dict | None = None) -> duckdb.DuckDBPyRelation:
        """Run a named query of ``queries/`` with bound parameters; returns a relation."""
        q = queries.get(name)
        if q.kind != "query":
            return self.con.sql(f'SELECT * FROM "{q.name}"') if q.kind == "view" else self.con.sql("SELECT 1 WHERE false")
        missing = set(q.params) - set(params or {})
        if missing:
            raise MemsnapError(f"query {name} needs parameter(s) {', '.join(sorted(missing))}",
                               hint="pass them with --param NAME=VALUE")
        return self.con.sql(q.sql, params={k: (params or {})[k] for k in q.params})

    @property
    def tables(self):
        """SQLAlchemy Core ``Table`` objects of the stored tables (declared from schema/, not reflected)."""
        if not hasattr(self, "_tables"):
            from schema.sa import tables

            self._tables = tables()
        return self._tables

    @property
    def engine(self):
        """A SQLAlchemy engine on this store's DuckDB database (same views, same data)."""
        if not hasattr(self, "_engine"):
            import sqlalchemy as sa
            from duckdb_engine import ConnectionWrapper
            from sqlalchemy.pool import StaticPool

            cursor = self.con.cursor()
            self._engine = sa.create_engine("duckdb://", creator=lambda: ConnectionWrapper(cursor),
                                            poolclass=StaticPool)
        return self._engine

    def close(self) -> None:
        if hasattr(self, "_engine"):
            self._engine.dispose()
        self.con.close()
        shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_store(paths, **kw) -> Store:
    """The bare store (SQL, views, snapshots); ``analyzer.open_store`` also has sizes, diff, shared, trend, report."""
    return Store(paths, **kw)
