"""The Spark engine: the analyzer's queries on Apache Spark, over the same visible Parquet files.

``memsnap --engine spark`` (or ``MEMSNAP_ENGINE=spark``) opens the store as DuckDB does (the file selection,
the footer checks, ``skip_bad``: :class:`analyzer.store.Store`, unchanged), then swaps the connection the
analysis modules talk to for a :class:`SparkConnection` with the same surface (``execute(sql, params)``,
``fetchall``, ``fetchone``, ``description``, ``sql``).  Each stored table is a Spark temp view over exactly
the files the catalog chose; every statement is the DuckDB text of ``queries/`` (or of the modules),
translated at run time by :func:`translate` (sqlglot, duckdb -> spark, plus the rewrites below) and run with
its parameters bound (``spark.sql(text, args=...)``).  No Spark text is kept by hand.  docs/fleet.md,
"Spark engine", lists the semantic differences.

Rewrites on top of sqlglot (each has no Spark spelling, or sqlglot's is wrong):

* table macros (``CREATE MACRO name(a, b) AS TABLE body``): expanded where used, as DuckDB does itself
  (the body as a subquery, its parameters replaced by the call's arguments);
* ``ASOF JOIN`` -> an inner join with the same condition (user SQL: queries/ has none since schema 4, pages
  join mappings on ``pages.map_idx``; older stores' ``pages`` view gets it by a range join with both bounds,
  :func:`analyzer.store.pages_by_address_sql`).  Exact when the query keeps a page only when vpn < end:
  mappings of a process do not overlap, so the one mapping with start <= vpn < end is the same row;
* several ``unnest`` in one select list (DuckDB zips them) -> ``inline(arrays_zip(...))``;
* ``list(x ORDER BY x)`` / ``list(DISTINCT x ORDER BY x)`` -> ``array_sort(collect_list|collect_set(x))``;
* ``(a, b) IN (SELECT (x, y) ...)`` -> ``(a, b) IN (SELECT x, y ...)``;
* ``list_contains($param, x)``: the parameter cast to ARRAY<BIGINT> (it may be bound to NULL);
* ``date_diff('millisecond'|'second'|'microsecond', a, b)``: boundaries crossed, as DuckDB counts them;
* casts to UBIGINT -> BIGINT; ``list_position`` -> ``array_position``; ``to_microseconds(n)`` -> an
  interval of n microseconds.

Unsigned 64-bit columns (Parquet UINT64: Spark reads DECIMAL(20,0)) become BIGINT holding the same 64 bits
(values >= 2^63 negative) when the views are created; every bit test in queries/ is written ``(x >> k) & 1``
so that it holds for both.  Results in a column named like a stored UINT64 column are given back unsigned.
"""
from __future__ import annotations

import datetime as dt
import decimal
import os
import re
import threading
from functools import lru_cache

from common import objstore
from common.errors import MemsnapError
from schema import TABLES, U64

from . import queries

DEFAULT_MASTER = "local[*]"
#: Spark settings memsnap sets (docs/fleet.md): no web UI, few shuffle partitions (one host's snapshot is
#: small), the driver on loopback, UTC, and ANSI mode on (an integer overflow raises, as in DuckDB, instead
#: of wrapping); partition values stay strings (a host named 123 is not a number).
CONF = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.runSQLOnFiles": "false",  # `SELECT * FROM parquet.`/any/path``: user SQL reads the store only
    "spark.sql.adaptive.enabled": "true",
    # no broadcast join planned from file sizes: memsnap's Parquet holds 0.6-2.3 B per page row, so a 10 MB pages
    # file is millions of rows, and broadcasting it ran the 5M-page diff out of heap (bench/spark_bench.py);
    # adaptive execution still broadcasts a side whose real (shuffled) size is under 10 MB
    "spark.sql.autoBroadcastJoinThreshold": "-1",
    "spark.sql.adaptive.autoBroadcastJoinThreshold": "10MB",
    "spark.driver.memory": "1g",
    "spark.ui.showConsoleProgress": "false",
    # Spark 4.3's vectorized reader fails on dictionary-encoded UINT64 pages ("Cannot call the method
    # readUnsignedLongs"): the row reader reads them (as DECIMAL(20,0))
    "spark.sql.parquet.enableVectorizedReader": "false",
}

