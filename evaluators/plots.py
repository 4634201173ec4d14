"""Figures (the only module importing matplotlib): diagnostics bars, draw histograms, frontier
and budget / learning curves. Each is drawn on its own Agg ``Figure`` (no pyplot) and written
atomically. matplotlib loads with the first figure, not with this module (about 0.5 s; a
single cell never draws one). Inputs and figures: docs/analyses.md, section 3."""

from __future__ import annotations

import os
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from benchmark.data.io import atomic_write_bytes
from evaluators.frontier import upper_hull

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: (diagnose key, legend label) of the instability panel (paper Fig. 2a).
INSTABILITY_BARS = (
    ("outcome_instability", "outcome instability"),
    ("winner_flip_rate", "winner flip rate"),
    ("single_vs_da_disagreement", "single-vs-DA disagreement"),
)

#: (diagnose key, legend label) of the variance panel (paper Fig. 2b).
VARIANCE_BARS = (
    ("variance_input_side", "input-side (rewrites)"),
    ("variance_output_side", "output-side (decodes)"),
)


def _new_figure(width: float = 6.4, height: float = 4.0) -> Figure:
    # heavy (LAZY_HEAVY in tests/test_layering.py): only a leaderboard or diagnostics figure needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return atomic_write_bytes(path, buf.getvalue())


def _value(diag: Mapping[str, Any], key: str, dataset: str) -> float:
    if key not in diag:
        raise KeyError(f"diagnostics of dataset {dataset!r} have no {key!r}")
    return float(diag[key])


def _grouped_bars(
    diag_by_dataset: Mapping[str, Mapping[str, Any]],
    bars: tuple[tuple[str, str], ...],
    path: str | os.PathLike,
    *,
    ylabel: str,
    title: str,
    ylim: tuple[float, float] | None,
) -> Path:
    if not diag_by_dataset:
        raise ValueError(f"{title}: no dataset to plot")
    names = list(diag_by_dataset)
    values = np.array(
        [[_value(diag_by_dataset[n], key, n) for key, _ in bars] for n in names]
    )  # [datasets, bars]
    fig = _new_figure(max(4.0, 1.6 * len(names) + 2.0), 4.0)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    width = 0.8 / len(bars)
    for j, (_, label) in enumerate(bars):
        pos = x + (j - (len(bars) - 1) / 2) * width
        rects = ax.bar(pos, values[:, j], width, label=label)
        ax.bar_label(rects, fmt="%.3f", fontsize=7, padding=1)
    ax.set_xticks(x, names)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_instability(
    diag_by_dataset: Mapping[str, Mapping[str, Any]], path: str | os.PathLike
) -> Path:
    """Bars of outcome instability, winner flip rate and single-vs-DA disagreement per dataset."""
    return _grouped_bars(
        diag_by_dataset,
        INSTABILITY_BARS,
        path,
        ylabel="share",
        title="Instability of single-shot supervision",
        ylim=(0.0, 1.08),
    )


def plot_variance(
    diag_by_dataset: Mapping[str, Mapping[str, Any]], path: str | os.PathLike
) -> Path:
    """Bars of input-side vs output-side score variance per dataset."""
    return _grouped_bars(
        diag_by_dataset,
        VARIANCE_BARS,
        path,
        ylabel="variance (mean over pairs)",
        title="Uncertainty decomposition",
        ylim=None,
    )


