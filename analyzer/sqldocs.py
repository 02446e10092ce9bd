"""Render ``docs/sql.md``: the stored tables, every view, macro and query of ``queries/``, and the cookbook.

``python -m analyzer.sqldocs`` rewrites it (``make docs``).  Output columns and their types are not written by
hand: every view, table macro, named query and cookbook recipe is run on ``sample_data/store`` (``LIMIT 0``)
and its result columns are read back, so the document cannot drift from the SQL.  Units are inferred from the
column names (the project's convention: ``rss_kb`` is kB, ``size_bytes`` is bytes).  The cookbook itself is
hand-written in ``docs/cookbook.sql``.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from common.errors import MemsnapError
from schema import PARTITION_COLUMNS, TABLES

from . import queries
from .sql import named_query_params, parse_params

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "sql.md"
COOKBOOK_PATH = ROOT / "docs" / "cookbook.sql"
SAMPLE_STORE = ROOT / "sample_data" / "store"

#: unit by column-name suffix (first match wins), see docs/design.md "Units go in names"
UNIT_SUFFIXES = (
    ("_kb", "kB"), ("_bytes", "bytes"), ("_ms", "ms"), ("_s", "s"), ("_pages", "pages"),
    ("_ticks", "clock ticks"), ("_hz", "Hz"), ("_fp", "bytes << 12 (PSS fixed point; >> 22 gives kB)"),
    ("_addr", "bytes (virtual address)"),
)
#: whole column names that carry a unit without a suffix
UNIT_NAMES = {"kb": "kB", "bytes": "bytes", "vpn": "pages (virtual page number)", "pages": "pages",
              "frames": "frames"}

#: sample values for named-query parameters that have no store-derived default
SAMPLE_PARAMS = {"by": "command"}


def unit_of(column: str) -> str:
    """``rss_kb`` -> kB, ``heap_kb_before`` -> kB, ``capture_ms`` -> ms, ``pss_fp`` -> fixed point, ``pid`` -> ''."""
    name = column.lower()
    if name in UNIT_NAMES:
        return UNIT_NAMES[name]
    for suffix, unit in UNIT_SUFFIXES:
        if name.endswith(suffix):
            return unit
    tokens = name.split("_")  # a unit followed by a qualifier: pss_kb_delta, heap_kb_before, bytes_written
    for token, unit in (("kb", "kB"), ("bytes", "bytes")):
        if token in tokens:
            return unit
    return ""


# ---------------------------------------------------------------------------------------------- cookbook

@dataclass(frozen=True)
class Recipe:
    question: str
    notes: str
    sql: str
    #: parameter name -> default (as ``--param NAME=VALUE`` parses it)
    params: dict = field(default_factory=dict)
    #: parameter name -> meaning
    param_docs: dict = field(default_factory=dict)


def load_cookbook(path: Path | str = COOKBOOK_PATH) -> list[Recipe]:
    """Parse ``docs/cookbook.sql``: ``-- question:`` starts a recipe, ``-- param: NAME=DEFAULT | meaning``
    declares a parameter, other comment lines before the SQL are notes; the SQL ends with ``;``."""
    recipes: list[Recipe] = []
    cur: dict | None = None

    def close():
        if cur is None:
            return
        sql = "\n".join(cur["sql"]).strip()
        if not sql.endswith(";"):
            raise MemsnapError(f"{path}: recipe {cur['question']!r} has no SQL ending with ';'",
                               hint="end every recipe's statement with ';'")
        recipes.append(Recipe(cur["question"], " ".join(cur["notes"]), sql[:-1].rstrip(), cur["params"],
                              cur["docs"]))

    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("-- question:"):
            close()
            cur = {"question": stripped.split(":", 1)[1].strip(), "notes": [], "params": {}, "docs": {}, "sql": []}
        elif cur is None:
            continue  # the file's preamble
        elif stripped.startswith("-- param:") and not cur["sql"]:
            decl, _, meaning = stripped.split(":", 1)[1].partition(" | ")
            params = parse_params([decl.strip()])
            cur["params"].update(params)
            cur["docs"].update({k: meaning.strip() for k in params})
        elif stripped.startswith("--") and not cur["sql"]:
            cur["notes"].append(stripped[2:].strip())
        elif stripped or cur["sql"]:
            cur["sql"].append(line)
    close()
    return recipes


# ---------------------------------------------------------------------------------------------- running

def _sample_params(st, q: queries.NamedQuery) -> dict:
    return named_query_params(st, q.name, {k: v for k, v in SAMPLE_PARAMS.items() if k in q.params})


def macro_signature(q: queries.NamedQuery) -> list[str]:
    m = re.search(rf"MACRO\s+\"?{re.escape(q.name)}\"?\s*\(([^)]*)\)", q.sql, re.I)
    if not m:
        raise MemsnapError(f"queries/{q.name}.sql: no CREATE MACRO {q.name}(...) signature",
                           hint="kind: macro files hold one CREATE OR REPLACE MACRO statement")
    return [a.strip() for a in m.group(1).split(",") if a.strip()]


def macro_args(st, q: queries.NamedQuery) -> list:
    """Sample arguments for a table macro: host and snapshot id of the latest snapshot, NULL for the rest."""
    snap = st.resolve("latest")[0]
    known = {"h": snap.host, "host": snap.host, "sid": snap.snapshot_id, "snapshot_id": snap.snapshot_id}
    return [known.get(a, SAMPLE_PARAMS.get(a)) for a in macro_signature(q)]


def describe(st, sql: str, params=None) -> list[tuple[str, str]]:
    """Run ``sql`` with ``LIMIT 0`` and return its output columns as (name, DuckDB type)."""
    cur = st.con.execute(f"SELECT * FROM (\n{sql}\n) AS q LIMIT 0", params) if params is not None else \
        st.con.execute(f"SELECT * FROM (\n{sql}\n) AS q LIMIT 0")
    return [(d[0], str(d[1])) for d in cur.description]


def named_columns(st, q: queries.NamedQuery) -> list[tuple[str, str]]:
    if q.kind == "view":
        return describe(st, f'SELECT * FROM "{q.name}"')
    if q.kind == "macro":
        args = macro_args(st, q)
        return describe(st, f'SELECT * FROM "{q.name}"({", ".join("?" for _ in args)})', args)
    return describe(st, q.sql, _sample_params(st, q))


# ---------------------------------------------------------------------------------------------- rendering

def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _columns_table(cols: list[tuple[str, str]]) -> list[str]:
    out = ["| column | type | unit |", "|---|---|---|"]
    out += [f"| `{n}` | {_cell(t)} | {unit_of(n)} |" for n, t in cols]
    return out


def _anchor(name: str) -> str:
    return name.lower()


def render(store_path: Path | str = SAMPLE_STORE, cookbook_path: Path | str = COOKBOOK_PATH) -> str:
    from .store import open_store

    allq = queries.all_queries()
    recipes = load_cookbook(cookbook_path)
    out = [
        "# SQL on memsnap stores",
        "",
        "<!-- generated by `python -m analyzer.sqldocs` from schema/, queries/*.sql and docs/cookbook.sql; "
        "do not edit -->",
        "",
        "Every stored table and every view below can be queried with DuckDB SQL:",
        "",
        "- `memsnap sql [STORE...] \"SELECT ...\" [--param NAME=VALUE] [-f table|csv|json|markdown|parquet -o FILE]`,"
        " or `memsnap sql STORE` for an interactive prompt (`.tables`, `.schema NAME`, `.quit`);",
        "- `memsnap query NAME [STORE...]` runs a named query of `queries/` (`memsnap query --list`); host and "
        "snapshot parameters default to the latest snapshot, optional filters to NULL;",
        "- `memsnap export-db STORE OUT.duckdb [--materialize]` writes a DuckDB database with the same tables, views "
        "and macros for the duckdb CLI, DBeaver or a notebook;",
        "- Python: `from analyzer import open_store; st = open_store(\"STORE\")`, then "
        "`st.sql(\"SELECT ...\", params={...}).to_arrow_table()`, `st.query(NAME, params)`, or SQLAlchemy Core on "
        "`st.engine` with `st.tables[\"processes\"]`.",
        "",
        "`memsnap sql` is read-only: COPY, EXPORT, ATTACH, INSTALL/LOAD and SET are refused and settings are locked; "
        "the store is never modified. It reads the store's files and no others (`read_text('/etc/shadow')` is "
        "refused): `--allow-files` lifts that for a query that must read a file of yours. Values come in as bound "
        "parameters (`$name` with `--param name=VALUE`; JSON lists, numbers and null are typed), never spliced into "
        "the SQL text.",
        "",
        "**On Spark** (`memsnap --engine spark sql|query ...`, docs/fleet.md) the same text runs: memsnap "
        "translates DuckDB's SQL to Spark SQL (sqlglot, plus its own rewrites: table macros expanded, `ASOF JOIN` "
        "as a range join, unsigned 64-bit columns as BIGINT holding the same bits). Write your SQL in DuckDB's "
        "dialect. Differences: regular expressions (`regexp_matches`, -P/-U/-M) are Java's on Spark, RE2's on "
        "DuckDB (the common syntax means the same; Java also has backreferences and lookaround, RE2 refuses "
        "them); UINT64 columns (`entry`, `pfn`, `flags`, `vpn`, addresses) are signed BIGINT inside Spark, so test "
        "bits as `((x >> k) & 1) = 1`, never `x >> 63 = 1` or `x > 2^63`; results in columns so named are given "
        "back unsigned; a list without ORDER BY, and rows without ORDER BY, come in no defined order on either "
        "engine; DuckDB-only functions sqlglot cannot translate fail with one line naming the Spark text.",
        "",
        "Every query runs on the committed snapshots only. A snapshot is identified by `(host, snapshot_id)`: "
        "stores merged from several hosts (or copies) can hold the same id under several hosts, so join on both. "
        "Snapshot ids sort by capture time. Column types below are DuckDB's, read by running each view and query "
        "on `sample_data/store`; units are inferred from the column names (`_kb` kB, `_bytes` bytes, `_ms` "
        "milliseconds, `_s` seconds, `_pages` pages, `_fp` PSS fixed point).",
        "",
        "## Contents",
        "",
        "- [Stored tables](#stored-tables): " + ", ".join(f"[`{t}`](#{_anchor(t)})" for t in TABLES),
        "- [Views](#views): " + ", ".join(f"[`{q.name}`](#{_anchor(q.name)})" for q in allq.values()
                                          if q.kind == "view"),
        "- [Table macros](#table-macros): " + ", ".join(f"[`{q.name}`](#{_anchor(q.name)})" for q in allq.values()
                                                        if q.kind == "macro"),
        "- [Named queries](#named-queries): " + ", ".join(f"[`{q.name}`](#{_anchor(q.name)})"
                                                          for q in allq.values() if q.kind == "query"),
        f"- [Cookbook](#cookbook): {len(recipes)} questions answered in SQL",
        "",
        "## Stored tables",
        "",
        "One view per table over the store's visible Parquet files: every committed snapshot once, whether its "
        "rows are in its own file or in a compacted one (`memsnap compact`). Every table also has the Hive "
        "partition columns "
        f"{', '.join('`%s`' % p for p in PARTITION_COLUMNS)} (VARCHAR, DATE). Column types, units and meanings: "
        "[docs/schema.md](schema.md).",
        "",
    ]
    for t in TABLES.values():
        cols = ", ".join(f"`{c.name}`" + (f" ({c.unit})" if c.unit else "") for c in t.columns)
        out += [f"### {t.name}", "", f"One row per {t.row}. {t.description}", "",
                f"Key: {', '.join('`%s`' % k for k in ('host',) + t.key)}. "
                f"Columns ([details](schema.md#{_anchor(t.name)})): {cols}, `host`, `date`.", ""]

    with open_store(str(store_path)) as st:
        for kind, title, intro in (
            ("view", "Views", "Created when a store is opened (and in `export-db` files); query them like tables."),
            ("macro", "Table macros", "Parameterised views: call them in FROM, e.g. "
                                      "`SELECT * FROM snapshot_pages('myhost', '2026...')`."),
            ("query", "Named queries", "Run with `memsnap query NAME [STORE...] [--param NAME=VALUE]`, or "
                                       "`st.query(NAME, params)` in Python. Parameters are bound as `$name`."),
        ):
            out += [f"## {title}", "", intro, ""]
            for q in (q for q in allq.values() if q.kind == kind):
                out += [f"### {q.name}", "", q.description, "", f"Source: `queries/{q.name}.sql`.", ""]
                if kind == "macro":
                    out += [f"Call: `SELECT * FROM {q.name}({', '.join(macro_signature(q))})`.", ""]
                if q.params:
                    out += ["| parameter | meaning |", "|---|---|"]
                    out += [f"| `${p}` | {_cell(doc)} |" for p, doc in q.params.items()]
                    out.append("")
                out += ["Output columns:", "", *_columns_table(named_columns(st, q)), ""]

        out += ["## Cookbook", "",
                "Questions people ask of a store, answered in SQL (source: `docs/cookbook.sql`; each recipe is run "
                "on `sample_data/store` by the tests). Paste one into the `memsnap sql` prompt, or run it with "
                "`memsnap sql STORE \"...\" --param NAME=VALUE`. Recipes with parameters list their defaults.",
                ""]
        for i, r in enumerate(recipes, 1):
            out += [f"### {i}. {r.question}", ""]
            if r.notes:
                out += [r.notes, ""]
            if r.params:
                out += ["| parameter | default | meaning |", "|---|---|---|"]
                out += [f"| `${p}` | `{_cell(_show(v))}` | {_cell(r.param_docs.get(p, ''))} |"
                        for p, v in r.params.items()]
                out.append("")
            out += ["```sql", r.sql + ";", "```", ""]
            cols = describe(st, r.sql, r.params or None)
            out += ["Columns: " + ", ".join(f"`{n}` {t}" + (f" ({unit_of(n)})" if unit_of(n) else "")
                                            for n, t in cols) + ".", ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _show(v) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v)


def main(argv=None) -> int:
    DOC_PATH.parent.mkdir(parents=True, exist_ok=True)
    DOC_PATH.write_text(render())
    sys.stderr.write(f"wrote {DOC_PATH}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
