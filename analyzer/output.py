"""Formatting result rows: table, csv, json, markdown.  Returns strings; the CLI prints them."""
from __future__ import annotations

import json
from datetime import date, datetime

FORMATS = ("table", "csv", "json", "markdown")
#: free-text columns a table may cut to fit the terminal
CUTTABLE = {"command", "cmdline", "map", "path", "cgroup", "exe", "area", "description", "group", "name_a", "name_b"}


def units(kb) -> str:
    """smem -k style: 1.5M, 300.0K, 0."""
    if kb is None:
        return ""
    x = float(kb) * 1024
    if x == 0:
        return "0"
    for s in ("", "K", "M", "G", "T"):
        if abs(x) < 1024:
            break
        x /= 1024.0
    return f"{x:.1f}{s}"


def _json_default(o):
    if isinstance(o, (datetime, date)):
        return o.isoformat()
    return str(o)


def json_rows(rows: list[dict], columns: list[str]) -> str:
    """``json.dumps([{c: r.get(c) for c in columns} ...], indent=1)``, byte for byte, at the speed of the C
    encoder: with ``indent`` json uses its pure-Python encoder (1.1 s for a day's trend, 575k values), so
    each key and value is encoded alone and laid out as ``indent=1`` lays it out; a row holding a list
    or a dict is encoded whole and indented one level.  tests/test_golden.py and a property test compare."""
    enc = json.JSONEncoder(default=_json_default).encode
    keys = [enc(c) for c in columns]
    out = []
    for r in rows:
        vals = [r.get(c) for c in columns]
        if not columns:
            out.append(" {}")
        elif not any(isinstance(v, (list, tuple, dict)) for v in vals):
            out.append(" {\n" + ",\n".join(f"  {k}: {enc(v)}" for k, v in zip(keys, vals)) + "\n }")
        else:
            whole = json.dumps(dict(zip(columns, vals)), default=_json_default, indent=1)
            out.append(" " + whole.replace("\n", "\n "))
    return ("[\n" + ",\n".join(out) + "\n]" if out else "[]") + "\n"


def cell(value, column: str, amount_columns, *, abbreviate=False, percent_of=None) -> str:
    if value is None:
        return "-"
    if column in amount_columns:
        if abbreviate:
            return units(value)
        if percent_of is not None:
            return f"{100.0 * value / percent_of:.2f}%" if percent_of else "N/A"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def render(rows: list[dict], columns: list[str], fmt: str = "table", *, amount_columns=(), header=True,
           abbreviate=False, percent_totals=None, totals: dict | None = None, numeric_columns=(),
           cut: bool = True) -> str:
    """``percent_totals(row, column)`` gives the denominator for -p; ``totals`` is an extra last row."""
    if fmt == "json":
        return json_rows(rows, columns)
    if fmt == "csv":
        import csv  # here: a table or json does not load it
        import io

        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        if header:
            w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else _json_default(r[c]) if isinstance(r.get(c), datetime) else r[c]
                        for c in columns])
        return buf.getvalue()

    def fmt_row(r, is_total=False):
        return [cell(r.get(c), c, amount_columns, abbreviate=abbreviate,
                     percent_of=percent_totals(r, c) if percent_totals else None)
                if not (is_total and r.get(c) is None) else "" for c in columns]

    body = [fmt_row(r) for r in rows]
    tot = fmt_row(totals, True) if totals else None
    right = set(amount_columns) | set(numeric_columns) | {
        c for c in columns
        if any(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool) for r in rows)
        and all(r.get(c) is None or (isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool))
                for r in rows)}
    if fmt == "markdown":
        out = []
        if header:
            out.append("| " + " | ".join(columns) + " |")
            out.append("|" + "|".join("---:" if c in right else "---" for c in columns) + "|")
        for b in body + ([tot] if tot else []):
            out.append("| " + " | ".join(x.replace("|", "\\|") for x in b) + " |")
        return "\n".join(out) + "\n"
    widths = [max([len(c) if header else 0] + [len(b[i]) for b in body + ([tot] if tot else [])])
              for i, c in enumerate(columns)]
    if fmt == "table" and cut:
        # like smem: long text columns (command lines, paths) are cut to fit the terminal (80 when piped);
        # csv/json/markdown keep every character
        import shutil

        room = max(80, shutil.get_terminal_size((80, 24)).columns) - (len(columns) - 1)
        text = [i for i, c in enumerate(columns) if c in CUTTABLE]  # never ids, hosts or numbers
        while sum(widths) > room and text:
            i = max(text, key=lambda k: widths[k])
            fixed = sum(widths) - widths[i]
            new = max(20, room - fixed)
            if new >= widths[i]:
                break
            widths[i] = new
            for rowvals in body + ([tot] if tot else []):
                if len(rowvals[i]) > new:
                    rowvals[i] = rowvals[i][:new - 1] + "…"
            text.remove(i)

    def line(vals):
        return " ".join(v.rjust(w) if c in right else v.ljust(w)
                        for v, w, c in zip(vals, widths, columns)).rstrip()

    out = []
    if header:
        out.append(line([c.upper() for c in columns]))
    out += [line(b) for b in body]
    if tot:
        out.append("-" * len(line(tot)))
        out.append(line(tot))
    return "\n".join(out) + "\n"
