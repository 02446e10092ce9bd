"""A small SQL expression builder with SQLAlchemy Core's spelling, for the statements :mod:`analyzer.sizes` builds.

Why: ``import sqlalchemy`` costs 0.2-0.4 s here, more than the rest of ``memsnap sizes`` on a small store
(issue 15; BENCHMARKS.md, "Start-up").  What sizes needs of it is small: columns of two tables and of one
subquery, ``sum``/``count``/``coalesce``/``regexp_matches``/``bool_or``, ``CAST``, ``+ * / = >>``, ``AND``/``OR``,
labels, bound parameters, one join and ``GROUP BY``.  This module offers exactly those under the same names
(``select``, ``func``, ``cast``, ``bindparam``, ``and_``, ``or_``, ``false``, ``distinct``, ``literal_column``,
``Table``/``Column``/``MetaData``, ``sql.visitors.iterate``) and compiles them to the text SQLAlchemy's generic
dialect gives with sizes' settings (``?`` parameters, native booleans, ``/`` not floor division): the same
operator precedence and parenthesising, identifier quoting, labels and line breaks.
``tests/test_sizes_cli.py`` compiles every statement sizes can build both ways (this module and SQLAlchemy
2.x) and requires the same text and parameters.  The Python API (``Store.engine``) still hands out real
SQLAlchemy; docs/design.md, "Start-up".
"""
from __future__ import annotations

import re
from types import SimpleNamespace

#: identifiers quoted when used as names (the reserved key words of SQL as PostgreSQL lists them)
RESERVED = frozenset("""
all analyse analyze and any array as asc asymmetric authorization between binary both case cast check collate
column constraint create cross current_date current_role current_time current_timestamp current_user default
deferrable desc distinct do else end except false for foreign freeze from full grant group having ilike in
initially inner intersect into is isnull join leading left like limit localtime localtimestamp natural new not
notnull null off offset old on only or order outer overlaps placing primary references right select session_user
set similar some symmetric table then to trailing true union unique user using verbose when where""".split())
_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote(name: str) -> str:
    if name in RESERVED or not _PLAIN.match(name):
        return '"' + name.replace('"', '""') + '"'
    return name


class _Op:
    """A binary operator: its text, precedence (SQLAlchemy's scale) and whether a chain of it needs no
    parentheses (a + b + c)."""
    def __init__(self, text: str, prec: int, associative: bool = False):
        self.text, self.prec, self.associative = text, prec, associative


_ADD, _SUB, _MUL, _DIV = _Op("+", 7, True), _Op("-", 7), _Op("*", 8, True), _Op("/", 8)
_EQ, _AND, _OR = _Op("=", 5), _Op("AND", 3, True), _Op("OR", 2, True)
_AS, _WHERE = _Op("AS", -1), _Op("", -10)  # a label's element; a lone WHERE criterion


class _Ctx:
    def __init__(self):
        self.params: list = []


class Element:
    """An SQL expression."""
    __hash__ = object.__hash__
    prec = 100  # a leaf: never parenthesised

    def children(self) -> tuple:
        return ()

    def sql(self, ctx: _Ctx) -> str:
        raise NotImplementedError

    def grouped(self, against: _Op, ctx: _Ctx) -> str:
        return self.sql(ctx)

    def label(self, name: str) -> Label:
        return Label(self, name)

    def op(self, text: str):
        return lambda other: Binary(self, other, _Op(text, 0))

    def __add__(self, other): return Binary(self, other, _ADD)
    def __sub__(self, other): return Binary(self, other, _SUB)
    def __mul__(self, other): return Binary(self, other, _MUL)
    def __truediv__(self, other): return Binary(self, other, _DIV)
    def __eq__(self, other): return Binary(self, other, _EQ)  # type: ignore[override]


def _coerce(v) -> Element:
    return v if isinstance(v, Element) else BindParam(None, v)


class BindParam(Element):
    def __init__(self, key: str | None, value):
        self.key, self.value = key, value

    def sql(self, ctx: _Ctx) -> str:
        ctx.params.append(self.value)
        return "?"