#: Hadoop's S3A filesystem (hadoop-aws) is not in the pyspark wheel: $MEMSNAP_SPARK_JARS lists its jars (comma-
#: separated: hadoop-aws and the AWS SDK it was built with), given to the driver and executors as spark.jars.
JARS_ENV = "MEMSNAP_SPARK_JARS"
#: S3A settings of Hadoop 3.4+ written with units ("60s") that hadoop-aws 3.3 reads as plain numbers and
#: fails on; these plain values mean the same in both (each key's default unit: ms, ms, s, s)
S3A_PLAIN = {"fs.s3a.connection.establish.timeout": "30000", "fs.s3a.connection.timeout": "200000",
             "fs.s3a.threads.keepalivetime": "60", "fs.s3a.multipart.purge.age": "86400"}


def s3a_conf() -> dict[str, str]:
    """The Hadoop settings for a store on S3 (``s3a://``), from the AWS environment memsnap's own S3 access
    reads (common/objstore.py): the endpoint, path-style, with TLS as its scheme says; the keys, when set,
    through S3A's provider for them (Hadoop 3.5's default list names AWS SDK v2 classes only)."""
    conf = dict(S3A_PLAIN)
    e = objstore.endpoint()
    if e:
        conf.update({"fs.s3a.endpoint": f"{e[0]}://{e[1]}", "fs.s3a.path.style.access": "true",
                     "fs.s3a.connection.ssl.enabled": str(e[0] == "https").lower()})
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if key and secret:
        conf.update({"fs.s3a.access.key": key, "fs.s3a.secret.key": secret})
        if os.environ.get("AWS_SESSION_TOKEN"):
            conf.update({"fs.s3a.session.token": os.environ["AWS_SESSION_TOKEN"],
                         "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider"})
        else:
            conf["fs.s3a.aws.credentials.provider"] = "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        conf["fs.s3a.endpoint.region"] = region
    return conf


_lock = threading.Lock()
_session = None
_session_master = None


def master_of(master: str | None = None) -> str:
    return master or os.environ.get("MEMSNAP_SPARK_MASTER") or DEFAULT_MASTER


def session(master: str | None = None):
    """The process's one SparkSession (started on first use; a different master stops the old one)."""
    global _session, _session_master
    master = master_of(master)
    with _lock:
        if _session is not None and _session_master == master:
            return _session
        try:
            from pyspark import SparkConf, SparkContext
            from pyspark.sql import SparkSession
        except ImportError:
            raise MemsnapError("--engine spark needs pyspark", hint="pip install 'memsnap[spark]' "
                               "(pyspark 4, and Java 17 or later on PATH)") from None
        if _session is not None:
            _session.stop()
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # else a warning that the hostname is loopback
        conf = SparkConf().setMaster(master).setAppName("memsnap").setAll(list(CONF.items()))
        if os.environ.get(JARS_ENV):
            conf.set("spark.jars", os.environ[JARS_ENV])
        try:
            sc = SparkContext(conf=conf, gateway=_gateway(conf))
            _session = SparkSession(sc)
        except Exception as e:
            raise MemsnapError(f"cannot start Spark on {master}: {str(e).splitlines()[0][:200]}",
                               hint="check --spark-master (spark://HOST:PORT or local[N]) and that Java 17+ "
                                    f"is installed; the JVM's output: {_jvm_log_path}") from None
        _session.sparkContext.setLogLevel("ERROR")
        _session_master = master
        return _session


_gw = None
_jvm_log_path = None


def _gateway(conf):
    """The process's one Py4J gateway (the driver JVM), its stdout and stderr going to a log file, not to
    memsnap's: the JVM writes a module warning, log4j's start-up lines and WARNs (native Hadoop, loopback)
    before any log level can be set, and memsnap's stderr carries only its own messages (and its stdout only
    the answer).  The file: $MEMSNAP_SPARK_LOG, else memsnap-spark-<pid>.log in the temp directory, removed
    at exit (kept when $MEMSNAP_SPARK_LOG names it)."""
    global _gw, _jvm_log_path
    if _gw is None:
        import atexit
        import tempfile

        from pyspark.java_gateway import launch_gateway

        _jvm_log_path = os.environ.get("MEMSNAP_SPARK_LOG") or \
            os.path.join(tempfile.gettempdir(), f"memsnap-spark-{os.getpid()}.log")
        with open(_jvm_log_path, "ab") as log:
            _gw = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
        if not os.environ.get("MEMSNAP_SPARK_LOG"):
            atexit.register(_drop_log, _jvm_log_path)
    return _gw


