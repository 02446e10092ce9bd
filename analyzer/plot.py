"""Charts (matplotlib, headless).  Functions write a file and return its path; they never show windows."""
from __future__ import annotations

import os

from recorder.errors import MemsnapError

FORMATS = (".png", ".svg", ".pdf")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _check_path(path: str) -> None:
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise MemsnapError(f"{path}: cannot tell the chart format from the extension",
                           hint="use a file name ending in .png, .svg or .pdf")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise MemsnapError(f"{path}: directory {d} does not exist", hint="create it or choose another path")


def _label(row: dict, keys: list[str]) -> str:
    parts = [str(row.get(k)) for k in keys if row.get(k) not in (None, "")]
    text = " ".join(parts)
    return text if len(text) <= 48 else text[:45] + "..."


def diff_chart(res, path: str, top: int = 20, metric: str = "pss") -> str:
    """Horizontal bars of the largest |<metric>_delta|, growth red, shrink blue."""
    _check_path(path)
    plt = _plt()
    col = f"{metric}_delta"
    rows = sorted((r for r in res.rows if r.get(col)), key=lambda r: abs(r[col]), reverse=True)[:top]
    keys = [k for k in res.key_columns if k not in ("command",)] or res.key_columns
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.38 * len(rows) + 1.5)))
    if rows:
        rows.reverse()
        vals = [r[col] / 1024 for r in rows]
        ax.barh([_label(r, keys) + f" [{r['status']}]" for r in rows], vals,
                color=["#c0392b" if v > 0 else "#2e6da4" for v in vals])
        ax.axvline(0, color="black", linewidth=0.8)
    else:
        ax.text(0.5, 0.5, "no changes", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{metric.upper()} change (MiB)")
    ax.set_title(f"{metric.upper()} change by {res.by}: {res.before.snapshot_id[:15]} -> {res.after.snapshot_id[:15]}"
                 f" ({res.after.host})", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