def plot_draw_histogram(
    values: Any,
    path: str | os.PathLike,
    *,
    dars_value: float | None = None,
    title: str = "Test utility over single-shot draws",
    xlabel: str = "test utility",
    bins: int | str = "auto",
) -> Path:
    """Histogram of per-draw test utility, with a vertical line at the DARS-trained router."""
    v = np.asarray(values, dtype=float).ravel()
    if v.size == 0:
        raise ValueError("plot_draw_histogram: no values")
    if not np.isfinite(v).all():
        raise ValueError(
            f"plot_draw_histogram: {int((~np.isfinite(v)).sum())} of {v.size} values are not finite"
        )
    fig = _new_figure()
    ax = fig.add_subplot(1, 1, 1)
    ax.hist(v, bins=bins, color="tab:gray", alpha=0.8, label=f"single-shot draws (n={v.size})")
    ax.axvline(float(v.mean()), color="tab:gray", linestyle=":", label="mean over draws")
    if dars_value is not None:
        ax.axvline(float(dars_value), color="tab:red", linewidth=2, label="DARS")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("draws")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _xy(pair: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        c, q = pair
    except (TypeError, ValueError):
        raise ValueError(f"{name!r}: expected a (cost, quality) pair") from None
    c = np.atleast_1d(np.asarray(c, dtype=float))
    q = np.atleast_1d(np.asarray(q, dtype=float))
    if c.shape != q.shape:
        raise ValueError(f"{name!r}: cost {c.shape} and quality {q.shape} differ")
    return c, q


def plot_frontier(
    curves: Mapping[str, Any],
    fixed_models: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str = "Cost-quality trade-off",
    xlabel: str = "mean normalised cost",
    ylabel: str = "mean quality",
) -> Path:
    """Sweep points and non-decreasing hull of every router, next to every fixed model.

    ``curves``: ``{router: (cost[L], quality[L])}``; ``fixed_models``: ``{model: (cost,
    quality)}`` (scalars or length-1 arrays). Non-finite sweep points are not drawn. Each hull
    is extended flat (dashed) to the largest swept cost over all routers, as AIQ integrates it.
    """
    if not curves and not fixed_models:
        raise ValueError("plot_frontier: nothing to plot")
    fig = _new_figure(7.2, 4.8)
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i % 10}" for i in range(len(curves))]
    points = {name: _xy(pair, name) for name, pair in curves.items()}
    finite_costs = [c[np.isfinite(c) & np.isfinite(q)] for c, q in points.values()]
    right = max((float(c.max()) for c in finite_costs if c.size), default=None)
    for colour, (name, (c, q)) in zip(colours, points.items()):
        ok = np.isfinite(c) & np.isfinite(q)
        if not ok.any():
            continue
        ax.scatter(c[ok], q[ok], s=12, color=colour, alpha=0.5)
        hc, hq = upper_hull(c[ok], q[ok])
        ax.plot(hc, hq, color=colour, marker="o", markersize=3, label=name)
        if right is not None and right > hc[-1]:
            # The hull's flat extension to the largest swept cost, as AIQ integrates it.
            ax.plot([hc[-1], right], [hq[-1], hq[-1]], color=colour, linestyle="--", alpha=0.6)
    for name, pair in fixed_models.items():
        c, q = _xy(pair, name)
        ax.scatter(c, q, marker="x", color="black", s=30, zorder=3)
        for ci, qi in zip(c, q):
            ax.annotate(name, (ci, qi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_curves(
    series: Mapping[str, Any],
    path: str | os.PathLike,
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = True,
) -> Path:
    """One line per series with 95% interval bars (budget and learning curves).

    ``series``: ``{label: (x[K], mean[K], low[K], high[K])}``; points with a non-finite mean
    are not drawn; a non-finite bound draws the point without its bar. The series are dodged
    by a few percent along x so that their bars do not hide each other; the ticks are the x
    values themselves.
    """
    if not series:
        raise ValueError("plot_curves: nothing to plot")
    fig = _new_figure(6.8, 4.4)
    ax = fig.add_subplot(1, 1, 1)
    ticks: set[float] = set()
    n = len(series)
    for i, (label, values) in enumerate(series.items()):
        try:
            x, y, lo, hi = (np.asarray(v, dtype=float).ravel() for v in values)
        except (TypeError, ValueError):
            raise ValueError(f"{label!r}: expected (x, mean, low, high)") from None
        if not (x.shape == y.shape == lo.shape == hi.shape):
            raise ValueError(f"{label!r}: x, mean, low and high differ in length")
        ok = np.isfinite(x) & np.isfinite(y)
        order = np.argsort(x[ok])
        x, y, lo, hi = (a[ok][order] for a in (x, y, lo, hi))
        err = np.vstack([np.where(np.isfinite(lo), y - lo, 0.0), np.where(np.isfinite(hi), hi - y, 0.0)])
        ticks.update(x.tolist())
        dodge = 1.0 + 0.025 * (i - (n - 1) / 2) if logx else 1.0
        ax.errorbar(x * dodge, y, yerr=err, color=f"C{i % 10}", marker="o", markersize=4, capsize=3,
                    label=label)
    if logx:
        ax.set_xscale("log")
    ax.set_xticks(sorted(ticks))
    ax.set_xticklabels([f"{t:g}" for t in sorted(ticks)])
    ax.minorticks_off()
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)