def _drop_log(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def stop() -> None:
    global _session, _session_master
    with _lock:
        if _session is not None:
            _session.stop()
        _session = _session_master = None


# ---------------------------------------------------------------------------------------------- translation
def _sqlglot():
    import sqlglot
    from sqlglot import exp

    return sqlglot, exp


@lru_cache(maxsize=None)
def _macros() -> dict:
    """name -> (parameter names, body AST) of every ``kind: macro`` file."""
    sqlglot, _ = _sqlglot()
    out = {}
    for q in queries.all_queries().values():
        if q.kind != "macro":
            continue
        m = re.search(r"CREATE\s+(?:OR\s+REPLACE\s+)?MACRO\s+(\w+)\s*\(([^)]*)\)\s+AS\s+TABLE\s+(.*)", q.sql,
                      re.S | re.I)
        if not m:
            raise MemsnapError(f"queries: macro {q.name} is not a table macro the Spark engine can expand")
        out[m[1].lower()] = ([p.strip().lower() for p in m[2].split(",") if p.strip()],
                             sqlglot.parse_one(m[3], read="duckdb"))
    return out


def _expand_macros(tree):
    _, exp = _sqlglot()
    macros = _macros()

    def repl(node):
        if isinstance(node, exp.Table) and isinstance(node.this, exp.Anonymous) and \
                node.this.name.lower() in macros:
            params, body = macros[node.this.name.lower()]
            args = dict(zip(params, node.this.expressions))
            inner = body.copy().transform(
                lambda n: args[n.name.lower()].copy() if isinstance(n, exp.Column) and not n.table and
                n.name.lower() in args else n)
            inner = _expand_macros(inner)
            alias = node.args.get("alias")
            return exp.Subquery(this=inner, alias=alias.copy() if alias else
                                exp.TableAlias(this=exp.to_identifier(node.this.name)))
        return node

    return tree.transform(repl)


def _rewrite(node):
    _, exp = _sqlglot()
    fn = exp.Anonymous
    if isinstance(node, exp.Join) and str(node.args.get("method") or "").upper() == "ASOF":
        node.set("method", None)
        return node
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.UBIGINT:
        return exp.DataType.build("BIGINT")
    if isinstance(node, exp.Select) and len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Tuple) \
            and isinstance(node.parent, exp.In) or (isinstance(node.parent, exp.Subquery) and
                                                   isinstance(node.parent.parent, exp.In)):
        # `(a, b) IN (SELECT (x, y) ...)`: Spark wants the subquery's columns, not one struct
        if len(node.expressions) == 1 and isinstance(node.expressions[0], exp.Tuple):
            node.set("expressions", list(node.expressions[0].expressions))
    if isinstance(node, exp.Select):
        gens = [e for e in node.expressions if isinstance(e.unalias(), (exp.Unnest, exp.Explode))]
        if len(gens) > 1:
            arrays = []
            for g in gens:
                g = g.unalias()
                arrays += g.expressions if isinstance(g, exp.Unnest) else [g.this]
            rest = [e for e in node.expressions if e not in gens]
            node.set("expressions", rest + [fn(this="inline", expressions=[fn(this="arrays_zip",
                                                                                expressions=arrays)])])
        return node
    if isinstance(node, exp.ArrayAgg) and isinstance(node.this, exp.Order):
        inner = node.this.this
        agg = "collect_list"
        if isinstance(inner, exp.Distinct):
            inner, agg = inner.expressions[0], "collect_set"
        keys = node.this.expressions
        if len(keys) != 1 or keys[0].this != inner or keys[0].args.get("desc"):
            raise MemsnapError(f"Spark engine: list(... ORDER BY ...) other than by the listed value: {node.sql()}")
        return fn(this="array_sort", expressions=[fn(this=agg, expressions=[inner])])
    if isinstance(node, exp.ArrayContains) and isinstance(node.this, exp.Placeholder):
        # a list parameter may be bound to NULL (`$pids IS NULL OR list_contains($pids, pid)`): Spark types a
        # NULL argument as VOID and refuses it; a list of integers is what memsnap binds there
        node.set("this", exp.cast(node.this, exp.DataType.build("ARRAY<BIGINT>", dialect="spark")))
        return node
    if isinstance(node, exp.DateDiff) and str(node.args.get("unit") or "").upper() in _US_PER:
        # DuckDB's date_diff counts unit boundaries crossed (0.2265 s -> 0.227 s between .x6 and .x3 ms);
        # Spark's timestampdiff truncates the difference (0.226): both ends truncated to the unit first
        per = exp.Literal.number(_US_PER[str(node.args["unit"]).upper()])
        return exp.paren(exp.Sub(this=exp.IntDiv(this=fn(this="unix_micros", expressions=[node.this]), expression=per),
                       expression=exp.IntDiv(this=fn(this="unix_micros", expressions=[node.expression]),
                                             expression=per.copy())))
    if isinstance(node, exp.ArrayOverlaps):  # list_has_any: sqlglot writes `a && b`, which Spark lacks
        return fn(this="arrays_overlap", expressions=[node.this, node.expression])
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "list_position":
            return fn(this="array_position", expressions=node.expressions)
        if name == "to_microseconds":
            return exp.Mul(this=exp.paren(node.expressions[0]),
                           expression=exp.Interval(this=exp.Literal.string("0.000001"), unit=exp.var("SECOND")))
    return node