def bindparam(key: str, value) -> BindParam:
    return BindParam(key, value)


class _Text(Element):
    def __init__(self, text: str):
        self.text = text

    def sql(self, ctx: _Ctx) -> str:
        return self.text


def literal_column(text: str) -> Element:
    return _Text(text)


def false() -> Element:
    return _Text("false")


class Binary(Element):
    def __init__(self, left, right, op: _Op):
        self.left, self.right, self.operator = _coerce(left), _coerce(right), op

    @property
    def prec(self) -> int:
        return self.operator.prec

    def children(self) -> tuple:
        return self.left, self.right

    def sql(self, ctx: _Ctx) -> str:
        return f"{self.left.grouped(self.operator, ctx)} {self.operator.text} {self.right.grouped(self.operator, ctx)}"

    def grouped(self, against: _Op, ctx: _Ctx) -> str:
        if self.operator is against and self.operator.associative or self.prec > against.prec:
            return self.sql(ctx)
        return f"({self.sql(ctx)})"


class _Clauses(Binary):
    """AND / OR of several conditions."""
    def __init__(self, op: _Op, clauses):
        self.operator, self.clauses = op, [_coerce(c) for c in clauses]

    def children(self) -> tuple:
        return tuple(self.clauses)

    def sql(self, ctx: _Ctx) -> str:
        return f" {self.operator.text} ".join(c.grouped(self.operator, ctx) for c in self.clauses)


def and_(*clauses) -> Element:
    return _Clauses(_AND, clauses)


def or_(*clauses) -> Element:
    return _Clauses(_OR, clauses)


class Function(Element):
    def __init__(self, name: str, args):
        self.name, self.args = name, [_coerce(a) for a in args]

    def children(self) -> tuple:
        return tuple(self.args)

    def sql(self, ctx: _Ctx) -> str:
        return f"{self.name}({', '.join(a.sql(ctx) for a in self.args) if self.args else '*' if self.name == 'count' else ''})"


class _Func:
    def __getattr__(self, name: str):
        return lambda *args: Function(name, args)


func = _Func()


class _Distinct(Element):
    def __init__(self, expr):
        self.expr = _coerce(expr)

    def children(self) -> tuple:
        return (self.expr,)

    def sql(self, ctx: _Ctx) -> str:
        return f"DISTINCT {self.expr.sql(ctx)}"


def distinct(expr) -> Element:
    return _Distinct(expr)


class _Type:
    name = ""

    def __call__(self):  # BigInteger() and BigInteger both name the type
        return self


BigInteger, String, Boolean, Integer, Float = (type(n, (_Type,), {"name": s})() for n, s in (
    ("BigInteger", "BIGINT"), ("String", "VARCHAR"), ("Boolean", "BOOLEAN"), ("Integer", "INTEGER"),
    ("Float", "FLOAT")))


class _Cast(Element):
    def __init__(self, expr, type_):
        self.expr, self.type = _coerce(expr), type_

    def children(self) -> tuple:
        return (self.expr,)

    def sql(self, ctx: _Ctx) -> str:
        return f"CAST({self.expr.sql(ctx)} AS {self.type.name})"


def cast(expr, type_) -> Element:
    return _Cast(expr, type_)


class Label(Element):
    def __init__(self, expr, name: str):
        self.expr, self.name = _coerce(expr), name

    def children(self) -> tuple:
        return (self.expr,)

    def sql(self, ctx: _Ctx) -> str:
        return f"{self.expr.grouped(_AS, ctx)} AS {quote(self.name)}"


class Column(Element):
    def __init__(self, name: str, type_=None, **_):
        self.name, self.type, self.table = name, type_, None

    def sql(self, ctx: _Ctx) -> str:
        return f"{quote(self.table.name)}.{quote(self.name)}"


class _Columns:
    def __init__(self, cols):
        self._by = {c.name: c for c in cols}

    def __getitem__(self, name: str) -> Column:
        return self._by[name]

    __getattr__ = __getitem__

    def __contains__(self, name) -> bool:
        return name in self._by


class MetaData:
    pass


