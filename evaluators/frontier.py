"""Cost-quality trade-off (docs/spec.md §6), RouterBench-style: re-routing under a lambda grid,
the non-decreasing concave upper hull, quality under a cost budget, AIQ, and AIQ of several
routers on one shared range (:func:`compare_curves`). Pure functions; definitions and
conventions: docs/analyses.md, section 2."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from supervision.utility import select_grid


# ------------------------------------------------------------------------------ hull
def _points(cost: Any, quality: Any) -> tuple[np.ndarray, np.ndarray]:
    c = np.asarray(cost, dtype=float).ravel()
    q = np.asarray(quality, dtype=float).ravel()
    if c.shape != q.shape:
        raise ValueError(f"cost has {c.size} points, quality {q.size}")
    if c.size == 0:
        raise ValueError("no cost-quality points")
    bad = ~(np.isfinite(c) & np.isfinite(q))
    if bad.any():
        raise ValueError(f"{int(bad.sum())} of {c.size} cost-quality points are not finite")
    return c, q


def upper_hull(cost: Any, quality: Any) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing concave upper hull of points (cost on x, quality on y).

    Construction: sort by cost; at equal cost keep only the highest quality; cut after the
    first (cheapest) point of maximal quality, since every costlier point is dominated (more
    cost, no more quality); run Andrew's monotone chain for the upper hull over what is left,
    dropping vertices that are collinear with their neighbours.

    The hull starts at the cheapest point (best quality among equally cheap ones), ends at the
    cheapest point of maximal quality, and its quality is strictly increasing and concave in
    between. A single point (or points all tied at the top) gives a one-vertex hull.

    Returns:
        ``(hull_cost, hull_quality)``, 1-d arrays sorted by cost.
    """
    c, q = _points(cost, quality)
    order = np.lexsort((-q, c))  # by cost, then quality descending
    c, q = c[order], q[order]
    first_of_cost = np.r_[True, c[1:] != c[:-1]]
    c, q = c[first_of_cost], q[first_of_cost]
    top = int(np.argmax(q))  # first maximum = cheapest point of top quality
    c, q = c[: top + 1], q[: top + 1]
    hull: list[int] = []
    for i in range(c.size):  # O(n) stack walk over a handful of sweep points
        while len(hull) >= 2:
            o, a = hull[-2], hull[-1]
            cross = (c[a] - c[o]) * (q[i] - q[o]) - (q[a] - q[o]) * (c[i] - c[o])
            if cross >= 0:  # a lies on or below the chord o -> i
                hull.pop()
            else:
                break
        hull.append(i)
    idx = np.asarray(hull, dtype=np.int64)
    return c[idx], q[idx]


