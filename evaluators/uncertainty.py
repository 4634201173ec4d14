"""Uncertainty of test metrics: a seeded, vectorised bootstrap over test queries (and over
single-shot draws), paired differences with p-values, Holm / Benjamini-Hochberg corrections and
intervals across seeds. Definitions and the exact resampling scheme: docs/analyses.md, section
"Uncertainty"."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import stats as st
from threadpoolctl import ThreadpoolController

#: Default number of bootstrap resamples and confidence level.
RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Resamples:
    """Multinomial resampling counts: ``queries [B, Q]`` and ``draws [B, D]`` (each row sums to
    ``Q`` / ``D``). Row ``b`` is one bootstrap replicate: query ``q`` enters it ``queries[b, q]``
    times and draw ``d`` enters it ``draws[b, d]`` times."""

    queries: np.ndarray
    draws: np.ndarray

    @property
    def n(self) -> int:
        return self.queries.shape[0]


def _counts(rng: np.random.Generator, n: int, resamples: int) -> np.ndarray:
    if n < 1:
        raise ValueError(f"cannot resample {n} items")
    return rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)


#: Largest count sequence kept in the cache (bytes): bigger ones (tens of thousands of test
#: queries) are drawn afresh for each cell, as before, so the cache never holds much memory.
_CACHE_BYTES = 16 * 2**20


@lru_cache(maxsize=6)
def _count_prefix(seed: int, resamples: int, sizes: tuple[int, ...]) -> tuple[tuple[np.ndarray, ...], dict]:
    """Counts for ``sizes`` drawn one after the other from ``numpy.random.default_rng(seed)``
    (read-only) and the generator's state after them. A sequence extends its cached prefix: the
    DARS cell's ``(Q,)`` query counts are the first matrix of the single-shot cell's ``(Q, D)``."""
    if not sizes:
        return (), np.random.default_rng(seed).bit_generator.state
    head, state = _count_prefix(seed, resamples, sizes[:-1])
    rng = np.random.default_rng(seed)
    rng.bit_generator.state = state
    counts = _counts(rng, sizes[-1], resamples)
    counts.flags.writeable = False
    return head + (counts,), rng.bit_generator.state


def _count_sequence(seed: int, resamples: int, sizes: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Cached counts drawn in order from ``default_rng(seed)`` (:func:`_count_prefix`): every
    cell and paired comparison of a sweep with the same test set, draw count and seed reuses
    them (about 50 ms a matrix). Sequences over :data:`_CACHE_BYTES` are not cached."""
    sizes = tuple(int(n) for n in sizes)
    if 8 * int(resamples) * sum(sizes) > _CACHE_BYTES:
        rng = np.random.default_rng(seed)
        return tuple(_counts(rng, n, resamples) for n in sizes)
    return _count_prefix(int(seed), int(resamples), sizes)[0]


def _ones(resamples: int) -> np.ndarray:
    return np.ones((resamples, 1))


def resamples(n_queries: int, n_draws: int = 1, resamples: int = RESAMPLES, seed: int = 0) -> Resamples:
    """Query and draw resampling counts from ``numpy.random.default_rng(seed)``: first the
    ``[B, Q]`` query counts, then the ``[B, D]`` draw counts (independent of the queries)."""
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    counts = _count_sequence(int(seed), int(resamples), (int(n_queries),) + ((int(n_draws),) if n_draws > 1 else ()))
    return Resamples(counts[0], counts[1] if n_draws > 1 else _ones(resamples))


def _as_draws(values: np.ndarray) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if v.ndim == 1:
        v = v[None]
    if v.ndim != 2:
        raise ValueError(f"per-query values must be [Q] or [D, Q], got shape {v.shape}")
    return v


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """The process's BLAS libraries, found once (``threadpool_limits`` rescans every loaded
    library on each call, about 10 ms; numpy's BLAS is loaded before this module runs)."""
    return ThreadpoolController()


