"""Charts (matplotlib, headless).  Functions write a file and return its path; they never show windows."""
from __future__ import annotations

import os

from common.errors import MemsnapError

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


def diff_chart(res, path: str, top: int = 20, metric: str = "pss", min_change: int = 0) -> str:
    """Horizontal bars of the largest |<metric>_delta|, growth red, shrink blue; changes smaller than
    ``min_change`` kB are left out (as ``diff --min-change``), and the title says so."""
    _check_path(path)
    plt = _plt()
    col = f"{metric}_delta"
    rows = sorted((r for r in res.rows if r.get(col) and abs(r[col]) >= max(min_change, 1)),
                  key=lambda r: abs(r[col]), reverse=True)[:top]
    keys = res.label_columns
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.38 * len(rows) + 1.5)))
    if rows:
        rows.reverse()
        vals = [r[col] / 1024 for r in rows]
        ax.barh([_label(r, keys) + f" [{r['status']}]" for r in rows], vals,
                color=["#c0392b" if v > 0 else "#2e6da4" for v in vals])
        ax.axvline(0, color="black", linewidth=0.8)
    else:
        ax.text(0.5, 0.5, f"no changes{f' of {min_change} kB or more' if min_change else ''}", ha="center",
                va="center", transform=ax.transAxes)
    ax.set_xlabel(f"{metric.upper()} change (MiB)")
    ax.set_title(f"{metric.upper()} change by {res.by}: {res.before.snapshot_id[:15]} -> {res.after.snapshot_id[:15]}"
                 f" ({res.after.host}){chr(10) + f'changes under {min_change} kB not shown' if min_change else ''}",
                 fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def check_path(path: str) -> None:
    """Raise MemsnapError unless ``path`` names a chart file we can write (callers check before long work)."""
    _check_path(path)


def trend_chart(series, path: str, metric: str = "uss", top: int = 10, suspects=None) -> str:
    """Lines of ``metric`` (MiB) over capture time for the ``top`` keys with the largest last value.

    ``series`` is an :class:`analyzer.trend.TrendResult`; ``suspects`` a
    :class:`analyzer.trend.LeakResult` (or its rows).  Leak suspects (``suspect=True``) are drawn thick
    with markers and their slope in the legend; the first ``top`` suspects are drawn even when their
    value is not among the ``top`` largest.
    """
    from collections import Counter

    from matplotlib import dates as mdates

    from .trend import R2_MIN, top_keys

    _check_path(path)
    plt = _plt()
    key_cols = list(series.key_columns)
    susp_rows = getattr(suspects, "rows", suspects) or []
    slope = {tuple(r.get(k) for k in key_cols): r["slope_kb_per_hour"] for r in susp_rows if r.get("suspect")}
    keys = top_keys(series, metric, top)
    keys += [k for k in list(slope)[:top] if k not in keys]
    points: dict[tuple, list[dict]] = {k: [] for k in keys}
    for r in series.rows:
        k = series.key(r)
        if k in points and r.get(metric) is not None:
            points[k].append(r)
    if series.by == "process":  # pid and name are readable; boot id and start time only disambiguate
        label_cols = ["pid", "name"] + (["host"] if len({s.host for s in series.snapshots}) > 1 else [])
    else:
        label_cols = ["command"] + (["host"] if len({s.host for s in series.snapshots}) > 1 else [])
    names = {k: _label(pts[-1], label_cols) for k, pts in points.items() if pts}
    seen = Counter(names.values())
    for k, n in names.items():
        if seen[n] > 1 and series.by == "process":  # a reused pid: tell the series apart by start time
            names[k] = f"{n} (start {points[k][-1].get('starttime')})"

    fig, ax = plt.subplots(figsize=(11, 6))
    drawn = 0
    for k in keys:
        pts = points[k]
        if not pts:
            continue
        x = [r["capture_start"] for r in pts]
        y = [r[metric] / 1024 for r in pts]
        if k in slope:
            ax.plot(x, y, linewidth=2.8, marker="o", markersize=5, zorder=3,
                    label=f"{names[k]}  [leak suspect: {slope[k] / 1024:+.1f} MiB/h]")
        else:
            ax.plot(x, y, linewidth=1.2, marker="." if len(pts) < 30 else None, alpha=0.85, label=names[k])
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    # Times, not ConciseDateFormatter's bare seconds or minutes ("43", "44"): clock times within a day, the
    # date with them over longer spans; the axis label says the day and the zone.
    times = [s.capture_start for s in series.snapshots if s.capture_start is not None]
    span = (max(times) - min(times)).total_seconds() if len(times) > 1 else 0
    fmt = "%H:%M:%S.%f" if span < 10 else "%H:%M:%S" if span < 600 else "%H:%M" if span < 86400 else \
        "%Y-%m-%d %H:%M"
    ax.xaxis.set_major_formatter(plt.FuncFormatter(  # milliseconds, not microseconds, within a few seconds
        lambda x, _pos: mdates.num2date(x).strftime(fmt)[:-3 if fmt.endswith("%f") else None]))
    fig.autofmt_xdate()
    day = min(times).strftime("%Y-%m-%d") if times and span < 86400 else None
    ax.set_xlabel(f"capture time (UTC{', ' + day if day else ''})")
    ax.set_ylabel(f"{metric.upper()} (MiB)")
    n = len(series.snapshots)
    title = f"{metric.upper()} by {series.by} over {n} snapshot{'s' if n != 1 else ''}: top {drawn}"
    if slope:
        title += f"; thick lines: leak suspects (steady growth, R² ≥ {getattr(suspects, 'r2_min', R2_MIN):g})"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def pairs_heatmap(matrix, path: str, snapshot) -> str:
    """Heatmap of process x process shared MiB (from analyzer.shared.pair_matrix)."""
    _check_path(path)
    plt = _plt()
    pids, labels, m = matrix
    n = len(pids)
    fig, ax = plt.subplots(figsize=(max(5, 0.45 * n + 3), max(4, 0.45 * n + 2)))
    if n:
        data = [[v / 1024 for v in row] for row in m]
        im = ax.imshow(data, cmap="viridis")
        ax.set_xticks(range(n), labels=labels, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), labels=labels, fontsize=8)
        fig.colorbar(im, ax=ax, label="shared (MiB)")
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    if i != j and data[i][j]:
                        ax.text(j, i, f"{data[i][j]:.1f}", ha="center", va="center", fontsize=7, color="white")
    else:
        ax.text(0.5, 0.5, "no shared frames", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"Shared memory between processes ({snapshot.host}, {snapshot.snapshot_id[:15]})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _stacked_bars(path: str, labels, first, second, marks, names, xlabel: str, title: str) -> str:
    """Horizontal stacked bars (first + second, MiB) with a marker per row; ``names`` label the three."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, max(2.5, 0.4 * len(labels) + 1.5)))
    ax.barh(labels, first, color="#2e6da4", label=names[0])
    ax.barh(labels, second, left=first, color="#9cc3e6", label=names[1])
    ax.scatter(marks, labels, color="#c0392b", marker="|", s=300, zorder=3, label=names[2])
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def groups_chart(rows, path: str, snapshot, by: str) -> str:
    """Stacked bars per group: USS of the whole group + memory it shares outside; PSS marked."""
    _check_path(path)
    rows = list(reversed(rows))
    return _stacked_bars(
        path, [str(r["group"])[:40] for r in rows], [r["uss_kb"] / 1024 for r in rows],
        [r["shared_outside_kb"] / 1024 for r in rows], [r["pss_kb"] / 1024 for r in rows],
        ("USS of the group (freed if it all exited)", "shared with processes outside the group", "PSS of the group"),
        "MiB (bar length = RSS: distinct frames the group maps)",
        f"Memory cost by {by} ({snapshot.host}, {snapshot.snapshot_id[:15]})")


def consumers_chart(rows, path: str, title: str, label_key: str = "command") -> str:
    """Stacked bars: private memory (USS) + proportional share of shared memory (PSS - USS); RSS marked."""
    _check_path(path)
    rows = list(reversed(rows))
    return _stacked_bars(
        path, [_label(r, [label_key] if label_key != "process" else ["pid", "name"]) for r in rows],
        [(r.get("uss") or 0) / 1024 for r in rows],
        [max(0, (r.get("pss") or 0) - (r.get("uss") or 0)) / 1024 for r in rows],
        [(r.get("rss") or 0) / 1024 for r in rows],
        ("private (USS)", "share of shared memory (PSS - USS)", "RSS (shared pages counted fully)"), "MiB", title)


def histogram_chart(rows, path: str, title: str) -> str:
    """Frames by number of sharers, split into recorded-only and also-mapped-elsewhere."""
    _check_path(path)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.5))
    labels = [str(r["sharers"]) for r in rows]
    a = [r["recorded_only_kb"] / 1024 for r in rows]
    b = [r["also_unrecorded_kb"] / 1024 for r in rows]
    ax.bar(labels, a, color="#2e6da4", label="shared only among recorded processes")
    ax.bar(labels, b, bottom=a, color="#f0ad4e", label="also mapped by processes not recorded")
    ax.set_xlabel("number of recorded processes mapping the frame")
    ax.set_ylabel("MiB")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
