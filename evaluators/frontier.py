"""Cost-quality trade-off (docs/spec.md §6), RouterBench-style: re-routing under a lambda grid,
the non-decreasing concave upper hull, quality under a cost budget, AIQ, and AIQ of several
routers on one shared range (:func:`compare_curves`). Pure functions; definitions and
conventions: docs/analyses.md, section 2."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from evaluators import uncertainty as U
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


# ------------------------------------------------------------------ bootstrap of AIQ
#: File next to ``results.json`` holding a run's frontier replicates (:func:`frontier_replicates`
#: arrays, plus ``lams`` and the ``models`` order of the ``fixed_*`` rows).
FRONTIER_BOOTSTRAP = "frontier_bootstrap.npz"
#: Upper bound on the elements of one [rows, knots, points, points] block of :func:`aiq_batch`.
_AIQ_BLOCK = 2_000_000


def _envelope(c: np.ndarray, q: np.ndarray, ok: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``[R, K]``: the non-decreasing concave upper hull of each row's points ``c, q [R, P]``
    (``ok`` marks the points that count) at costs ``x [R, K]`` (each at least the row's
    cheapest cost). At ``x`` it is the best mix of two points ``i, j`` with ``c_i <= x``: point
    ``j`` itself when ``c_j <= x``, else the chord from ``i`` to ``j`` at ``x``."""
    ci, qi = c[:, None, :, None], q[:, None, :, None]
    cj, qj = c[:, None, None, :], q[:, None, None, :]
    xx = x[:, :, None, None]
    span = np.where(cj > ci, cj - ci, 1.0)
    with np.errstate(invalid="ignore"):  # a row without points has infinite knots (masked later)
        val = np.where(cj <= xx, qj, qi + (qj - qi) * (xx - ci) / span)
    use = ok[:, None, :, None] & ok[:, None, None, :] & (ci <= xx)
    return np.where(use, val, -np.inf).max(axis=(2, 3))