_US_PER = {"MICROSECOND": 1, "MILLISECOND": 1000, "SECOND": 1000000}


@lru_cache(maxsize=512)
def translate(sql: str) -> str:
    """Spark SQL for one DuckDB statement (macros expanded, the rewrites of this module's docstring)."""
    sqlglot, _ = _sqlglot()
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise MemsnapError(f"Spark engine: cannot parse the statement ({str(e).splitlines()[0]})",
                           hint="write it in DuckDB's SQL: memsnap translates it to Spark SQL") from None
    tree = _expand_macros(tree).transform(_rewrite)
    return tree.sql(dialect="spark", comments=False)


# ---------------------------------------------------------------------------------------------- connection
#: result columns given back unsigned: the stored UINT64 columns' names
UNSIGNED = frozenset(c.name for t in TABLES.values() for c in t.columns if c.type == U64)
_CREATE_TEMP = re.compile(r"\s*CREATE\s+(?:OR\s+REPLACE\s+)?TEMP(?:ORARY)?\s+TABLE\s+(\w+)\s+AS\s+(.*)", re.S | re.I)


class SparkError(MemsnapError):
    pass


def spark_type(t: str) -> str:
    """The Spark type of a column type of :data:`schema.TYPES` (U64: BIGINT, the same bits)."""
    from schema import BOOL, F64, I32, I64, KB_MAP, STR, TS

    types = {STR: "string", I32: "int", I64: "bigint", U64: "bigint", F64: "double", BOOL: "boolean",
             TS: "timestamp", KB_MAP: "map<string,bigint>"}
    if t not in types:
        raise TypeError(f"no Spark type for column type {t}: add it to analyzer.spark.spark_type")
    return types[t]


def _py(v, unsigned: bool):
    if isinstance(v, decimal.Decimal):
        return int(v) if v == v.to_integral_value() and v.as_tuple().exponent >= 0 else float(v)
    if unsigned and isinstance(v, int) and v < 0:
        return v + (1 << 64)
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.timezone.utc)  # the session time zone is UTC (and so is the driver's TZ)
    if isinstance(v, list):
        return [_py(x, False) for x in v]
    return v


