"""schema/ is the single source: Arrow schemas, SQLAlchemy tables and docs derive from it."""
from __future__ import annotations

import pyarrow.parquet as pq

import schema
from schema import docs, sa as schema_sa
from conftest import SAMPLE_STORE


def test_docs_not_stale():
    assert docs.DOC_PATH.read_text() == docs.render(), "docs/schema.md is stale: run `make docs`"


def test_every_table_documented_with_units_and_descriptions():
    for t in schema.TABLES.values():
        assert t.description and t.row
        names = t.column_names
        assert len(names) == len(set(names)), t.name
        for c in t.columns:
            assert c.description, (t.name, c.name)
            if c.name.endswith("_kb"):
                assert c.unit == "kB", (t.name, c.name)


def test_sqlalchemy_tables_match_arrow_schemas():
    tables = schema_sa.tables()
    assert set(tables) == set(schema.TABLES)
    for name, t in tables.items():
        arrow_names = schema.arrow_schema(name).names
        assert [c.name for c in t.columns] == arrow_names + list(schema.PARTITION_COLUMNS)


def test_sample_files_carry_schema_version_and_match_schema():
    files = sorted(SAMPLE_STORE.rglob("*.parquet"))
    assert len(files) >= 12
    for f in files:
        table = f.relative_to(SAMPLE_STORE).parts[0]
        meta = pq.read_schema(f).metadata
        assert int(meta[schema.META_VERSION]) <= schema.SCHEMA_VERSION
        assert meta[schema.META_TABLE].decode() == table
        got = pq.read_schema(f).remove_metadata()
        want = schema.arrow_schema(table).remove_metadata()
        # columns are only ever added: an old file's columns are a prefix-compatible subset
        for field in got:
            assert want.field(field.name).type == field.type, (f, field.name)


def test_column_types_name_arrow_and_duckdb_types():
    """A column's type is pyarrow's name for it (so importing the schema costs no pyarrow), and every
    type a column uses has its Arrow constructor and DuckDB type; the files' real types agree."""
    used = {c.type for t in schema.TABLES.values() for c in t.columns}
    assert used <= set(schema.TYPES)
    for t in schema.TYPES:
        assert str(schema.arrow_type(t)) == t
    import duckdb

    con = duckdb.connect()
    for t in used:
        # DuckDB reads an Arrow value of the type as the DuckDB type named for it
        import pyarrow as pa

        arr = pa.array([None], type=schema.arrow_type(t))
        tbl = pa.table({"x": arr})
        assert con.execute("SELECT typeof(x) FROM tbl").fetchone()[0] == schema.duck_type(t).replace(
            "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"), t
