"""SQLAlchemy Core tables derived from :mod:`schema` (analyzer side only).

Tables are declared, not reflected: reflection (``autoload_with``) fails with
duckdb 2.x through duckdb_engine 0.17.
"""
from __future__ import annotations

import pyarrow as pa
import sqlalchemy as sa

from . import PARTITION_COLUMNS, TABLES, Table


def _sa_type(t: pa.DataType):
    if pa.types.is_string(t):
        return sa.String()
    if pa.types.is_boolean(t):
        return sa.Boolean()
    if pa.types.is_int32(t):
        return sa.Integer()
    if pa.types.is_integer(t):  # int64 and uint64 (duckdb UBIGINT compares fine as BIGINT in Core)
        return sa.BigInteger()
    if pa.types.is_floating(t):
        return sa.Float()
    if pa.types.is_timestamp(t):
        return sa.DateTime(timezone=True)
    if pa.types.is_map(t):
        return sa.JSON()
    raise TypeError(f"no SQLAlchemy type for {t}")


def table(t: Table, metadata: sa.MetaData) -> sa.Table:
    cols = [sa.Column(c.name, _sa_type(c.type), nullable=c.nullable, comment=c.description) for c in t.columns]
    cols += [sa.Column(p, sa.String(), comment="Hive partition column") for p in PARTITION_COLUMNS]
    return sa.Table(t.name, metadata, *cols, comment=t.description)


def tables(metadata: sa.MetaData | None = None) -> dict[str, sa.Table]:
    md = metadata or sa.MetaData()
    return {name: table(t, md) for name, t in TABLES.items()}