class _From:
    def from_sql(self, ctx: _Ctx) -> str:
        return quote(self.name)


class Table(_From):
    def __init__(self, name: str, metadata: MetaData, *columns: Column, **_):
        self.name = name
        for c in columns:
            c.table = self
        self.c = _Columns(columns)

    def join(self, other, on) -> _Join:
        return _Join(self, other, on)


class _Join(_From):
    def __init__(self, left, right, on):
        self.left, self.right, self.on = left, right, on

    def from_sql(self, ctx: _Ctx) -> str:
        return f"{self.left.from_sql(ctx)} JOIN {self.right.from_sql(ctx)} ON {self.on.sql(ctx)}"

    def join(self, other, on) -> _Join:  # a JOIN b ON ... JOIN c ON ..., unparenthesised as SQLAlchemy writes it
        return _Join(self, other, on)


class Select(Element):
    def __init__(self, columns):
        self.columns, self.froms, self.criteria, self.groups = [_coerce(c) for c in columns], None, [], []

    def _copy(self, **kw) -> Select:
        s = Select.__new__(Select)
        s.__dict__.update(self.__dict__, **kw)
        return s

    def select_from(self, f) -> Select:
        return self._copy(froms=f)

    def where(self, *conds) -> Select:
        return self._copy(criteria=self.criteria + [_coerce(c) for c in conds])

    def group_by(self, *exprs) -> Select:
        return self._copy(groups=self.groups + [_coerce(e) for e in exprs])

    def children(self) -> tuple:
        return (*self.columns, *self.criteria, *self.groups)

    def subquery(self, name: str) -> _Subquery:
        return _Subquery(self, name)

    def _from(self):
        if self.froms is not None:
            return self.froms
        tables = []
        for e in iterate(self):
            if isinstance(e, Column) and e.table not in tables:
                tables.append(e.table)
        if len(tables) != 1:
            raise ValueError("select_from() is needed for a select over several tables")
        return tables[0]

    def sql(self, ctx: _Ctx, nested: bool = False) -> str:
        def col(c: Element) -> str:  # a subquery names its columns (SQLAlchemy labels bare columns there)
            return f"{c.sql(ctx)} AS {quote(c.name)}" if nested and isinstance(c, Column) else c.sql(ctx)
        out = "SELECT " + ", ".join(col(c) for c in self.columns) + " \nFROM " + self._from().from_sql(ctx)
        if len(self.criteria) == 1:
            out += " \nWHERE " + self.criteria[0].grouped(_WHERE, ctx)
        elif self.criteria:
            out += " \nWHERE " + and_(*self.criteria).sql(ctx)
        if self.groups:
            out += " GROUP BY " + ", ".join(g.sql(ctx) for g in self.groups)
        return out

    def compile(self, dialect=None, compile_kwargs=None) -> _Compiled:
        ctx = _Ctx()
        text = self.sql(ctx)
        return _Compiled(text, ctx.params)


class _Compiled:
    """What SQLAlchemy's compiled statement offers that sizes reads: the text, params and their order."""
    def __init__(self, text: str, params: list):
        self.text = text
        self.params = {i: v for i, v in enumerate(params)}
        self.positiontup = list(self.params)

    def __str__(self) -> str:
        return self.text


class _Subquery(_From):
    def __init__(self, select: Select, name: str):
        self.select, self.name = select, name
        cols = []
        for c in select.columns:
            out = Column(c.name)
            out.table = self
            cols.append(out)
        self.c = _Columns(cols)

    def from_sql(self, ctx: _Ctx) -> str:
        return f"({self.select.sql(ctx, nested=True)}) AS {quote(self.name)}"

    def join(self, other, on) -> _Join:
        return _Join(self, other, on)


def select(*columns) -> Select:
    return Select(columns)


def iterate(element: Element):
    """Every element of an expression tree, depth first (as ``sqlalchemy.sql.visitors.iterate``)."""
    stack = [element]
    while stack:
        e = stack.pop()
        yield e
        stack.extend(reversed(e.children()))


sql = SimpleNamespace(visitors=SimpleNamespace(iterate=iterate))
