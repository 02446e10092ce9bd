"""Opening one or more stores in DuckDB.

Each stored table becomes a view over the Hive-partitioned Parquet files of all
stores given, restricted to committed snapshots (those with a ``snapshots``
row).  The raw, unfiltered file sets are ``_raw_<table>``.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from recorder.errors import SchemaMismatch, SnapshotNotFound, StoreCorrupt, StoreError
from schema import SCHEMA_VERSION, TABLES, arrow_schema

from . import queries


def _duck_type(t: pa.DataType) -> str:
    if pa.types.is_map(t):
        return "MAP(VARCHAR, BIGINT)"
    return {pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.uint64(): "UBIGINT",
            pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}.get(t, "TIMESTAMPTZ")


def resolve_stores(paths) -> list[str]:
    """Expand globs; every result must be a store directory (it has a ``snapshots/`` subdirectory)."""
    out: list[str] = []
    for p in paths:
        matches = sorted(glob.glob(os.path.expanduser(p))) if glob.has_magic(p) else [os.path.expanduser(p)]
        if not matches:
            raise StoreError(f"{p}: no store matches this pattern", hint="check the path or quote the glob", path=p)
        for m in matches:
            if not os.path.isdir(m):
                raise StoreError(f"{m}: no such store directory",
                                 hint="record one with `memsnap record --store DIR`, or pass the right path", path=m)
            if not os.path.isdir(os.path.join(m, "snapshots")):
                raise StoreError(f"{m}: not a memsnap store (no snapshots/ directory)",
                                 hint="pass the directory given to `memsnap record --store`", path=m)
            out.append(os.path.abspath(m))
    return list(dict.fromkeys(out))


@dataclass
class Snapshot:
    snapshot_id: str
    host: str
    capture_start: object
    boot_id: str
    pfn_available: bool | None
    kpage_available: bool | None
    page_size_bytes: int


class Store:
    """DuckDB views over one or more stores.  ``con`` is the DuckDB connection."""

    def __init__(self, paths, *, memory_limit: str | None = None, threads: int | None = None):
        self.paths = resolve_stores(paths if isinstance(paths, (list, tuple)) else [paths])
        self.con = duckdb.connect(":memory:")
        if memory_limit:
            self.con.execute("SET memory_limit = ?", [memory_limit])  # value bound, never interpolated
        if threads:
            self.con.execute("SET threads = ?", [int(threads)])
        for name in TABLES:
            self._create_view(name)
        self._check_versions()
        queries.install_views(self.con)

    # ------------------------------------------------------------------ views
    def _files(self, table: str) -> list[str]:
        files: list[str] = []
        for s in self.paths:
            files += sorted(glob.glob(os.path.join(s, table, "host=*", "date=*", "*.parquet")))
        return files

    def _create_view(self, table: str) -> None:
        files = self._files(table)
        cols = [c.name for c in TABLES[table].columns] + ["host", "date"]
        if files:
            # The file list is ours (from glob), not user text; it is passed as a bound list where DuckDB
            # allows it.  DuckDB does not accept parameters in CREATE VIEW, so we create a table function
            # relation and register it.
            try:
                rel = self.con.read_parquet(files, hive_partitioning=True, union_by_name=True)
            except duckdb.Error as e:
                raise StoreCorrupt(f"cannot read {table} files of {', '.join(self.paths)}: {e}",
                                   hint="a file is truncated or not Parquet; remove it or re-record") from None
            rel = rel.select(", ".join(f'"{c}"' for c in cols if c in rel.columns))
            rel.create_view(f"_raw_{table}", replace=True)
        else:
            sch = arrow_schema(table)
            sel = ", ".join(f'CAST(NULL AS {_duck_type(f.type)}) AS "{f.name}"' for f in sch) + \
                ', CAST(NULL AS VARCHAR) AS host, CAST(NULL AS DATE) AS "date"'
            self.con.execute(f"CREATE OR REPLACE VIEW _raw_{table} AS SELECT {sel} WHERE false")
        if table == "snapshots":
            self.con.execute("CREATE OR REPLACE VIEW snapshots AS SELECT * FROM _raw_snapshots")
        else:
            # A snapshot is (host, snapshot_id): merged stores may hold the same id under several hosts.
            self.con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM _raw_{table} "
                             "WHERE (host, snapshot_id) IN (SELECT host, snapshot_id FROM _raw_snapshots)")

    def _check_versions(self) -> None:
        try:
            v = self.con.execute("SELECT max(schema_version) FROM snapshots").fetchone()[0]
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

    def snapshots(self, host: str | None = None) -> list[Snapshot]:
        rows = self.con.execute(
            "SELECT snapshot_id, host, capture_start, boot_id, pfn_available, kpage_available, page_size_bytes "
            "FROM snapshots WHERE ? IS NULL OR host = ? ORDER BY capture_start, snapshot_id", [host, host]).fetchall()
        return [Snapshot(*r) for r in rows]

    def resolve(self, snapshot: str | None = "latest", host: str | None = None) -> list[Snapshot]:
        """``latest`` (per host), an exact id, or a unique id prefix."""
        snaps = self.snapshots(host)
        if not snaps:
            where = f" for host {host!r}" if host else ""
            raise SnapshotNotFound(f"{', '.join(self.paths)}: no committed snapshots{where}",
                                   hint="record one with `memsnap record`, or check --host")
        if snapshot in (None, "latest"):
            latest: dict[str, Snapshot] = {}
            for s in snaps:
                latest[s.host] = s
            return list(latest.values())
        hits = [s for s in snaps if s.snapshot_id == snapshot] or [s for s in snaps if s.snapshot_id.startswith(snapshot)]
        if not hits:
            raise SnapshotNotFound(f"{', '.join(self.paths)}: no snapshot {snapshot!r}",
                                   hint="list them with `memsnap snapshots`")
        ids = sorted({s.snapshot_id for s in hits})
        if len(ids) > 1:  # one id under several hosts (merged copies) is not ambiguous: one snapshot per host
            raise SnapshotNotFound(f"snapshot prefix {snapshot!r} is ambiguous ({len(ids)} matches: "
                                   f"{', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})",
                                   hint="give more characters of the id")
        return hits

    def close(self) -> None:
        self.con.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def open_store(paths, **kw) -> Store:
    return Store(paths, **kw)