def draw_means(values: np.ndarray, rs: Resamples) -> np.ndarray:
    """``[D, B]``: per draw, the mean over the resampled queries (NaN values left out, as in
    :mod:`evaluators.metrics`). ``values`` is ``[Q]`` or ``[D, Q]``."""
    return draw_means_many([values], rs)[0]


def draw_means_many(values: Sequence[np.ndarray], rs: Resamples) -> list[np.ndarray]:
    """:func:`draw_means` of several per-query arrays (``[Q]`` or ``[D_i, Q]`` each) under one
    BLAS thread limit.

    Each array is one ``[D_i, Q] x [Q, B]`` product, as :func:`draw_means` alone computes it:
    stacking arrays would move rows across the GEMM kernel's tiles and change last bits. A row
    without NaN has the replicate's total count as its denominator (exact: the counts are
    integers, so this equals the product with the finite mask); only rows with missing values
    need that second product.
    """
    arrs = [_as_draws(v) for v in values]
    n_q = rs.queries.shape[1]
    for v in arrs:
        if v.shape[1] != n_q:
            raise ValueError(f"{v.shape[1]} per-query values for {n_q} resampled queries")
    total = rs.queries.sum(axis=1)  # [B]
    out = []
    # One BLAS thread: the last bits of a threaded GEMM depend on the thread count, and the
    # intervals must not depend on the launcher (tests/test_sweeps.py compares at tolerance 0).
    with _blas_controller().limit(limits=1, user_api="blas"):
        for v in arrs:
            ok = np.isfinite(v)
            num = np.where(ok, v, 0.0) @ rs.queries.T
            den = np.broadcast_to(total, num.shape)
            partial = ~ok.all(axis=1)
            if partial.any():
                den = den.copy()
                den[partial] = ok[partial].astype(float) @ rs.queries.T
            with np.errstate(invalid="ignore", divide="ignore"):
                out.append(np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan))
    return out


def combine_draws(per_draw: np.ndarray, rs: Resamples) -> np.ndarray:
    """``[..., B]``: mean of ``per_draw [..., D, B]`` over the resampled draws of each replicate
    (NaN values left out); leading axes (e.g. the policies of a lambda sweep) are kept."""
    per_draw = np.asarray(per_draw, dtype=float)
    d = per_draw.shape[-2]
    if d == 1:
        return per_draw[..., 0, :]
    if rs.draws.shape[1] != d:
        raise ValueError(f"{d} draws for resampling counts over {rs.draws.shape[1]} draws")
    ok = np.isfinite(per_draw)  # [..., D, B]
    w = rs.draws.T * ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(ok, per_draw, 0.0) * w).sum(axis=-2) / w.sum(axis=-2)


def replicates(values: np.ndarray, rs: Resamples) -> np.ndarray:
    """``[B]`` bootstrap replicates of ``mean over draws of (mean over queries)``."""
    return combine_draws(draw_means(values, rs), rs)


