"""Exact per-pair truth of the simulator: ``mu_q``, ``mu_c``, ``sigma_q`` and their input- and
output-side parts by trapezoidal quadrature (docs/simulator.md, "Truth")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr

from benchmark.data.dataset import TruthTable
from benchmark.data.simulator.config import SimulatorConfig


def _normal_nodes(sd: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``x`` and weights ``w`` with ``sum(w * f(x)) ~= E[f(xi)]``, ``xi ~ N(0, 1)``, for
    ``f(xi) = g(mean + sd * xi)`` with ``g`` analytic in the strip ``|Im t| < pi`` (the sigmoid).

    The trapezoidal rule on ``[-9.5, 9.5]`` with step ``min(0.5, 0.4 / sd)`` converges
    exponentially for such integrands; its error is below 1e-14 for every ``sd <= 10`` and any
    mean (checked against adaptive quadrature in the tests). Gauss-Hermite is not used: its error
    grows to 1e-4 for ``sd = 8`` because the sigmoid's poles come close in the scaled variable.
    """
    h = min(0.5, _TRAPEZOID_C / sd) if sd > 0 else 0.5
    n = int(math.ceil(_TRAPEZOID_HALF_WIDTH / h))
    x = np.arange(-n, n + 1, dtype=float) * h
    w = h * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return x, w


_TRAPEZOID_C = 0.4
_TRAPEZOID_HALF_WIDTH = 9.5


def normal_expect(fun: Callable[[np.ndarray], np.ndarray], mean: np.ndarray, sd: float) -> np.ndarray:
    """``E[fun(mean + sd * xi)]`` with ``xi ~ N(0, 1)``, element-wise over ``mean``."""
    return normal_expect_powers(fun, mean, sd, 1)[0]