class _errors:
    """Spark's and Py4J's exceptions as one :class:`SparkError` line (the statement, if given, in the hint)."""

    def __init__(self, text: str):
        self.text = text

    def __enter__(self):
        return self

    def __exit__(self, kind, e, tb):
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        if e is None or not isinstance(e, (PySparkException, Py4JError)):
            return False
        if "S3AFileSystem not found" in str(e):
            raise SparkError("Spark cannot read s3a:// URLs: Hadoop's S3A filesystem (hadoop-aws) is not on its "
                             "classpath", hint=f"set ${JARS_ENV} to the hadoop-aws and AWS SDK bundle jars built "
                             "for Spark's Hadoop (`make spark-s3a-jars` fetches a pair that works; docs/fleet.md)") \
                from None
        lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
        # Py4J's text starts "An error occurred while calling o123.collectToPython."; the Java cause follows
        cause = next((ln for ln in lines if not ln.startswith("An error occurred while calling")), None)
        msg = (cause or (lines[0] if lines else type(e).__name__)).lstrip(": ")
        hint = ("the statement, translated from DuckDB's SQL: " + " ".join(self.text.split())[:300]) if self.text \
            else f"while running a query; the JVM's log: {_jvm_log_path or 'not kept'} (set MEMSNAP_SPARK_LOG to keep it)"
        raise SparkError(f"Spark: {msg[:300]}", hint=hint) from None


class SparkCursor:
    def __init__(self, df):
        self._df = df
        self._rows = None
        self.description = None if df is None else [(f.name, f.dataType.simpleString(), None, None, None, None,
                                                     None) for f in df.schema.fields]

    def _all(self):
        if self._rows is None:
            uns = [d[0] in UNSIGNED for d in self.description or []]
            with _errors(""):  # a failure while running (out of memory, a lost executor): one line, not a trace
                rows = self._df.collect() if self._df is not None else []
            self._rows = [tuple(_py(v, u) for v, u in zip(r, uns)) for r in rows]
        return self._rows

    def fetchall(self):
        rows, self._rows = self._all(), []
        return rows

    def fetchone(self):
        rows = self._all()
        return rows.pop(0) if rows else None


def _params(sql: str, params):
    """DuckDB's bound parameters as Spark's: ``?`` a list, ``$name`` a dict (Spark: ``:name``).  Spark takes
    only the names a statement uses."""
    if params is None:
        return None
    if isinstance(params, dict):
        return {k: v for k, v in params.items() if re.search(r"\$" + re.escape(k) + r"\b", sql)} or None
    return list(params) or None