def percentile_interval(reps: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (linear interpolation; NaN replicates,
    i.e. resamples in which a metric has no value, are left out)."""
    reps = np.asarray(reps, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo, hi = np.quantile(reps, [a, 1.0 - a])
    return float(lo), float(hi)


def interval(values: np.ndarray, rs: Resamples, level: float = LEVEL) -> tuple[float, float]:
    """95% (``level``) percentile-bootstrap interval of a metric's per-query values."""
    return percentile_interval(replicates(values, rs), level)


def p_value(reps: np.ndarray) -> float:
    """Two-sided bootstrap p-value of ``difference == 0`` from replicates of the difference:
    ``min(1, 2 * min((1 + #{r <= 0}) / (B + 1), (1 + #{r >= 0}) / (B + 1)))``, the smallest
    level at which the percentile interval excludes 0 (with the usual +1 so it is never 0)."""
    reps = np.asarray(reps, dtype=float)
    reps = reps[np.isfinite(reps)]
    if not reps.size:
        return float("nan")
    b = reps.size
    below = (1.0 + np.sum(reps <= 0)) / (b + 1.0)
    above = (1.0 + np.sum(reps >= 0)) / (b + 1.0)
    return float(min(1.0, 2.0 * min(below, above)))


def point_estimate(values: np.ndarray) -> float:
    """Mean over draws of the mean over queries (NaN values left out), the metric itself."""
    v = _as_draws(values)
    ok = np.isfinite(v)
    n = ok.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_draw = np.where(n > 0, np.where(ok, v, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)
    return float(np.nanmean(per_draw)) if np.isfinite(per_draw).any() else float("nan")


def paired_difference(
    a: np.ndarray, b: np.ndarray, *, resamples_n: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> dict[str, float]:
    """``metric(a) - metric(b)`` over the same test queries, with its paired bootstrap interval
    and p-value.

    ``a`` and ``b`` are per-query values ``[Q]`` or ``[D, Q]`` with the same query order. Each
    replicate resamples the queries once for both arms (the pairing) and the draws of an arm
    that has several (single-shot). Two arms with the same number of draws are paired over
    draws too (draw ``d`` of both arms was trained on the same labels, seed + d): one draw
    resample serves both. Otherwise each arm's draws are resampled independently.
    Returns ``diff``, ``low``, ``high``, ``p``.
    """
    a, b = _as_draws(a), _as_draws(b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"arms have {a.shape[1]} and {b.shape[1]} test queries")
    # Drawn in this order from default_rng(seed): queries, a's draws, b's (unless shared).
    sizes = (a.shape[1],) + tuple(d for d in ((a.shape[0],) + ((b.shape[0],) if b.shape[0] != a.shape[0] else ()))
                                  if d > 1)
    counts = list(_count_sequence(int(seed), int(resamples_n), sizes))
    wq = counts.pop(0)
    wa = counts.pop(0) if a.shape[0] > 1 else _ones(resamples_n)
    if b.shape[0] == a.shape[0]:
        wb = wa
    else:
        wb = counts.pop(0) if b.shape[0] > 1 else _ones(resamples_n)
    reps = replicates(a, Resamples(wq, wa)) - replicates(b, Resamples(wq, wb))
    lo, hi = percentile_interval(reps, level)
    return {"diff": point_estimate(a) - point_estimate(b), "low": lo, "high": hi, "p": p_value(reps)}


# ------------------------------------------------------------- multiple comparisons
def holm(p: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error rate); NaN entries stay NaN and do
    not count in the family."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate); NaN entries stay NaN."""
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    raw = p[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(raw[::-1])[::-1]
    out[order] = np.minimum(adj, 1.0)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}


# --------------------------------------------------------------------- across seeds
def seed_interval(values: np.ndarray, level: float = LEVEL) -> dict[str, float]:
    """Mean over seeds with a Student-t interval: ``mean ± t_{(1+level)/2, n-1} * s / sqrt(n)``
    (``s`` with ddof=1). With one seed the interval is NaN (use that run's bootstrap interval)."""
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]
    n = v.size
    if n == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0}
    m = float(v.mean())
    if n == 1:
        return {"mean": m, "low": float("nan"), "high": float("nan"), "n": 1}
    half = float(st.t.ppf(0.5 + level / 2.0, n - 1) * v.std(ddof=1) / np.sqrt(n))
    return {"mean": m, "low": m - half, "high": m + half, "n": n}


def seed_test(diffs: np.ndarray) -> float:
    """Two-sided one-sample t-test p-value of ``mean(diffs) == 0`` over seeds (ddof=1); 1 when
    every difference is 0, 0 when they are all equal and non-zero, NaN with fewer than 2."""
    d = np.asarray(diffs, dtype=float).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    if np.all(d == d[0]):
        return 1.0 if d[0] == 0 else 0.0
    return float(st.ttest_1samp(d, 0.0).pvalue)
