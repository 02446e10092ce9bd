"""pages.map_idx (schema 4): the page -> mapping key every page query equi-joins on.  Stores written before it
(no such column) are attributed by address in the analyzer's `pages` view (analyzer/store.py): they must give
the same answers as the same data with the column stored."""
from __future__ import annotations

import json
import shutil

import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import SAMPLE_STORE, memsnap
from schema import SCHEMA_VERSION, arrow_schema

REGRESSION = SAMPLE_STORE.parent / "regression" / "v1-store"


def _by_address(store) -> duckdb.DuckDBPyConnection:
    """An independent attribution: a plain range join over the store's Parquet files."""
    con = duckdb.connect()
    g = {t: str(store / t / "*" / "*" / "*.parquet") for t in ("pages", "mappings", "snapshots")}
    con.execute(f"""CREATE TABLE attributed AS
        WITH s AS (SELECT snapshot_id, page_size_bytes AS ps FROM read_parquet('{g['snapshots']}')),
        m AS (SELECT snapshot_id, pid, idx, start_addr, end_addr FROM read_parquet('{g['mappings']}')),
        p AS (SELECT p.snapshot_id, p.pid, p.vpn, p.vpn * s.ps AS addr FROM read_parquet('{g['pages']}') p
              JOIN s USING (snapshot_id))
        SELECT p.snapshot_id, p.pid, p.vpn, m.idx FROM p LEFT JOIN m ON m.snapshot_id = p.snapshot_id
            AND m.pid = p.pid AND p.addr >= m.start_addr AND p.addr < m.end_addr""")
    return con


@pytest.mark.parametrize("store", [SAMPLE_STORE, REGRESSION], ids=["sample", "regression"])
def test_old_store_pages_view_gives_the_mapping_found_by_address(store):
    """An old store's files have no map_idx; the pages view supplies it, equal to an independent range join."""
    assert "map_idx" not in pq.read_schema(next((store / "pages").rglob("*.parquet"))).names
    con = _by_address(store)
    out = memsnap("sql", str(store), "SELECT snapshot_id, pid, vpn, map_idx FROM pages", "--format", "json").stdout
    con.execute("CREATE TABLE viewed AS SELECT * FROM read_json_auto(?)", [_tmp_json(out)])
    n, differ = con.execute("SELECT count(*), count(*) FILTER (WHERE v.map_idx IS DISTINCT FROM a.idx) FROM viewed v "
                            "JOIN attributed a USING (snapshot_id, pid, vpn)").fetchone()
    assert n == con.execute("SELECT count(*) FROM attributed").fetchone()[0] > 0 and differ == 0


def _tmp_json(text: str) -> str:
    import tempfile

    f = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    f.write(text)
    f.close()
    return f.name


def _with_map_idx(src, dst) -> None:
    """``src`` copied to ``dst`` with map_idx stored in every pages file (computed by address), as schema 4
    files: the same data as the recorder now writes it."""
    shutil.copytree(src, dst)
    con = _by_address(dst)
    for f in sorted((dst / "pages").rglob("*.parquet")):
        t = con.execute("SELECT p.snapshot_id, p.pid, p.vpn, p.entry, a.idx::INTEGER AS map_idx FROM read_parquet(?) p "
                        "LEFT JOIN attributed a USING (snapshot_id, pid, vpn) ORDER BY p.pid, p.vpn",
                        [str(f)]).to_arrow_table()
        assert t["map_idx"].null_count == 0
        pq.write_table(t.cast(arrow_schema("pages")), f)


COMMANDS = [["sizes", "--source", "pages"], ["sizes", "--source", "pages", "--by", "mapping"],
            ["diff", "--source", "pages"], ["diff", "--source", "pages", "-M", "memsnap-cow"],
            ["shared", "--groups", "command"], ["shared", "--groups", "user"]]


def test_a_store_with_map_idx_answers_as_the_same_store_without(tmp_path):
    """sample_data/store (schema 2: map_idx by address in the view) against a copy with map_idx stored: every
    page-level command's JSON byte for byte."""
    new = tmp_path / "store4"
    _with_map_idx(SAMPLE_STORE, new)
    assert pq.read_schema(next((new / "pages").rglob("*.parquet"))).metadata[b"memsnap.schema_version"] == \
        str(SCHEMA_VERSION).encode()
    for cmd in COMMANDS:
        old_out = memsnap(*cmd, str(SAMPLE_STORE), "--format", "json").stdout
        new_out = memsnap(*cmd, str(new), "--format", "json").stdout
        assert json.loads(old_out) and old_out == new_out, cmd