class SparkConnection:
    """The surface of a DuckDB connection the analysis modules use, on a SparkSession."""

    def __init__(self, spark, files: dict[str, list[str]], duck):
        self.spark = spark
        self.duck = duck  # the DuckDB connection: the SQL parser for `memsnap sql`'s statement checks
        self._views = []
        for table in TABLES:
            self._table_view(table, files.get(table, []))
        from .store import pages_by_address_sql, pages_without_map_idx

        if pages_without_map_idx(duck, files.get("pages", [])):  # a store before schema 4: map_idx by address
            self._run("CREATE OR REPLACE TEMP VIEW pages AS " + translate(
                "SELECT * FROM _raw_pages WHERE map_idx IS NOT NULL UNION ALL "
                + pages_by_address_sql("SELECT * FROM _raw_pages WHERE map_idx IS NULL", asof=False)), None)
        for q in queries.all_queries().values():
            if q.kind == "view":
                self._run(f'CREATE OR REPLACE TEMP VIEW {q.name} AS {translate(q.sql)}', None)
                self._views.append(q.name)

    def _table_view(self, table: str, files: list[str]) -> None:
        from pyspark.sql import functions as F

        cols = TABLES[table].columns
        # the schema given, not inferred (no job reading footers): UINT64 as Spark reads it, DECIMAL(20,0);
        # columns a file lacks (written before they were added) read as null, as design.md wants
        read = ", ".join(f"`{c.name}` {'decimal(20,0)' if c.type == U64 else spark_type(c.type)}" for c in cols) + \
            ", host string, date string"
        by_base: dict[str, list[str]] = {}
        for f in files:  # <store>/<table>/host=H/date=D/x.parquet: one read per store (its basePath)
            f = objstore.to_s3a(f) if objstore.is_url(f) else f  # s3://: Hadoop's S3A filesystem
            by_base.setdefault(f.rsplit(os.sep, 3)[0], []).append(f)
        sel = [F.expr(f"CAST(CASE WHEN `{c.name}` >= 9223372036854775808 THEN `{c.name}` - 18446744073709551616 "
                      f"ELSE `{c.name}` END AS BIGINT)").alias(c.name) if c.type == U64 else F.col(c.name)
               for c in cols]  # UINT64: BIGINT with the same 64 bits
        sel += [F.col("host"), F.col("date").cast("date").alias("date")]
        df = None
        for base, fs in by_base.items():
            with _errors(""):
                part = self.spark.read.schema(read).option("basePath", base).parquet(*fs).select(*sel)
            df = part if df is None else df.unionByName(part)
        if df is None:
            df = self.spark.createDataFrame([], read).select(*sel)
        df.createOrReplaceTempView(table)
        df.createOrReplaceTempView("_raw_" + table)

    def _run(self, text: str, args):
        with _errors(text):
            return self.spark.sql(text, args=args) if args else self.spark.sql(text)

    def execute(self, query: str, params=None) -> SparkCursor:
        m = _CREATE_TEMP.match(query)
        if m:  # a temp table: a cached view (its rows computed once, as DuckDB stores them)
            df = self._run(translate(m[2]), _params(m[2], params))
            df = df.cache()
            df.createOrReplaceTempView(m[1])
            return SparkCursor(None)
        text = translate(query)
        return SparkCursor(self._run(text, _params(query, params)))

    def sql(self, query: str, params=None):
        return SparkRelation(self.execute(query, params))

    def extract_statements(self, sql: str):
        return self.duck.extract_statements(sql)

    def cursor(self):
        raise MemsnapError("SQLAlchemy on the Spark engine is not supported", hint="use --engine duckdb")

    def close(self) -> None:
        for name in [*self._views, *TABLES, *("_raw_" + t for t in TABLES)]:
            self.spark.catalog.dropTempView(name)
        self.duck.close()


class SparkRelation:
    """The part of a DuckDB relation the modules use: rows, columns, Arrow."""

    def __init__(self, cur: SparkCursor):
        self._cur = cur
        self.columns = [d[0] for d in cur.description or []]

    def fetchall(self):
        return self._cur.fetchall()

    def to_arrow_table(self):
        import pyarrow as pa

        rows = self._cur.fetchall()
        return pa.table({c: [r[i] for r in rows] for i, c in enumerate(self.columns)})

    arrow = to_arrow_table


def register(spark, paths, **kw) -> SparkConnection:
    """For an existing Spark deployment (spark-submit, a notebook): on the SparkSession ``spark``, register the
    stored tables and memsnap's views as temp views over the visible files of the stores ``paths`` (chosen as
    the CLI chooses them), and return the connection: ``con.execute(duckdb_sql, params).fetchall()`` runs a
    query, ``translate(queries.get(NAME).sql)`` gives the Spark text of a named query to run yourself::

        from analyzer.spark import register, translate
        from analyzer import queries
        con = register(spark, "/data/memsnap-central")
        spark.sql(translate(queries.get("page_mapping_facts").sql), args={"snapshot_ids": ["..."]}).show()

    ``paths`` are directories (local or shared) or ``s3://`` URLs (read by Spark as ``s3a://``, with the AWS
    environment's endpoint and keys: :func:`s3a_conf`): the file listing is done by this process."""
    from .store import Store

    st = Store(paths, **kw)
    _s3a(spark, st.paths)
    return SparkConnection(spark, st._good, st.con)


def _s3a(spark, paths) -> None:
    """A store on S3: its settings (:func:`s3a_conf`) on the session's Hadoop configuration."""
    if any(objstore.is_url(p) for p in paths):
        hconf = spark.sparkContext._jsc.hadoopConfiguration()
        for k, v in s3a_conf().items():
            hconf.set(k, v)


def attach(store, master: str | None = None) -> None:
    """Put ``store`` (an opened :class:`analyzer.store.Store`) on Spark: its views over the same files."""
    spark = session(master)
    _s3a(spark, store.paths)
    store.con = SparkConnection(spark, store._good, store.con)
    store.engine_name = "spark"
