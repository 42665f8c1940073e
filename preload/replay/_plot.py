"""
Charts of a replay report that show where strategies differ (matplotlib, optional).

Hit rates of most strategies lie within a point or two of each other and most turns
wait for nothing, so bars from zero make them look identical. These charts look where
they differ instead:

- ``wait_cdf``: the distribution of the wait per turn, one line per strategy, as a
  cumulative distribution on a log time axis; the vertical axis is on a logit scale,
  which spreads the tail (0.9, 0.99, 0.999) where strategies part.
- ``p99``: the 99th percentile wait per strategy, with the 95th and the median marked.
- ``rates``: hit rate and wasted preloads as dots on axes zoomed to the range the
  strategies span; a value off that range is marked at the edge with its figure.

Each chart is written as PNG and SVG. matplotlib is imported here only, when a chart
is drawn (``pip install 'preload[plot]'``); the Agg canvas draws without a display
and leaves pyplot's global state alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._report import ReplayReport

__all__ = ["plot_report"]

#: The strategies' colours, the same in every chart.
_COLOURS = {
    "cold": "#7f7f7f",
    "lru": "#1f77b4",
    "popular": "#9467bd",
    "markov1": "#ff7f0e",
    "engine": "#d62728",
    "oracle": "#2ca02c",
}

#: Waits at most this long (ms) count as no wait: they start each line at the left.
_FLOOR_MS = 0.1


def plot_report(report: ReplayReport, folder: str | Path) -> list[Path]:
    """
    Draw the report's charts into ``folder`` (created when missing) as PNG and SVG.

    Returns:
        The files written.

    Raises:
        ImportError: matplotlib is not installed; install the ``plot`` extra.
        OSError: The folder cannot be created or written.

    .. versionadded:: 0.2
    """
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(
            "plotting a replay needs matplotlib: pip install 'preload[plot]'"
        ) from exc
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    charts = {"wait_cdf": _wait_cdf, "p99": _p99, "rates": _rates}
    paths = []
    with matplotlib.rc_context(
        {
            "font.size": 10,
            "axes.titlesize": 11,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "preload",  # the same ids in the SVG on every run
        }
    ):
        for name, draw in charts.items():
            figure = Figure(figsize=(8, 4.8), layout="constrained")
            FigureCanvasAgg(figure)
            draw(figure, report)
            for suffix in ("png", "svg"):
                path = folder / f"{name}.{suffix}"
                figure.savefig(path, dpi=120, metadata=_metadata(suffix))
                paths.append(path)
    return paths


def _metadata(suffix: str) -> dict[str, Any]:
    # No date in the SVG, so that one report draws the same file every time.
    return {"Date": None} if suffix == "svg" else {}


def _colour(name: str) -> str:
    return _COLOURS.get(name, "#17becf")


def _wait_cdf(figure: Any, report: ReplayReport) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax = figure.add_subplot()
    top = _FLOOR_MS * 10
    lowest, highest = 0.5, 0.99
    for name, rep in report.strategies.items():
        n = len(rep.waits_ms)
        if not n:
            continue
        # The share of turns that waited at most x, stepping up at each wait; shares
        # are i / (n + 1), so the last stops short of 1, which a logit axis cannot show.
        waits = sorted(w for w in rep.waits_ms if w > _FLOOR_MS)
        none = n - len(waits)
        xs = ([_FLOOR_MS] if none else []) + waits
        ys = [(none + i + (0 if none else 1)) / (n + 1) for i in range(len(xs))]
        xs.append(math.inf)  # the last share holds to the right edge
        ys.append(ys[-1])
        ax.step(xs, ys, where="post", color=_colour(name), label=name, linewidth=1.6)
        top = max(top, xs[-2])
        lowest = min(lowest, ys[0])
        highest = max(highest, ys[-1])
    ax.set_xscale("log")
    ax.set_yscale("logit")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:.6g}"))  # 0.999, not 1-10^-3
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(_FLOOR_MS, top * 1.5)
    ax.set_ylim(max(lowest * 0.8, 1e-4), 1 - max((1 - highest) * 0.7, 1e-5))
    ax.set_xlabel(f"wait per turn (ms, log scale; at most {_FLOOR_MS:g} ms counts as none)")
    ax.set_ylabel("share of turns that waited at most this long")
    ax.set_title(
        f"{report.name}: how long turns waited, per strategy (higher and further left is better)"
    )
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="lower right", frameon=False)


def _p99(figure: Any, report: ReplayReport) -> None:
    ax = figure.add_subplot()
    names = list(report.strategies)
    rows = range(len(names))
    p99 = [report.strategies[n].p99_ms for n in names]
    ax.barh(rows, p99, color=[_colour(n) for n in names], height=0.6)
    ax.scatter(
        [report.strategies[n].p95_ms for n in names],
        rows,
        marker="|",
        s=300,
        color="black",
        zorder=3,
    )
    ax.scatter(
        [report.strategies[n].p50_ms for n in names],
        rows,
        marker="o",
        s=20,
        color="white",
        edgecolors="black",
        zorder=3,
    )
    peak = max([*p99, 1.0])
    for row, value in zip(rows, p99, strict=True):
        ax.text(value + peak * 0.01, row, f"{value:,.0f} ms", va="center")
    ax.set_yticks(list(rows), names)
    ax.invert_yaxis()
    ax.set_xlim(0, peak * 1.2)
    ax.set_xlabel("wait of a turn (ms): bar to its 99th percentile, | 95th, o median")
    ax.set_title(f"{report.name}: the slowest turns (p99 wait; shorter is better)")


def _rates(figure: Any, report: ReplayReport) -> None:
    names = list(report.strategies)
    hit, wasted = figure.subplots(1, 2, sharey=True)
    hit_values = [
        math.nan if (rate := report.strategies[n].hit_rate) is None else rate for n in names
    ]
    _dots(hit, names, hit_values, "hit rate (higher is better)", "no needs")
    wasted_values = [
        report.strategies[n].wasted_ratio if report.strategies[n].preloads else math.nan
        for n in names
    ]
    _dots(wasted, names, wasted_values, "wasted preloads (lower is better)", "no preloads")
    hit.set_yticks(range(len(names)), names)
    hit.invert_yaxis()
    figure.suptitle(f"{report.name}: hit rate and wasted preloads, axes zoomed to the strategies")


def _dots(ax: Any, names: list[str], values: list[float], title: str, missing: str) -> None:
    """
    One dot per strategy on an axis zoomed to where most of them lie; a value off the
    axis sits at its edge with its figure, a missing one (nan) says ``missing``.
    """
    present = sorted(v for v in values if not math.isnan(v))
    lo, hi = _zoom(present)
    for row, (name, value) in enumerate(zip(names, values, strict=True)):
        if math.isnan(value):
            ax.text(lo, row, f"  {missing}", va="center", color="#555555")
            continue
        shown = min(max(value, lo), hi)
        marker = "<" if value < lo else ">" if value > hi else "o"
        ax.plot([lo, shown], [row, row], color="#dddddd", linewidth=1, zorder=1)
        ax.scatter([shown], [row], color=_colour(name), s=60, marker=marker, zorder=3)
        ax.annotate(
            f"{value:.3f}",
            (shown, row),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=9,
        )
    ax.set_xlim(lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05)
    ax.set_ylim(len(names) - 0.5, -0.7)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)


def _zoom(values: list[float]) -> tuple[float, float]:
    """
    An axis range around the values, leaving out one far below the rest (as cold's
    hit rate of 0 beside others near 1), so that their differences show.
    """
    if not values:
        return 0.0, 1.0
    lo, hi = values[0], values[-1]
    if len(values) > 2 and values[1] - values[0] > 4 * (hi - values[1]) > 0:
        lo = values[1]
    pad = max((hi - lo) * 0.15, 0.005)
    return max(0.0, lo - pad), min(1.0, hi + pad) if hi <= 1 else hi + pad
