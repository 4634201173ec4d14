"""Utility and model selection (docs/spec.md §3 and §5).

``U = mu_q - lam * mu_c - beta * sigma_q``; the preferred model is ``argmax_m U``, ties broken by
lower ``mu_c`` and then by pool order (the lower model index).
"""

from __future__ import annotations

import numpy as np

#: Two utilities closer than this are a tie. Float arithmetic on the same numbers in a
#: different order can differ in the last bits; a researcher means those as equal.
TIE_ATOL = 1e-12


def utility(
    mu_q: np.ndarray, mu_c: np.ndarray, sigma_q: np.ndarray | None, lam: float, beta: float
) -> np.ndarray:
    """``mu_q - lam * mu_c - beta * sigma_q`` (element-wise; ``sigma_q=None`` means 0)."""
    u = mu_q - lam * mu_c
    if sigma_q is not None and beta != 0.0:
        u = u - beta * sigma_q
    return u


def select_models(u: np.ndarray, mu_c: np.ndarray) -> np.ndarray:
    """Index of the best model along the last axis: max ``u``, then min ``mu_c``, then first.

    ``u`` and ``mu_c`` have shape ``[..., M]``. NaN utilities never win; a row where every
    utility is NaN is an error, since there is nothing to choose from.
    """
    u = np.asarray(u, dtype=float)
    mu_c = np.broadcast_to(np.asarray(mu_c, dtype=float), u.shape)
    valid = ~np.isnan(u)
    if not valid.any(axis=-1).all():
        raise ValueError("select_models: a row has no model with a finite utility")
    u_best = np.where(valid, u, -np.inf).max(axis=-1, keepdims=True)
    tied = valid & (u >= u_best - TIE_ATOL)
    c = np.where(tied, np.where(np.isnan(mu_c), np.inf, mu_c), np.inf)
    c_best = c.min(axis=-1, keepdims=True)
    # Among the tied models with the lowest cost, take the first in pool order. Costs equal up to
    # float summation order (the same observations in another order) are equal, as for ``u``.
    winners = tied & (c <= c_best + TIE_ATOL)
    return winners.argmax(axis=-1)


def select_grid(
    mu_q: np.ndarray, mu_c: np.ndarray, sigma_q: np.ndarray, lams, beta: float
) -> np.ndarray:
    """:func:`select_models` for every ``lambda`` of a grid in one pass: ``[L, ..., Q]`` int64
    from ``[..., Q, M]`` signals; ``out[l]`` is the choice at ``lams[l]`` (same ties)."""
    mu_q, mu_c, sigma_q = (np.asarray(a, dtype=float) for a in (mu_q, mu_c, sigma_q))
    lam = np.asarray(lams, dtype=float).ravel().reshape((-1,) + (1,) * mu_q.ndim)
    u = utility(mu_q[None], mu_c[None], sigma_q[None], lam, beta)
    return select_models(u, mu_c[None]).astype(np.int64)


def softmax(u: np.ndarray, tau: float = 1.0, axis: int = -1) -> np.ndarray:
    """Soft labels ``softmax(u / tau)`` along ``axis`` (NaN utilities get probability 0)."""
    if tau <= 0:
        raise ValueError(f"softmax temperature must be positive, got {tau}")
    z = np.where(np.isnan(u), -np.inf, u / tau)
    z = z - z.max(axis=axis, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=axis, keepdims=True)