def aiq_batch(cost: Any, quality: Any, lo: Any, hi: Any) -> np.ndarray:
    """:func:`aiq` of every row at once: ``cost``, ``quality`` ``[R, P]`` (non-finite points are
    left out of their row), ``lo``, ``hi`` scalars or ``[R]``. Returns ``[R]`` (NaN for a row
    with no finite point).

    The hull curve is linear between consecutive point costs (its vertices are points), so the
    area is the trapezoid rule over the knots ``lo' = max(lo, cheapest cost)``, every point cost
    inside ``(lo', hi)`` and ``hi``, with the hull evaluated exactly at each knot
    (:func:`_envelope`). Equal to :func:`aiq` row by row (tested); vectorised for the thousands
    of bootstrap replicates of a frontier.
    """
    c = np.atleast_2d(np.asarray(cost, dtype=float))
    q = np.atleast_2d(np.asarray(quality, dtype=float))
    if c.shape != q.shape:
        raise ValueError(f"cost {c.shape} and quality {q.shape} differ in shape")
    n, p = c.shape
    lo = np.broadcast_to(np.asarray(lo, dtype=float), (n,))
    hi = np.broadcast_to(np.asarray(hi, dtype=float), (n,))
    if not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise ValueError("aiq_batch: cost ranges must be finite")
    if (hi < lo).any():
        raise ValueError("aiq_batch: every cost range must have lo <= hi")
    ok = np.isfinite(c) & np.isfinite(q)
    c, q = np.where(ok, c, 0.0), np.where(ok, q, 0.0)
    cmin = np.where(ok, c, np.inf).min(axis=1)
    a = np.maximum(lo, cmin)
    knots = np.sort(np.concatenate([a[:, None], np.where(ok, np.clip(c, a[:, None], hi[:, None]), a[:, None]),
                                    np.maximum(hi, a)[:, None]], axis=1), axis=1)
    out = np.empty(n)
    step = max(1, _AIQ_BLOCK // max(1, (p + 2) * p * p))
    for s in range(0, n, step):  # blocks bound the [rows, knots, P, P] temporaries
        sl = slice(s, s + step)
        r = _envelope(c[sl], q[sl], ok[sl], knots[sl])
        x = knots[sl]
        width = (hi - lo)[sl]
        with np.errstate(invalid="ignore", divide="ignore"):
            area = np.sum(np.diff(x, axis=1) * (r[:, 1:] + r[:, :-1]) / 2.0, axis=1)
            out[sl] = np.where(width > 0, area / np.where(width > 0, width, 1.0), r[:, 0])
    zero_width = hi == lo
    out[zero_width & (lo < cmin)] = np.nan  # the hull does not reach lo
    out[~zero_width & (a >= hi)] = 0.0  # the range ends before the cheapest point
    out[~ok.any(axis=1)] = np.nan
    return out


def sweep_replicates(
    choices: Any, quality: np.ndarray, cost: np.ndarray, rs: U.Resamples
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap replicates of :func:`sweep_points`: ``(mean_cost, mean_quality)``, each
    ``[P, B]`` for ``choices`` ``[P, Q]`` or ``[P, D, Q]`` (P policies, e.g. a lambda grid).

    Replicate ``b`` takes the means over the queries resampled by ``rs.queries[b]`` and, with
    draws, the mean over the draws resampled by ``rs.draws[b]`` (as :func:`frontier_points`
    averages the draws' points). Unobserved routed pairs are left out as in :func:`sweep_points`.
    """
    ch = np.asarray(choices, dtype=np.int64)
    quality, cost = np.asarray(quality, dtype=float), np.asarray(cost, dtype=float)
    n_q = quality.shape[0]
    if ch.shape[-1] != n_q:
        raise ValueError(f"{ch.shape[-1]} choices per policy for {n_q} queries")
    if ch.ndim == 2:
        ch = ch[:, None, :]
    if ch.ndim != 3:
        raise ValueError(f"choices must be [P, Q] or [P, D, Q], got shape {ch.shape}")
    n_p, n_d, _ = ch.shape
    qi = np.arange(n_q)
    q_sel, c_sel = quality[qi, ch], cost[qi, ch]
    ok = np.isfinite(q_sel) & np.isfinite(c_sel)
    q_sel, c_sel = np.where(ok, q_sel, np.nan), np.where(ok, c_sel, np.nan)
    b = rs.n
    mc, mq = (m.reshape(n_p, n_d, b) for m in U.draw_means_many(
        [c_sel.reshape(n_p * n_d, n_q), q_sel.reshape(n_p * n_d, n_q)], rs))
    return U.combine_draws(mc, rs), U.combine_draws(mq, rs)


def frontier_replicates(
    choices: Any, stats: Mapping[str, Any], rs: U.Resamples
) -> dict[str, np.ndarray]:
    """The bootstrap replicates behind :func:`frontier_points` and the fixed models' points,
    from the same resamples ``rs``: ``<p>C``, ``<p>Q`` ``[L, B]`` for the policy re-routed under
    each lambda and ``fixed_<p>C``, ``fixed_<p>Q`` ``[M, B]`` for routing every query to one
    model, per test view prefix ``p``."""
    out: dict[str, np.ndarray] = {}
    for prefix, vs in stats.items():
        n_q, n_m = np.asarray(vs.q).shape
        out[prefix + "C"], out[prefix + "Q"] = sweep_replicates(choices, vs.q, vs.c, rs)
        every = np.broadcast_to(np.arange(n_m)[:, None], (n_m, n_q))
        out["fixed_" + prefix + "C"], out["fixed_" + prefix + "Q"] = sweep_replicates(every, vs.q, vs.c, rs)
    return out


def compare_aiq_replicates(curves: Mapping[str, tuple[Any, Any]]) -> dict[str, np.ndarray]:
    """:func:`compare_curves`' AIQ of every curve in every bootstrap replicate.

    ``curves`` maps a label to ``(cost [P, B], quality [P, B])`` replicates (every curve from
    the same resamples). In replicate ``b`` the range is ``[0, hi_b]``, ``hi_b`` the largest
    finite cost over every curve in that replicate (re-derived per replicate, like the point
    estimate); a replicate with ``hi_b <= 0`` scores the curve's best quality. Returns
    ``{label: [B]}``.
    """
    reps = {k: (np.asarray(c, dtype=float), np.asarray(q, dtype=float)) for k, (c, q) in curves.items()}
    if not reps:
        return {}
    n_b = {c.shape[1] for c, _ in reps.values()}
    if len(n_b) != 1:
        raise ValueError(f"curves have different numbers of replicates: {sorted(n_b)}")
    per_curve = [np.where(np.isfinite(c) & np.isfinite(q), c, -np.inf).max(axis=0) for c, q in reps.values()]
    hi = np.max(np.stack(per_curve), axis=0)  # -inf: no finite point in that replicate
    out = {}
    for label, (c, q) in reps.items():
        fin = np.isfinite(c) & np.isfinite(q)
        pos = np.isfinite(hi) & (hi > 0)
        best = np.where(fin, q, -np.inf).max(axis=0)
        score = aiq_batch(c.T, q.T, 0.0, np.where(pos, hi, 0.0))
        out[label] = np.where(pos, score, np.where(fin.any(axis=0), best, np.nan))
    return out


#: Test views of a frontier: the rewrite view, the decoding view and their average.
VIEWS = ("r", "d", "mean")


def view_points(src: Mapping[str, Any], view: str) -> tuple[np.ndarray, np.ndarray]:
    """(cost, quality) on ``view`` from anything with ``rC, rQ, dC, dQ`` (a frontier dict, a
    fixed model's metrics, or their bootstrap replicates); ``mean`` averages the two views."""
    if view == "mean":
        c = 0.5 * (np.asarray(src["rC"], float) + np.asarray(src["dC"], float))
        q = 0.5 * (np.asarray(src["rQ"], float) + np.asarray(src["dQ"], float))
        return c, q
    if view not in ("r", "d"):
        raise ValueError(f"frontier view must be 'mean', 'r' or 'd', got {view!r}")
    return np.asarray(src[view + "C"], float), np.asarray(src[view + "Q"], float)


def fixed_replicates(reps: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The fixed models' entries of :func:`frontier_replicates` under the plain view keys."""
    return {k[len("fixed_"):]: v for k, v in reps.items() if k.startswith("fixed_")}


def frontier_aiq(
    points: Mapping[str, Any],
    fixed: Mapping[str, Mapping[str, float]],
    reps: Mapping[str, np.ndarray],
    level: float = U.LEVEL,
) -> dict[str, dict[str, Any]]:
    """One run's AIQ with its bootstrap interval, on each view of :data:`VIEWS`.

    The router's lambda-sweep points (``points``, :func:`frontier_points`) and the fixed
    models' hull (``fixed``: ``{model: {rC, rQ, dC, dQ}}``) are scored by
    :func:`compare_curves` on ``[0, hi]``, ``hi`` the largest cost of either; every bootstrap
    replicate (``reps``, :func:`frontier_replicates`) is re-scored the same way
    (:func:`compare_aiq_replicates`). Returns ``{view: {aiq, ci, fixed_aiq, fixed_ci,
    cost_range}}`` (percentile intervals at ``level``).
    """
    models = list(fixed)
    fixed_pts = {k: np.array([fixed[m][k] for m in models], dtype=float) for k in ("rC", "rQ", "dC", "dQ")}
    out: dict[str, dict[str, Any]] = {}
    for view in VIEWS:
        hi, point = compare_curves({"router": view_points(points, view), "fixed": view_points(fixed_pts, view)})
        boot = compare_aiq_replicates({"router": view_points(reps, view),
                                       "fixed": view_points(fixed_replicates(reps), view)})
        r, f = point["router"], point["fixed"]
        out[view] = {
            "aiq": np.nan if r is None else r["aiq"],
            "ci": list(U.percentile_interval(boot["router"], level)),
            "fixed_aiq": np.nan if f is None else f["aiq"],
            "fixed_ci": list(U.percentile_interval(boot["fixed"], level)),
            "cost_range": [0.0, float(hi)],
        }
    return out
