"""Bad input for the analyzer: a clear `Error:` naming the file and the fix, non-zero exit, no traceback;
with --skip-bad the damaged snapshot is left out and the rest is analysed."""
from __future__ import annotations

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import schema
from conftest import SAMPLE_STORE, memsnap


@pytest.fixture
def store(tmp_path):
    s = tmp_path / "s"
    shutil.copytree(SAMPLE_STORE, s)
    return s


def _snap_ids(store):
    return sorted(p.stem for p in (store / "snapshots").rglob("*.parquet"))


def _first(store, table):
    return sorted((store / table).rglob("*.parquet"))[-1]  # the latest snapshot: the one `sizes` reads


def truncate(f):
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def empty(f):
    f.write_bytes(b"")


def corrupt_middle(f):
    data = bytearray(f.read_bytes())
    mid = len(data) // 3
    data[mid:mid + 64] = bytes(64)  # a data page, not the footer
    f.write_bytes(bytes(data))


#: the column each table's `sizes --source pages` query must read: damage there cannot go unread
READ_COLUMN = {"pages": "entry", "processes": "pid", "snapshots": "page_size_bytes"}


def corrupt_read_column(f):
    """Zero 64 bytes in the middle of the (compressed) data of a column the query reads, footer intact."""
    md = pq.ParquetFile(f).metadata
    rg = md.row_group(0)
    col = READ_COLUMN[f.parent.parent.parent.name]
    c = next(rg.column(i) for i in range(rg.num_columns) if rg.column(i).path_in_schema == col)
    data = bytearray(f.read_bytes())
    mid = c.data_page_offset + c.total_compressed_size // 2
    data[mid:mid + 64] = bytes(64)
    f.write_bytes(bytes(data))


def foreign(f):
    pq.write_table(pa.table({"x": [1, 2, 3]}), f)


def unlabelled(f):
    """The right columns, but no memsnap metadata: some other program's file."""
    t = pq.read_table(f)
    pq.write_table(t.replace_schema_metadata(None), f)


def newer_version(f):
    t = pq.read_table(f)
    meta = dict(t.schema.metadata)
    meta[schema.META_VERSION] = str(schema.SCHEMA_VERSION + 1).encode()
    pq.write_table(t.replace_schema_metadata(meta), f)


@pytest.fixture(scope="module")
def clean_output():
    cp = memsnap("sizes", str(SAMPLE_STORE), "--source", "pages", "-f", "json")
    assert json.loads(cp.stdout)
    return cp.stdout


@pytest.mark.parametrize("damage", [truncate, empty, corrupt_middle, corrupt_read_column, foreign, unlabelled,
                                    newer_version])
@pytest.mark.parametrize("table", ["pages", "processes", "snapshots"])
def test_damaged_file_is_named_and_skip_bad_recovers(store, damage, table, clean_output):
    f = _first(store, table)
    damage(f)
    cp = memsnap("sizes", str(store), "--source", "pages", "-f", "json", check=False)
    assert "Traceback" not in cp.stderr, cp.stderr
    if damage in (corrupt_middle, corrupt_read_column) and cp.returncode == 0:
        # the damaged bytes were not read (a column or page this query skips): the answer must be the clean one
        assert damage is corrupt_middle, f"damage in the read column {READ_COLUMN[table]} went unnoticed"
        assert cp.stdout == clean_output, "a damaged file changed the output without an error"
    else:  # detected, from the footer or mid-query: the message names the file
        assert cp.returncode != 0, (damage.__name__, table)
        assert cp.stderr.startswith("Error: ") and f.name in cp.stderr, cp.stderr
    ok = memsnap("--skip-bad", "sizes", str(store), "--source", "pages", "-f", "json", check=False)
    assert ok.returncode == 0, ok.stderr
    assert "skipped" in ok.stderr and f.name in ok.stderr
    left = json.loads(memsnap("--skip-bad", "snapshots", str(store), "-f", "json").stdout)
    assert f.stem not in [r["snapshot_id"] for r in left] and len(left) == 1


def test_not_a_store_empty_store_and_unknown_snapshot(tmp_path, store):
    for path, words in ((tmp_path / "nope", "no such store"), (tmp_path, "not a memsnap store")):
        cp = memsnap("sizes", str(path), check=False)
        assert cp.returncode != 0 and words in cp.stderr and "Traceback" not in cp.stderr
    empty_store = tmp_path / "empty"
    (empty_store / "snapshots").mkdir(parents=True)
    cp = memsnap("sizes", str(empty_store), check=False)
    assert cp.returncode != 0 and "no committed snapshots" in cp.stderr and "memsnap record" in cp.stderr
    cp = memsnap("sizes", str(store), "--snapshot", "20990101T000000", check=False)
    assert cp.returncode != 0 and "no snapshot" in cp.stderr and "memsnap snapshots" in cp.stderr


def test_mixed_schema_versions_read_together(tmp_path):
    """Old files (sample_data/regression, schema v1) and files of this version open as one store."""
    import os

    from conftest import ROOT

    store = ROOT / "sample_data" / "regression" / "v1-store"
    new = tmp_path / "new"
    memsnap("record", "--store", str(new), "--pid", str(os.getpid()), "--host", "now", "-q")
    rows = json.loads(memsnap("sizes", str(store), str(new), "-c", "host pid pss", "-f", "json").stdout)
    assert {r["host"] for r in rows} == {"sample", "now"}
    snaps = json.loads(memsnap("sql", str(store), str(new), "SELECT host, schema_version, pfn_pseudonymized "
                               "FROM snapshots ORDER BY host, capture_start", "-f", "json").stdout)
    versions = {r["host"]: r["schema_version"] for r in snaps}
    assert versions["now"] == schema.SCHEMA_VERSION and versions["sample"] == 1
    # every analysis still runs on the old store
    for args in (("diff", "--source", "pages"), ("shared", "--groups", "user"), ("sizes", "--by", "mapping")):
        memsnap(*args[:1], str(store), *args[1:], "-f", "json")


@pytest.mark.parametrize("limit, says", [("100KB", "Out of Memory"), ("lots", "memory limit 'lots' is not valid")])
def test_memory_limit_too_small_or_invalid_is_said_so(limit, says):
    """A DuckDB memory limit too small even to open the store is reported as such (with the variable to
    raise), not as a damaged store; an invalid one is refused with the accepted form."""
    import os
    cp = memsnap("sizes", str(SAMPLE_STORE), check=False, env=dict(os.environ, MEMSNAP_MEMORY_LIMIT=limit))
    assert cp.returncode == 1 and "Traceback" not in cp.stderr and cp.stdout == ""
    assert cp.stderr.startswith("Error: ") and says in cp.stderr and "MEMSNAP_MEMORY_LIMIT" in cp.stderr, cp.stderr
    assert "damaged" not in cp.stderr and "truncated" not in cp.stderr