def normal_expect_powers(
    fun: Callable[[np.ndarray], np.ndarray], mean: np.ndarray, sd: float, n_powers: int
) -> list[np.ndarray]:
    """``E[fun(mean + sd * xi) ** k]`` for ``k = 1 .. n_powers``, ``xi ~ N(0, 1)``, element-wise
    over ``mean``, with one evaluation of ``fun`` per quadrature node shared by all powers."""
    mean = np.asarray(mean, dtype=float)
    if sd == 0:
        f = fun(mean)
        return [f] + [f**k for k in range(2, n_powers + 1)]
    x, w = _normal_nodes(sd)
    outs = [np.empty_like(mean) for _ in range(n_powers)]
    flat_in, flat_outs = mean.reshape(-1), [o.reshape(-1) for o in outs]
    chunk = max(1, 2_000_000 // x.size)
    for i in range(0, flat_in.size, chunk):
        f = fun(flat_in[i : i + chunk, None] + sd * x)
        flat_outs[0][i : i + chunk] = f @ w
        for k in range(2, n_powers + 1):
            flat_outs[k - 1][i : i + chunk] = (f**k) @ w
    return outs


def _sigmoid_moments(logit: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """``E[s]`` and ``E[s^2]`` for ``s = sigmoid(logit + sd * xi)``.

    Clipped to [0, 1]: quadrature weights sum to 1 only up to rounding, which could otherwise put
    an expectation 1 ulp above 1 (a probability the loader would rightly reject).
    """
    e1, e2 = normal_expect_powers(expit, logit, sd, 2)
    return np.clip(e1, 0.0, 1.0), np.clip(e2, 0.0, 1.0)


def _sigmoid_mean(logit: np.ndarray, sd: float) -> np.ndarray:
    """``E[s]`` of :func:`_sigmoid_moments` alone."""
    return np.clip(normal_expect(expit, logit, sd), 0.0, 1.0)


#: Cells of :func:`smooth_map`: Chebyshev degree on each cell, and the tail test (last coefficients
#: against the cell's largest value) under which a cell's interpolant is used.
_CELL_DEGREE = 16
_CELL_TAIL = 1e-14
_BLOCK = 1 << 16


def smooth_map(fun: Callable[[np.ndarray], np.ndarray], x: np.ndarray, cell: float) -> np.ndarray:
    """``fun(x)`` element-wise, for a ``fun`` of one variable that is analytic at distance ``>=
    cell`` around the real axis, from few evaluations: ``fun`` is evaluated at the 17 Chebyshev
    points of each cell ``[k * cell, (k + 1) * cell)`` that holds a value of ``x`` and
    interpolated there (degree 16).

    The cells are fixed (not fitted to ``x``), so each value depends only on its own argument.
    A cell whose last Chebyshev coefficients exceed ``1e-14`` of its largest value (the
    interpolant has not converged) is evaluated directly. With a singularity at distance
    ``>= cell`` the interpolation error is far below rounding; what remains is the rounding of
    ``fun`` at the nodes and of the barycentric formula, a few ulps (docs/simulator.md, "Truth").
    """
    x = np.asarray(x, dtype=float)
    flat = x.reshape(-1)
    if flat.size == 0:
        return np.empty_like(x)
    if not np.isfinite(flat).all():
        raise ValueError("smooth_map needs finite arguments")
    n = _CELL_DEGREE + 1
    theta = np.pi * (np.arange(n) + 0.5) / n
    k = np.floor(flat / cell)
    cells, inv = np.unique(k, return_inverse=True)
    mid = (cells + 0.5) * cell
    half = 0.5 * cell
    vals = np.asarray(fun((mid[:, None] + half * np.cos(theta)[None, :]).reshape(-1)), dtype=float)
    vals = vals.reshape(cells.size, n)
    coef = vals @ np.cos(np.outer(np.arange(n), theta)).T * (2.0 / n)  # [cell, degree]
    coef[:, 0] *= 0.5
    scale = np.abs(vals).max(axis=1)
    direct = np.abs(coef[:, -2:]).max(axis=1) > _CELL_TAIL * np.maximum(scale, np.finfo(float).tiny)
    t = (flat - mid[inv]) / half
    # the barycentric formula (stable: a constant comes out exactly), a block of values at a time
    nodes = np.cos(theta)
    weights = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) * np.sin(theta)
    out = np.empty_like(flat)
    for i in range(0, flat.size, _BLOCK):
        d = t[i : i + _BLOCK, None] - nodes[None, :]
        hit = d == 0.0
        d[hit] = 1.0
        q = weights / d
        f = vals[inv[i : i + _BLOCK]]
        res = (q * f).sum(axis=1) / q.sum(axis=1)
        row, col = np.nonzero(hit)
        res[row] = f[row, col]
        out[i : i + _BLOCK] = res
    slow = direct[inv]
    if slow.any():
        out[slow] = fun(flat[slow])
    return out.reshape(x.shape)


def f1_variance_factor(cfg: SimulatorConfig) -> float:
    """``c`` with ``Var[score | p] = c * p * (1 - p)`` for one decode of success probability ``p``.

    Binary: 1. F1 mixture (both components have mean ``p``): ``share * 1 + (1 - share) /
    (kappa + 1)`` (the Beta(``p kappa``, ``(1 - p) kappa``) variance is ``p (1 - p) / (kappa + 1)``).
    """
    if cfg.task == "binary":
        return 1.0
    return cfg.f1_exact_share + (1.0 - cfg.f1_exact_share) / (cfg.f1_concentration + 1.0)


def completion_stats(cfg: SimulatorConfig, median: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``E[completion_tokens]`` and ``P(truncated)`` for the rounded, capped lognormal.

    ``raw = max(1, round(X))``, ``X ~ LogNormal(log(median), completion_sigma^2)``;
    ``completion = min(raw, max_tokens)``; truncated iff ``raw >= max_tokens``. Since
    ``E[completion] = sum_{n=1}^{cap} P(completion >= n)`` and ``P(raw >= n) = P(X >= n - 1/2)``
    for ``n >= 2``: ``E = 1 + sum_{n=2}^{cap} S(n - 1/2)`` with ``S`` the survival function.
    """
    cap = int(cfg.max_tokens)
    median = np.asarray(median, dtype=float)
    log_med = np.log(median)
    sig = cfg.completion_sigma
    thresholds = np.arange(2, cap + 1, dtype=float) - 0.5  # n - 1/2 for n = 2..cap
    if sig == 0:
        x = np.maximum(1.0, np.floor(median + 0.5))
        mean = np.minimum(x, cap)
        return mean, (x >= cap).astype(float)
    mean = _mean_tokens(log_med.ravel(), np.log(thresholds), sig)
    p_trunc = ndtr((log_med - np.log(cap - 0.5)) / sig)
    return mean.reshape(median.shape), p_trunc


def _mean_tokens(log_med: np.ndarray, log_t: np.ndarray, sig: float) -> np.ndarray:
    """``1 + sum_t P(X >= t)`` for each flat ``log_med``: the sum of :func:`completion_stats`."""
    # A few pairs at a time in one reused buffer that stays in cache (each row's sum does not
    # depend on how many rows a chunk holds, so the numbers are those of one big pass).
    mean = np.empty_like(log_med)
    rows = max(1, 65_536 // max(log_t.size, 1))
    buf = np.empty((rows, log_t.size))
    for i in range(0, log_med.size, rows):
        lm = log_med[i : i + rows, None]
        surv = buf[: lm.shape[0]]
        np.subtract(lm, log_t[None, :], out=surv)
        np.divide(surv, sig, out=surv)
        ndtr(surv, out=surv)  # P(X >= t)
        mean[i : i + rows] = 1.0 + surv.sum(axis=1)
    return mean


def fast_completion_stats(cfg: SimulatorConfig, median: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`completion_stats` for many pairs: ``E[completion_tokens]`` is one smooth function of
    ``log(median)`` (a sum of normal CDFs of width ``completion_sigma``), interpolated by
    :func:`smooth_map` on cells of ``completion_sigma / 2`` from its exact sums at 17 points per
    cell; ``P(truncated)`` is one normal CDF, computed directly. Agrees with
    :func:`completion_stats` to about 1e-13 relative (tests/test_simulator.py)."""
    sig = cfg.completion_sigma
    if sig == 0:
        return completion_stats(cfg, median)
    cap = int(cfg.max_tokens)
    log_med = np.log(np.asarray(median, dtype=float))
    log_t = np.log(np.arange(2, cap + 1, dtype=float) - 0.5)
    mean = smooth_map(lambda lm: _mean_tokens(lm.ravel(), log_t, sig).reshape(lm.shape), log_med, 0.5 * sig)
    return mean, ndtr((log_med - np.log(cap - 0.5)) / sig)


#: Cell width of :func:`smooth_map` in logits: the sigmoid's poles lie at distance pi.
_LOGIT_CELL = 0.5


def _rewrite_moment(cfg: SimulatorConfig, logit: np.ndarray) -> np.ndarray:
    """``E_z[m(z)^2]``, ``m(z) = E_e[p | z]``, by nested quadrature: inner over decodes
    (``output_noise``), outer over rewrites (``input_noise``)."""
    g = cfg.chance_floor
    s_in, s_out = cfg.input_noise, cfg.output_noise
    xz, wz = _normal_nodes(s_in)
    e_m2 = np.zeros_like(logit)
    nodes = list(zip(xz, wz)) if s_in > 0 else [(0.0, 1.0)]
    for xi, wi in nodes:
        m_z = g + (1 - g) * np.clip(normal_expect(expit, logit + s_in * xi, s_out), 0.0, 1.0)
        e_m2 += wi * m_z**2
    return e_m2


@dataclass(frozen=True)
class TruthDetail:
    """Extra exact quantities of a split (in memory only).

    Attributes:
        var_input: ``[Q, M]`` variance of the per-rewrite expected score over rewrites
            (infinite-decode limit of docs/spec.md §7's input-side term).
        var_output: ``[Q, M]`` expected within-rewrite variance (output-side term);
            ``var_input + var_output = sigma_q ** 2``.
        p_keep: ``[Q, M]`` probability that an answer is neither cut nor unparsable.
        mean_completion_tokens: ``[Q, M]`` expected completion tokens.
        decoding_mu_q: ``[Q, M, S]`` expected score of the original query at each test
            temperature (the ``decoding_variation`` view; test split only, else None).
    """

    var_input: np.ndarray
    var_output: np.ndarray
    p_keep: np.ndarray
    mean_completion_tokens: np.ndarray
    decoding_mu_q: np.ndarray | None = None


def pair_truth(
    cfg: SimulatorConfig,
    base_logit: np.ndarray,
    prompt_tokens: np.ndarray,
    completion_median: np.ndarray,
    temperatures: tuple[float, ...] | None = None,
) -> tuple[TruthTable, TruthDetail]:
    """Exact per-pair truth over the observation distribution (random rewrite, training decode).

    With ``s = sqrt(input_noise^2 + output_noise^2)``, ``sig = sigmoid(l + s * xi)``,
    ``p = floor + (1 - floor) * sig``, ``keep = (1 - P(cut)) * (1 - parse_failure_rate)``
    (independent of the score draw) and ``c`` from :func:`f1_variance_factor`:

    * ``mu_q = keep * E[p]``;
    * ``E[q^2] = keep * (c * E[p] + (1 - c) * E[p^2])`` (since ``E[Y^2 | p] = c p (1 - p) + p^2``);
    * ``sigma_q = sqrt(E[q^2] - mu_q^2)``;
    * ``mu_c = prompt_tokens * price_in + E[completion_tokens] * price_out``.

    The input/output split of ``sigma_q^2`` uses a nested quadrature: ``m(z) = E_e[p | z]``,
    ``var_input = keep^2 * Var_z(m(z))``.
    """
    g = cfg.chance_floor
    c = f1_variance_factor(cfg)
    s_tot = math.hypot(cfg.input_noise, cfg.output_noise)
    e_sig, e_sig2 = _sigmoid_moments(base_logit, s_tot)
    e_p = g + (1 - g) * e_sig
    e_p2 = g * g + 2 * g * (1 - g) * e_sig + (1 - g) ** 2 * e_sig2

    mean_tokens, p_trunc = fast_completion_stats(cfg, completion_median)
    keep = (1.0 - p_trunc) * (1.0 - cfg.parse_failure_rate)
    mu_q = keep * e_p
    e_q2 = keep * (c * e_p + (1.0 - c) * e_p2)
    var = np.maximum(e_q2 - mu_q**2, 0.0)

    # E_z[m(z)^2] is one smooth function of the logit (poles at distance pi): interpolated.
    e_m2 = smooth_map(lambda lg: _rewrite_moment(cfg, lg), base_logit, _LOGIT_CELL)
    var_in = np.maximum(keep**2 * (e_m2 - e_p**2), 0.0)
    var_in = np.minimum(var_in, var)

    price_in = np.array([m.price_in for m in cfg.models])
    price_out = np.array([m.price_out for m in cfg.models])
    mu_c = prompt_tokens * price_in[None, :] + mean_tokens * price_out[None, :]

    decoding = None
    if temperatures is not None:
        by_t = {
            t: keep * (g + (1 - g) * _sigmoid_mean(base_logit, cfg.output_noise_at(t)))
            for t in sorted(set(temperatures))
        }
        decoding = np.stack([by_t[t] for t in temperatures], axis=-1)

    truth = TruthTable(mu_q=mu_q, mu_c=mu_c, sigma_q=np.sqrt(var))
    detail = TruthDetail(
        var_input=var_in,
        var_output=var - var_in,
        p_keep=keep,
        mean_completion_tokens=mean_tokens,
        decoding_mu_q=decoding,
    )
    return truth, detail

