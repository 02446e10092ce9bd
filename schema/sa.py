"""SQLAlchemy Core tables derived from :mod:`schema` (analyzer side only).

Tables are declared, not reflected: reflection (``autoload_with``) fails with
duckdb 2.x through duckdb_engine 0.17.
"""
from __future__ import annotations

import sqlalchemy as sa

from . import BOOL, F64, I32, I64, KB_MAP, PARTITION_COLUMNS, STR, TABLES, TS, U64, Table

#: int64 and uint64 are both BigInteger (duckdb UBIGINT compares fine as BIGINT in Core)
_SA_TYPES = {STR: sa.String, BOOL: sa.Boolean, I32: sa.Integer, I64: sa.BigInteger, U64: sa.BigInteger,
             F64: sa.Float, TS: lambda: sa.DateTime(timezone=True), KB_MAP: sa.JSON}


def _sa_type(t: str):
    if t not in _SA_TYPES:
        raise TypeError(f"no SQLAlchemy type for {t}")
    return _SA_TYPES[t]()


def table(t: Table, metadata: sa.MetaData) -> sa.Table:
    cols = [sa.Column(c.name, _sa_type(c.type), nullable=c.nullable, comment=c.description) for c in t.columns]
    cols += [sa.Column(p, sa.String(), comment="Hive partition column") for p in PARTITION_COLUMNS]
    return sa.Table(t.name, metadata, *cols, comment=t.description)


def tables(metadata: sa.MetaData | None = None) -> dict[str, sa.Table]:
    md = metadata or sa.MetaData()
    return {name: table(t, md) for name, t in TABLES.items()}