def _hull_curve(hull_c: np.ndarray, hull_q: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Hull quality at costs ``x``: linear between vertices, flat to the right, NaN to the left."""
    x = np.asarray(x, dtype=float)
    y = np.interp(x, hull_c, hull_q)  # np.interp holds the end values beyond the ends
    return np.where(x < hull_c[0], np.nan, y)


def quality_at_budget(cost: Any, quality: Any, budgets: Any) -> np.ndarray:
    """Best mean quality reachable with mean cost ``<= budget``, per budget.

    The value is the upper hull at the budget: linear interpolation between hull vertices
    (achievable by mixing the two neighbouring routers, the RouterBench convention), the top
    quality for budgets beyond the top vertex, NaN for budgets below the cheapest point.
    Returns an array with the shape of ``budgets``.
    """
    hc, hq = upper_hull(cost, quality)
    b = np.asarray(budgets, dtype=float)
    return _hull_curve(hc, hq, b)


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def aiq(
    cost: Any, quality: Any, cost_range: tuple[float, float] | None = None
) -> float:
    """Area under the non-decreasing upper hull over ``cost_range``, divided by its width.

    ``AIQ = (1 / (hi - lo)) * integral_lo^hi R(c) dc`` where ``R`` is the hull curve of
    :func:`quality_at_budget`: piecewise linear between hull vertices and flat at the top
    quality to the right of the top vertex. To the left of the cheapest point no router
    reaches the budget, so that part of the range contributes 0 to the area (but still counts
    in the width). That is what RouterBench's ``calc_AIQ`` does with ``lo = 0`` and ``hi`` the
    largest cost over the routers compared; pass a shared ``cost_range`` to compare routers.

    ``cost_range`` defaults to ``(min cost, max cost)`` of the given points. A zero-width range
    (e.g. a single point and the default range) gives the hull quality at ``lo`` (the limit of
    the average): for one point, its quality; NaN if ``lo`` is below the cheapest point.
    """
    c, q = _points(cost, quality)
    hc, hq = upper_hull(c, q)
    lo, hi = (float(c.min()), float(c.max())) if cost_range is None else map(float, cost_range)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"cost_range must be finite, got {(lo, hi)}")
    if hi < lo:
        raise ValueError(f"cost_range must have lo <= hi, got {(lo, hi)}")
    if hi == lo:
        return float(_hull_curve(hc, hq, np.array([lo]))[0])
    a = max(lo, float(hc[0]))  # the curve exists from the cheapest point on
    if a >= hi:
        return 0.0
    inner = hc[(hc > a) & (hc < hi)]
    x = np.concatenate([[a], inner, [hi]])
    return _trapezoid(x, _hull_curve(hc, hq, x)) / (hi - lo)


def frontier_summary(
    cost: Any,
    quality: Any,
    *,
    budgets: Any = (),
    cost_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """Hull vertices, AIQ and qualities at ``budgets`` of one router's sweep points."""
    hc, hq = upper_hull(cost, quality)
    b = np.asarray(budgets, dtype=float).ravel()
    return {
        "hull_cost": hc,
        "hull_quality": hq,
        "aiq": aiq(cost, quality, cost_range),
        "budgets": b,
        "quality_at_budget": _hull_curve(hc, hq, b),
    }


# ----------------------------------------------------------------------- lambda sweep
def route_sweep(signals: Any, lams: Any, beta: float) -> np.ndarray:
    """Choices of a signal-predicting router for every ``lambda`` of a grid, in one pass.

    ``signals`` is anything with ``mu_q``, ``mu_c``, ``sigma_q`` arrays ``[..., Q, M]`` (e.g.
    :class:`routers.base.Signals`, already clipped). Returns ``[L, ..., Q]`` int64, where
    ``out[l]`` equals ``signals.select(lams[l], beta)``: same utility, same tie-breaking.
    """
    return select_grid(signals.mu_q, signals.mu_c, signals.sigma_q, lams, beta)


def sweep_points(
    choices: Any, quality: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean cost and mean quality over queries of routing ``choices``, for every policy at once.

    Args:
        choices: ``[..., Q]`` chosen model index per query (e.g. ``[L, Q]`` over a lambda grid,
            or ``[L, D, Q]`` with single-shot draws).
        quality: ``[Q, M]`` per-pair mean quality on the evaluation view (NaN: no observation).
        cost: ``[Q, M]`` per-pair mean normalised cost on the same view.

    Returns:
        ``(mean_cost, mean_quality)``, each with the shape of ``choices`` minus its last axis.
        A query whose chosen pair has no observation is left out of that policy's means, with
        a warning (never scored as zero), as in :mod:`evaluators.metrics`.
    """
    ch = np.asarray(choices, dtype=np.int64)
    quality = np.asarray(quality, dtype=float)
    cost = np.asarray(cost, dtype=float)
    if quality.ndim != 2 or cost.shape != quality.shape:
        raise ValueError(f"quality {quality.shape} and cost {cost.shape} must both be [Q, M]")
    n_q, n_m = quality.shape
    if ch.shape[-1] != n_q:
        raise ValueError(f"{ch.shape[-1]} choices per policy for {n_q} queries")
    if ch.size and (ch.min() < 0 or ch.max() >= n_m):
        raise ValueError(f"a choice is outside the model pool of {n_m} models")
    qi = np.arange(n_q)
    q_sel, c_sel = quality[qi, ch], cost[qi, ch]
    ok = np.isfinite(q_sel) & np.isfinite(c_sel)
    if not ok.all():
        warnings.warn(
            f"sweep_points: {int((~ok).sum())} routed (query, model) pairs have no observation "
            "and are left out of the means",
            stacklevel=2,
        )
    n = ok.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_c = np.where(n > 0, np.where(ok, c_sel, 0.0).sum(axis=-1) / np.maximum(n, 1), np.nan)
        mean_q = np.where(n > 0, np.where(ok, q_sel, 0.0).sum(axis=-1) / np.maximum(n, 1), np.nan)
    return mean_c, mean_q


def lambda_sweep(
    signals: Any, lams: Any, beta: float, quality: np.ndarray, cost: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`route_sweep` then :func:`sweep_points`: ``(mean_cost, mean_quality)`` ``[L, ...]``."""
    return sweep_points(route_sweep(signals, lams, beta), quality, cost)


def fixed_model_points(quality: np.ndarray, cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mean_cost [M], mean_quality [M])`` of routing every query to one model, per model."""
    quality = np.asarray(quality, dtype=float)
    n_q, n_m = quality.shape
    choices = np.broadcast_to(np.arange(n_m)[:, None], (n_m, n_q))
    return sweep_points(choices, quality, cost)


def frontier_points(choices: Any, stats: Mapping[str, Any], lams: Any) -> dict[str, Any]:
    """Operating points of a policy re-routed under each ``lambda``, on every test view.

    ``choices`` is ``[L, Q]`` (or ``[L, D, Q]`` with single-shot draws: the points are averaged
    over draws); ``stats`` maps a view prefix to anything with per-pair ``q`` and ``c`` ``[Q, M]``
    (:class:`evaluators.metrics.ViewStats`). Returns ``{"lams", "<p>C", "<p>Q"}`` lists.
    """
    out: dict[str, Any] = {"lams": [float(x) for x in lams]}
    for prefix, vs in stats.items():
        cost, qual = sweep_points(choices, vs.q, vs.c)  # [L] or [L, D]
        if cost.ndim == 2:
            cost, qual = cost.mean(axis=1), qual.mean(axis=1)
        out[prefix + "C"] = cost.astype(float).tolist()
        out[prefix + "Q"] = qual.astype(float).tolist()
    return out


# ------------------------------------------------------------------ comparing routers
def compare_curves(
    curves: Mapping[str, tuple[Any, Any]], budgets: Any = ()
) -> tuple[float, dict[str, dict[str, Any] | None]]:
    """AIQ and quality under budgets of several routers' points on one shared cost range.

    The range is ``[0, hi]`` with ``hi`` the largest finite cost over every curve
    (RouterBench's convention), so the AIQs are comparable. Non-finite points are dropped per
    curve; a curve with no finite point maps to ``None``. When ``hi <= 0`` (every point free)
    the AIQ is the curve's best quality. Returns ``(hi, {label: summary})``; a summary holds
    ``aiq``, ``quality_at_budget [len(budgets)]``, ``n_points``, ``hull_vertices``,
    ``min_cost`` and ``max_quality``.
    """
    b = np.asarray(budgets, dtype=float).ravel()
    finite: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for label, (c, q) in curves.items():
        c, q = np.asarray(c, dtype=float).ravel(), np.asarray(q, dtype=float).ravel()
        ok = np.isfinite(c) & np.isfinite(q)
        finite[label] = (c[ok], q[ok])
    hi = max((float(c.max()) for c, _ in finite.values() if c.size), default=np.nan)
    out: dict[str, dict[str, Any] | None] = {}
    for label, (c, q) in finite.items():
        if not c.size:
            out[label] = None
            continue
        hc, hq = upper_hull(c, q)
        out[label] = {
            "aiq": aiq(c, q, (0.0, hi)) if hi > 0 else float(np.max(q)),
            "quality_at_budget": _hull_curve(hc, hq, b),
            "n_points": int(c.size),
            "hull_vertices": int(hc.size),
            "min_cost": float(c.min()),
            "max_quality": float(q.max()),
        }
    return hi, out
