"""Exact per-pair truth of the simulator: ``mu_q``, ``mu_c``, ``sigma_q`` and their input- and
output-side parts by trapezoidal quadrature (docs/simulator.md, "Truth")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, ndtr
from tqdm.auto import tqdm

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
    mean = np.asarray(mean, dtype=float)
    if sd == 0:
        return fun(mean)
    x, w = _normal_nodes(sd)
    out = np.empty_like(mean)
    flat_in, flat_out = mean.reshape(-1), out.reshape(-1)
    chunk = max(1, 2_000_000 // x.size)
    for i in range(0, flat_in.size, chunk):
        pts = flat_in[i : i + chunk, None] + sd * x
        flat_out[i : i + chunk] = fun(pts) @ w
    return out


def _sigmoid_moments(logit: np.ndarray, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """``E[s]`` and ``E[s^2]`` for ``s = sigmoid(logit + sd * xi)``.

    Clipped to [0, 1]: quadrature weights sum to 1 only up to rounding, which could otherwise put
    an expectation 1 ulp above 1 (a probability the loader would rightly reject).
    """
    e1 = np.clip(normal_expect(expit, logit, sd), 0.0, 1.0)
    e2 = np.clip(normal_expect(lambda t: expit(t) ** 2, logit, sd), 0.0, 1.0)
    return e1, e2


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
    # A few pairs at a time in one reused buffer that stays in cache (each row's sum does not
    # depend on how many rows a chunk holds, so the numbers are those of one big pass).
    flat = log_med.ravel()
    mean = np.empty_like(flat)
    log_t = np.log(thresholds)
    rows = max(1, 65_536 // max(cap, 1))
    buf = np.empty((rows, log_t.size))
    for i in tqdm(range(0, flat.size, rows), desc="exact truth (completion tokens)", disable=None,
                  delay=2.0, leave=False):  # fmt: skip
        lm = flat[i : i + rows, None]
        surv = buf[: lm.shape[0]]
        np.subtract(lm, log_t[None, :], out=surv)
        np.divide(surv, sig, out=surv)
        ndtr(surv, out=surv)  # P(X >= t)
        mean[i : i + rows] = 1.0 + surv.sum(axis=1)
    p_trunc = ndtr((log_med - np.log(cap - 0.5)) / sig)
    return mean.reshape(median.shape), p_trunc


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
    s_in = cfg.input_noise
    s_out = cfg.output_noise
    s_tot = math.hypot(s_in, s_out)
    e_sig, e_sig2 = _sigmoid_moments(base_logit, s_tot)
    e_p = g + (1 - g) * e_sig
    e_p2 = g * g + 2 * g * (1 - g) * e_sig + (1 - g) ** 2 * e_sig2

    mean_tokens, p_trunc = completion_stats(cfg, completion_median)
    keep = (1.0 - p_trunc) * (1.0 - cfg.parse_failure_rate)
    mu_q = keep * e_p
    e_q2 = keep * (c * e_p + (1.0 - c) * e_p2)
    var = np.maximum(e_q2 - mu_q**2, 0.0)

    # Nested: inner over decodes (s_out), outer over rewrites (s_in).
    xz, wz = _normal_nodes(s_in)
    e_m2 = np.zeros_like(e_p)
    nodes = list(zip(xz, wz)) if s_in > 0 else [(0.0, 1.0)]
    for xi, wi in tqdm(nodes, desc="exact truth (input-side variance)", disable=None, delay=2.0, leave=False):
        m_z = g + (1 - g) * np.clip(normal_expect(expit, base_logit + s_in * xi, s_out), 0.0, 1.0)
        e_m2 += wi * m_z**2
    var_in = np.maximum(keep**2 * (e_m2 - e_p**2), 0.0)
    var_in = np.minimum(var_in, var)

    price_in = np.array([m.price_in for m in cfg.models])
    price_out = np.array([m.price_out for m in cfg.models])
    mu_c = prompt_tokens * price_in[None, :] + mean_tokens * price_out[None, :]

    decoding = None
    if temperatures is not None:
        by_t = {
            t: keep * (g + (1 - g) * _sigmoid_moments(base_logit, cfg.output_noise_at(t))[0])
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

